//! The Memories API on a deployment: list (`q`, `prefix`), get, create, update, delete (a
//! purge: every version and the file go too), versions and redaction of a version.

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{JsonBody, ListQuery, Query, id, next_cursor};
use crate::idem::{created, idempotent};
use crate::precondition::{IfMatch, etag_headers};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use herm_engine::memory::MemoryQuery;
use herm_types::api::Page;
use herm_types::memory::*;
use herm_types::*;

/// `?q=&prefix=&limit=&cursor=`.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MemoryListQuery {
    /// A case-insensitive substring of the path or the content.
    pub q: Option<String>,
    /// A path prefix (e.g. `preferences/`).
    pub prefix: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/memories", tag = "memories", params(MemoryListQuery),
    responses((status = 200, body = Page<Memory>), (status = 404, body = herm_types::api::Problem)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    Query(q): Query<MemoryListQuery>,
) -> ApiResult<Json<Page<Memory>>> {
    caller.require("deployments:read")?;
    let did: DeploymentId = id(&dep, "deployment")?;
    let (limit, before) = ListQuery { limit: q.limit, cursor: q.cursor }.page::<MemoryId>()?;
    let query = MemoryQuery { q: q.q.filter(|s| !s.is_empty()), prefix: q.prefix, before, limit };
    let rows = st.engine.list_memories(&did, query).await?;
    Ok(Json(Page { next_cursor: next_cursor(&rows, limit, |m| m.memory_id.to_string()), data: rows }))
}

#[utoipa::path(post, path = "/v1/deployments/{deployment_id}/memories", tag = "memories", request_body = MemoryCreate,
    responses((status = 201, body = Memory), (status = 400, body = herm_types::api::Problem), (status = 404, body = herm_types::api::Problem), (status = 409, body = herm_types::api::Problem)))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    headers: HeaderMap,
    body: JsonBody<MemoryCreate>,
) -> Response {
    let route = format!("memories:{dep}");
    let run = async {
        caller.require("deployments:write")?;
        let did: DeploymentId = id(&dep, "deployment")?;
        created(StatusCode::CREATED, &st.engine.create_memory(&did, body.value.clone()).await?)
    };
    idempotent(&st, &caller, &headers, &route, &body.raw, run).await
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/memories/{memory_id}", tag = "memories",
    responses((status = 200, body = Memory), (status = 404, body = herm_types::api::Problem)))]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, mem)): Path<(String, String)>,
) -> ApiResult<(HeaderMap, Json<Memory>)> {
    caller.require("deployments:read")?;
    let m = st.engine.memory(&id(&dep, "deployment")?, &id(&mem, "memory")?).await?;
    Ok((etag_headers(m.version), Json(m)))
}

#[utoipa::path(patch, path = "/v1/deployments/{deployment_id}/memories/{memory_id}", tag = "memories", request_body = MemoryUpdate,
    responses((status = 200, body = Memory), (status = 400, body = herm_types::api::Problem), (status = 404, body = herm_types::api::Problem), (status = 409, body = herm_types::api::Problem), (status = 412, body = herm_types::api::Problem)))]
pub async fn patch(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, mem)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
    body: JsonBody<MemoryUpdate>,
) -> ApiResult<(HeaderMap, Json<Memory>)> {
    caller.require("deployments:write")?;
    let m = st.engine.update_memory(&id(&dep, "deployment")?, &id(&mem, "memory")?, body.value, if_match).await?;
    Ok((etag_headers(m.version), Json(m)))
}

#[utoipa::path(delete, path = "/v1/deployments/{deployment_id}/memories/{memory_id}", tag = "memories",
    responses((status = 204), (status = 404, body = herm_types::api::Problem), (status = 412, body = herm_types::api::Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, mem)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
) -> ApiResult<StatusCode> {
    caller.require("deployments:write")?;
    st.engine.delete_memory(&id(&dep, "deployment")?, &id(&mem, "memory")?, if_match).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/memories/{memory_id}/versions", tag = "memories",
    responses((status = 200, body = MemoryVersionList), (status = 404, body = herm_types::api::Problem)))]
pub async fn versions(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, mem)): Path<(String, String)>,
) -> ApiResult<Json<MemoryVersionList>> {
    caller.require("deployments:read")?;
    let data = st.engine.memory_versions(&id(&dep, "deployment")?, &id(&mem, "memory")?).await?;
    Ok(Json(MemoryVersionList { data }))
}

#[utoipa::path(post, path = "/v1/deployments/{deployment_id}/memories/{memory_id}/versions/{version}/redact", tag = "memories",
    responses((status = 200, body = MemoryVersion), (status = 404, body = herm_types::api::Problem), (status = 409, body = herm_types::api::Problem)))]
pub async fn redact(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, mem, version)): Path<(String, String, String)>,
) -> ApiResult<Json<MemoryVersion>> {
    caller.require("deployments:write")?;
    let v: i64 =
        version.parse().ok().filter(|v| *v >= 1).ok_or_else(|| crate::error::ApiError::not_found("memory version"))?;
    Ok(Json(st.engine.redact_memory_version(&id(&dep, "deployment")?, &id(&mem, "memory")?, v).await?))
}
