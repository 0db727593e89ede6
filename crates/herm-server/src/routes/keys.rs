//! API keys (admin): create (the key is shown once), list, revoke.

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, id};
use crate::idem::{created, idempotent};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use herm_store::ApiKeyRecord;
use herm_types::ApiKeyId;
use herm_types::api::{ApiKeyCreate, ApiKeyCreated, ApiKeyMeta, Page};

pub fn meta(r: ApiKeyRecord) -> ApiKeyMeta {
    ApiKeyMeta { key_id: r.id, name: r.name, scopes: r.scopes, created_at: r.created_at, revoked_at: r.revoked_at }
}

#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = ApiKeyCreate,
    responses((status = 201, body = ApiKeyCreated), (status = 400, body = herm_types::api::Problem)))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<ApiKeyCreate>,
) -> Response {
    let run = async {
        caller.require("admin")?;
        let req = body.value;
        if req.name.trim().is_empty() || req.name.len() > 200 {
            return Err(ApiError::validation("`name` must be 1-200 characters"));
        }
        if req.scopes.is_empty() {
            return Err(ApiError::validation("`scopes` must list at least one scope"));
        }
        let (rec, key) = st.engine.create_api_key(req.name, req.scopes).await?;
        created(StatusCode::CREATED, &ApiKeyCreated { meta: meta(rec), key })
    };
    idempotent(&st, &caller, &headers, "api-keys", &body.raw, run).await
}

#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", responses((status = 200, body = Page<ApiKeyMeta>)))]
pub async fn list(State(st): State<AppState>, caller: Caller) -> ApiResult<Json<Page<ApiKeyMeta>>> {
    caller.require("admin")?;
    let data = st.engine.list_api_keys().await?.into_iter().map(meta).collect();
    Ok(Json(Page { data, next_cursor: None }))
}

#[utoipa::path(delete, path = "/v1/api-keys/{key_id}", tag = "api-keys", responses((status = 204), (status = 404, body = herm_types::api::Problem)))]
pub async fn revoke(State(st): State<AppState>, caller: Caller, Path(key_id): Path<String>) -> ApiResult<StatusCode> {
    caller.require("admin")?;
    let kid: ApiKeyId = id(&key_id, "api key")?;
    st.engine.revoke_api_key(&kid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who is calling: the key's id, name and scopes (so a client such as the console shows
/// only what the key may do).
#[utoipa::path(get, path = "/v1/me", tag = "api-keys",
    responses((status = 200, body = ApiKeyMeta), (status = 401, body = herm_types::api::Problem)))]
pub async fn me(caller: Caller) -> Json<ApiKeyMeta> {
    Json(ApiKeyMeta {
        key_id: caller.key_id,
        name: caller.name,
        scopes: caller.scopes,
        created_at: caller.created_at,
        revoked_at: None,
    })
}
