//! Model providers (admin): stored providers override configured ones of the same name.

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herm_types::api::{Page, ProviderResponse};
use herm_types::config::{FieldError, ProviderSpec, valid_env_name, valid_tool_name};

#[utoipa::path(get, path = "/v1/providers", tag = "providers", responses((status = 200, body = Page<ProviderResponse>)))]
pub async fn list(State(st): State<AppState>, caller: Caller) -> ApiResult<Json<Page<ProviderResponse>>> {
    caller.require("admin")?;
    let data = st
        .engine
        .providers()
        .list()
        .await?
        .into_iter()
        .map(|(name, source, spec)| ProviderResponse::new(name, source, spec))
        .collect();
    Ok(Json(Page { data, next_cursor: None }))
}

#[utoipa::path(put, path = "/v1/providers/{name}", tag = "providers", request_body = ProviderSpec,
    responses((status = 200, body = ProviderResponse), (status = 422, body = herm_types::api::Problem)))]
pub async fn put(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: JsonBody<ProviderSpec>,
) -> ApiResult<Json<ProviderResponse>> {
    caller.require("admin")?;
    if !valid_tool_name(&name) {
        return Err(ApiError::validation("provider names are 1-64 letters, digits, `_` or `-`"));
    }
    let spec = body.value;
    let mut errs = Vec::new();
    if let Some(u) = &spec.base_url
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        errs.push(FieldError::new("base_url", "not an http(s) URL"));
    }
    if let Some(v) = &spec.api_key_env
        && !valid_env_name(v)
    {
        errs.push(FieldError::new("api_key_env", "not an environment variable name"));
    }
    if spec.models.keys().any(|m| m.is_empty() || m.len() > 200) {
        errs.push(FieldError::new("models", "model names must be 1-200 characters"));
    }
    for (name, m) in &spec.models {
        if m.max_output_tokens.is_some_and(|n| !(1..=herm_types::config::MAX_OUTPUT_TOKENS).contains(&n)) {
            errs.push(FieldError::new(
                format!("models.{name}.max_output_tokens"),
                format!("must be 1 to {}", herm_types::config::MAX_OUTPUT_TOKENS),
            ));
        }
    }
    if !errs.is_empty() {
        return Err(ApiError::fields(errs));
    }
    st.engine.put_provider(&name, &spec).await?;
    Ok(Json(ProviderResponse::new(name, "api", spec)))
}

#[utoipa::path(delete, path = "/v1/providers/{name}", tag = "providers", responses((status = 204), (status = 404, body = herm_types::api::Problem)))]
pub async fn delete(State(st): State<AppState>, caller: Caller, Path(name): Path<String>) -> ApiResult<StatusCode> {
    caller.require("admin")?;
    st.engine.delete_provider(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
