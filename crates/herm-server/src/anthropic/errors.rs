//! CMA's error shape. Handlers fail with [`ApiError`] (from the facade's or the engine's
//! errors); this layer rewrites every problem+json response of the `/anthropic` routes into
//! `{"type":"error","error":{"type","message","details":{"error_code"}},"request_id"}` with a
//! `request-id` header, and marks conflicts that retrying cannot fix with
//! `x-should-retry: false` (the SDK retries 409s otherwise). It also lets `x-api-key`
//! authenticate like `Authorization: Bearer`.

use crate::error::ApiError;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Value, json};

/// Problem bodies are small (their texts are clipped where they are made); one larger than
/// this still gets CMA's shape, without its message.
const MAX_PROBLEM: usize = 256 * 1024;

impl From<herm_cma::Error> for ApiError {
    fn from(e: herm_cma::Error) -> Self {
        use herm_cma::Error as E;
        match e {
            E::Engine(e) => e.into(),
            E::Invalid(m) => ApiError::validation(m),
            E::Unsupported(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unsupported_feature", m),
            E::NotFound(what) => {
                ApiError::new(StatusCode::NOT_FOUND, not_found_code(what), format!("{what} not found"))
            }
            E::Conflict(m) => ApiError::conflict(m),
            E::Precondition(m) => ApiError::new(StatusCode::CONFLICT, "memory_precondition_failed", m),
            E::PathConflict(m) => ApiError::new(StatusCode::CONFLICT, "memory_path_conflict", m),
            E::Internal(m) => {
                tracing::error!(error = %m, "the facade failed");
                ApiError::internal()
            }
        }
    }
}

fn not_found_code(what: &str) -> &'static str {
    match what {
        "agent" => "agent_not_found",
        "environment" => "environment_not_found",
        "vault" => "vault_not_found",
        "vault_credential" => "vault_credential_not_found",
        "session" => "session_not_found",
        "memory_store" => "memory_store_not_found",
        "memory" => "memory_not_found",
        "memory_version" => "memory_version_not_found",
        "skill" => "skill_not_found",
        "dream" => "dream_not_found",
        "file" => "file_not_found",
        "session_resource" => "session_resource_not_found",
        "skill_version" => "skill_version_not_found",
        _ => "not_found",
    }
}

fn error_type(status: StatusCode, code: &str) -> &'static str {
    match code {
        "memory_precondition_failed" => return "memory_precondition_failed_error",
        "memory_path_conflict" => return "memory_path_conflict_error",
        _ => {}
    }
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        408 => "timeout_error",
        409 => "conflict_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

/// Conflicts worth retrying: the resource is busy for a moment, not in the wrong state.
fn transient(code: &str) -> bool {
    code == "deployment_not_ready"
}

pub async fn cma_shape(mut req: Request, next: Next) -> Response {
    if !req.headers().contains_key(header::AUTHORIZATION)
        && let Some(k) = req.headers().get("x-api-key").and_then(|v| v.to_str().ok())
        && let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", k.trim()))
    {
        req.headers_mut().insert(header::AUTHORIZATION, v);
    }
    let request_id = format!("req_{}", herm_types::EventId::new().as_str().trim_start_matches("evt_"));
    let resp = next.run(req).await;
    let is_problem =
        resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    let mut resp = if is_problem { reshape(resp, &request_id).await } else { resp };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("request-id", v);
    }
    resp
}

async fn reshape(resp: Response, request_id: &str) -> Response {
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_PROBLEM).await.unwrap_or_default();
    let problem: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let code = problem["code"].as_str().unwrap_or("error").to_owned();
    let mut message = problem["detail"].as_str().unwrap_or_default().to_owned();
    if let Some(errors) = problem["errors"].as_array().filter(|e| !e.is_empty()) {
        let fields: Vec<String> = errors
            .iter()
            .map(|e| {
                format!("{}: {}", e["path"].as_str().unwrap_or_default(), e["message"].as_str().unwrap_or_default())
            })
            .collect();
        message = format!("{message} ({})", fields.join("; "));
    }
    let body = json!({
        "type": "error",
        "error": {"type": error_type(parts.status, &code), "message": message, "details": {"error_code": code}},
        "request_id": request_id,
    });
    let mut out = Response::from_parts(parts, Body::from(body.to_string()));
    out.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    out.headers_mut().remove(header::CONTENT_LENGTH);
    if out.status() == StatusCode::CONFLICT {
        let retry = if transient(&code) { "true" } else { "false" };
        out.headers_mut().insert("x-should-retry", HeaderValue::from_static(retry));
    }
    out
}

pub async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint in the Claude Managed Agents API")
}
