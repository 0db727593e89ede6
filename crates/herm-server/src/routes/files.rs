//! The Files API on a deployment's workspace: list, read, write, delete. Paths are relative
//! to `/workspace`; anything that resolves outside it (including through symlinks) is a 400.

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Query, id, read_bounded};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use herm_engine::workspace::MAX_FILE;
use herm_types::DeploymentId;
use serde::Serialize;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PathQuery {
    /// Relative to /workspace (default: the workspace root).
    path: Option<String>,
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RequiredPath {
    /// Relative to /workspace.
    #[param(min_length = 1)]
    path: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FileEntry {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    modified_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Listing {
    path: String,
    entries: Vec<FileEntry>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Written {
    path: String,
    size: u64,
    modified_at: chrono::DateTime<chrono::Utc>,
}

fn time(secs: f64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros((secs * 1e6) as i64).unwrap_or_default()
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/files", tag = "files", params(PathQuery),
    responses((status = 200, body = Listing), (status = 400, body = herm_types::api::Problem), (status = 404, body = herm_types::api::Problem)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    Query(q): Query<PathQuery>,
) -> ApiResult<Json<Listing>> {
    caller.require("deployments:read")?;
    let path = q.path.unwrap_or_default();
    let did: DeploymentId = id(&dep, "deployment")?;
    let entries = st
        .engine
        .list_files(&did, &path)
        .await?
        .into_iter()
        .map(|e| FileEntry {
            kind: if e.is_dir { "directory" } else { "file" },
            size: (!e.is_dir).then_some(e.size),
            modified_at: time(e.modified),
            name: e.name,
        })
        .collect();
    Ok(Json(Listing { path, entries }))
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/files/content", tag = "files", params(RequiredPath),
    responses((status = 200, description = "The file's bytes", content_type = "application/octet-stream"), (status = 404, body = herm_types::api::Problem)))]
pub async fn read(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    Query(q): Query<RequiredPath>,
) -> ApiResult<Response> {
    caller.require("deployments:read")?;
    let path = q.path;
    let did: DeploymentId = id(&dep, "deployment")?;
    let bytes = st.engine.read_file(&did, &path).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], Body::from(bytes)).into_response())
}

#[utoipa::path(put, path = "/v1/deployments/{deployment_id}/files", tag = "files", params(RequiredPath),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = Written), (status = 400, body = herm_types::api::Problem), (status = 413, body = herm_types::api::Problem)))]
pub async fn write(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    Query(q): Query<RequiredPath>,
    body: Body,
) -> ApiResult<Json<Written>> {
    caller.require("deployments:write")?;
    let path = q.path;
    let did: DeploymentId = id(&dep, "deployment")?;
    let data = read_bounded(body, MAX_FILE).await?;
    let w = st.engine.write_file(&did, &path, data.to_vec()).await?;
    Ok(Json(Written { path, size: w.size, modified_at: time(w.modified) }))
}

#[utoipa::path(delete, path = "/v1/deployments/{deployment_id}/files", tag = "files", params(RequiredPath),
    responses((status = 204), (status = 404, body = herm_types::api::Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    Query(q): Query<RequiredPath>,
) -> ApiResult<StatusCode> {
    caller.require("deployments:write")?;
    let path = q.path;
    let did: DeploymentId = id(&dep, "deployment")?;
    st.engine.delete_file(&did, &path).await?;
    Ok(StatusCode::NO_CONTENT)
}
