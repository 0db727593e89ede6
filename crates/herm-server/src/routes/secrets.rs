//! Secrets (`secrets:write`): values go into the vault encrypted and never come out through
//! the API; only metadata and the `sec_…` reference are returned.

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, id};
use crate::idem::{created, idempotent};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use herm_store::SecretRecord;
use herm_types::SecretId;
use herm_types::api::{Page, SecretCreate, SecretMeta};
use herm_types::config::{limits, valid_env_name};

fn meta(r: SecretRecord) -> SecretMeta {
    SecretMeta { secret_id: r.id, name: r.name, description: r.description, created_at: r.created_at }
}

#[utoipa::path(post, path = "/v1/secrets", tag = "secrets", request_body = SecretCreate,
    responses((status = 201, body = SecretMeta), (status = 400, body = herm_types::api::Problem)))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<SecretCreate>,
) -> Response {
    let run = async {
        caller.require("secrets:write")?;
        let req = &body.value;
        if !valid_env_name(&req.name) {
            return Err(ApiError::validation(
                "`name`: letters, digits and `_`, not starting with a digit, at most 128",
            ));
        }
        if req.value.is_empty() || req.value.len() > limits::MAX_SECRET_VALUE {
            return Err(ApiError::validation(format!("`value` must be 1-{} bytes", limits::MAX_SECRET_VALUE)));
        }
        if req.description.as_ref().is_some_and(|d| d.len() > 1000) {
            return Err(ApiError::validation("`description` is longer than 1000 bytes"));
        }
        let rec = st.engine.create_secret(req.name.clone(), &req.value, req.description.clone()).await?;
        created(StatusCode::CREATED, &meta(rec))
    };
    idempotent(&st, &caller, &headers, "secrets", &body.raw, run).await
}

#[utoipa::path(get, path = "/v1/secrets", tag = "secrets", responses((status = 200, body = Page<SecretMeta>)))]
pub async fn list(State(st): State<AppState>, caller: Caller) -> ApiResult<Json<Page<SecretMeta>>> {
    caller.require("secrets:write")?;
    let data = st.engine.list_secrets().await?.into_iter().map(meta).collect();
    Ok(Json(Page { data, next_cursor: None }))
}

#[utoipa::path(delete, path = "/v1/secrets/{secret_id}", tag = "secrets", responses((status = 204), (status = 404, body = herm_types::api::Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path(secret_id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require("secrets:write")?;
    let sid: SecretId = id(&secret_id, "secret")?;
    st.engine.delete_secret(&sid).await?;
    Ok(StatusCode::NO_CONTENT)
}
