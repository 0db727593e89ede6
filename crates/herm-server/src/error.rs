//! The one place where errors become HTTP: `application/problem+json` with a stable `code`.
//! A client mistake is always a 4xx; a 500 means a bug or a broken disk, and its detail is
//! generic so internals never leak.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herm_types::api::Problem;
use herm_types::config::FieldError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The most bytes of a detail, or of a field error's path or message, a problem repeats (a
/// detail can quote what was sent).
const MAX_TEXT: usize = 2048;

/// `s` cut to [`MAX_TEXT`] bytes at a character boundary, marked with `…` when cut.
fn clipped(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        s.truncate(s.floor_char_boundary(MAX_TEXT));
        s.push('…');
    }
    s
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into(), errors: Vec::new() }
    }
    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "validation_error", detail)
    }
    pub fn fields(errors: Vec<FieldError>) -> Self {
        let mut e = Self::validation("the request has invalid fields");
        e.errors = errors;
        e
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    pub fn secret_ref(errors: Vec<FieldError>) -> Self {
        let mut e =
            Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_secret_ref", "a secret reference does not resolve");
        e.errors = errors;
        e
    }
    pub fn invalid_skill(path: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e =
            Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_skill", "a skill could not be fetched or parsed");
        e.errors = vec![FieldError::new(path, message)];
        e
    }
    pub fn precondition_failed() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "the resource changed since the revision named in If-Match; read it again",
        )
    }
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "an internal error occurred; it has been logged")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let p = Problem {
            kind: "about:blank".into(),
            title: self.status.canonical_reason().unwrap_or("Error").into(),
            status: self.status.as_u16(),
            code: self.code.into(),
            detail: clipped(self.detail),
            errors: self
                .errors
                .into_iter()
                .map(|e| FieldError { path: clipped(e.path), message: clipped(e.message) })
                .collect(),
        };
        let body = serde_json::to_vec(&p).unwrap_or_default();
        let mut r = (self.status, body).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        r
    }
}

impl From<herm_store::Error> for ApiError {
    fn from(e: herm_store::Error) -> Self {
        match e {
            herm_store::Error::NotFound => Self::not_found("resource"),
            herm_store::Error::Conflict(m) => Self::conflict(m),
            herm_store::Error::Stale => Self::precondition_failed(),
            herm_store::Error::Duplicate => Self::conflict("this already happened"),
            other => {
                tracing::error!(error = %other, "store error");
                Self::internal()
            }
        }
    }
}

impl From<herm_engine::Error> for ApiError {
    fn from(e: herm_engine::Error) -> Self {
        use herm_engine::Error as E;
        let with = |mut e: ApiError, errors| {
            e.errors = errors;
            e
        };
        match e {
            E::Store(s) => s.into(),
            E::Sandbox(s) => s.into(),
            E::NotFound(what) => Self::not_found(what),
            E::Validation(m) => Self::validation(m),
            E::Invalid(errors) => Self::fields(errors),
            E::InvalidSecretRef(errors) => Self::secret_ref(errors),
            E::InvalidSkill(f) => Self::invalid_skill(f.path, f.message),
            E::Unsupported(errors) => with(
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unsupported",
                    "the request sets fields this server cannot act on yet",
                ),
                errors,
            ),
            E::UnsupportedAttachment(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unsupported_attachment", m),
            E::InvalidAttachment(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_attachment", m),
            E::Conflict(m) => Self::conflict(m),
            E::PreconditionFailed => Self::precondition_failed(),
            E::LastAdminKey => Self::new(
                StatusCode::CONFLICT,
                "last_admin_key",
                "this is the last active admin key; create another admin key before revoking it",
            ),
            E::NoSandbox => {
                Self::new(StatusCode::CONFLICT, "sandbox_unavailable", "this deployment has no sandbox on this server")
            }
            E::Vault => {
                tracing::error!("the vault could not seal a value");
                Self::internal()
            }
            E::NotReady => {
                Self::new(StatusCode::CONFLICT, "deployment_not_ready", "the deployment is still provisioning")
            }
            E::ThreadBusy => Self::new(
                StatusCode::CONFLICT,
                "thread_busy",
                "a run is active on this thread and the deployment's busy_policy is `reject`",
            ),
            E::Contended => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                "the resource changed repeatedly while the request was applied; retry",
            ),
            E::ModelNotConfigured(m) => Self::validation(m),
            E::NoActiveRun => Self::conflict("no run is active on this thread"),
            E::NotPending => Self::conflict("the steering request is not pending (answered already, or its run ended)"),
            E::WrongReply(m) => Self::validation(m),
            E::Unauthorized => Self::unauthorized("invalid or missing token"),
            E::Unjudged(m) => Self::conflict(m),
            E::InvalidInput(errors) => with(
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_error",
                    "the edited input does not match the tool's input schema; the request is still pending",
                ),
                errors,
            ),
        }
    }
}

impl From<herm_sandbox::Error> for ApiError {
    fn from(e: herm_sandbox::Error) -> Self {
        use herm_sandbox::Error as E;
        match e {
            E::PathEscape(p) => Self::validation(format!("the path `{p}` is outside /workspace")),
            E::NotFound(p) => Self::not_found(&format!("`{p}`")),
            E::Failed(m) => Self::validation(m),
            other => {
                tracing::warn!(error = %other, "sandbox unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "sandbox_unavailable", other.to_string())
            }
        }
    }
}

/// Fallback for unknown routes.
pub async fn no_route() -> ApiError {
    ApiError::not_found("route")
}

/// Fallback for a known route with the wrong method.
pub async fn bad_method() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not accept that method")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_clipped_at_a_character_boundary() {
        assert_eq!(clipped("short".into()), "short");
        let c = clipped("é".repeat(MAX_TEXT));
        assert!(c.len() <= MAX_TEXT + '…'.len_utf8() && c.ends_with('…'));
        assert!(c.trim_end_matches('…').chars().all(|ch| ch == 'é'));
    }
}
