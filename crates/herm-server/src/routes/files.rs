//! The Files API on a deployment's workspace: list, read, write, delete. Paths are relative
//! to `/workspace`; anything that resolves outside it (including through symlinks) is a 400.

use super::deployments::load;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Query, read_bounded};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use herm_sandbox::files;
use herm_store::Append;
use herm_types::{EventKind, NewEvent};
use serde::Serialize;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PathQuery {
    /// Relative to /workspace (default: the workspace root).
    path: Option<String>,
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

/// The deployment's running sandbox, held in use for the request.
type Held = (herm_store::DeploymentRecord, std::sync::Arc<dyn herm_sandbox::Sandbox>, herm_engine::InUse);

async fn sandbox(st: &AppState, dep: &str) -> ApiResult<Held> {
    let d = load(st, dep).await?;
    if st.engine.sandbox().is_none() || !d.spec.sandbox.enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "sandbox_unavailable",
            "this deployment has no sandbox on this server",
        ));
    }
    let (sb, guard) = st.engine.use_sandbox(&d.id, &d.spec).await?;
    Ok((d, sb, guard))
}

/// With `features.filesystem_webhooks`, a change made through the API is an event on the
/// deployment's default thread.
async fn record(st: &AppState, d: &herm_store::DeploymentRecord, change: &str, path: &str) -> ApiResult<()> {
    if !d.spec.features.filesystem_webhooks {
        return Ok(());
    }
    let rel = files::relative(path)?;
    let ev = NewEvent::new(None, EventKind::Filesystem { change: change.into(), path: rel });
    st.engine.store().append(Append::new(d.default_thread_id.clone(), vec![ev])).await?;
    Ok(())
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
    let (d, sb, _in_use) = sandbox(&st, &dep).await?;
    let id = d.id.clone();
    let entries = files::list(sb.as_ref(), &id, &path)
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

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/files/content", tag = "files", params(PathQuery),
    responses((status = 200, description = "The file's bytes", content_type = "application/octet-stream"), (status = 404, body = herm_types::api::Problem)))]
pub async fn read(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    Query(q): Query<PathQuery>,
) -> ApiResult<Response> {
    caller.require("deployments:read")?;
    let path = q.path.ok_or_else(|| ApiError::validation("`path` is required"))?;
    let (d, sb, _in_use) = sandbox(&st, &dep).await?;
    let id = d.id.clone();
    let bytes = files::read(sb.as_ref(), &id, &path).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], Body::from(bytes)).into_response())
}

#[utoipa::path(put, path = "/v1/deployments/{deployment_id}/files", tag = "files", params(PathQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = Written), (status = 400, body = herm_types::api::Problem), (status = 413, body = herm_types::api::Problem)))]
pub async fn write(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    Query(q): Query<PathQuery>,
    body: Body,
) -> ApiResult<Json<Written>> {
    caller.require("deployments:write")?;
    let path = q.path.ok_or_else(|| ApiError::validation("`path` is required"))?;
    files::relative(&path)?;
    let data = read_bounded(body, files::MAX_FILE).await?;
    let (d, sb, _in_use) = sandbox(&st, &dep).await?;
    let id = d.id.clone();
    let (size, modified, created) = files::write(sb.as_ref(), &id, &path, data.to_vec()).await?;
    record(&st, &d, if created { "created" } else { "modified" }, &path).await?;
    Ok(Json(Written { path, size, modified_at: time(modified) }))
}

#[utoipa::path(delete, path = "/v1/deployments/{deployment_id}/files", tag = "files", params(PathQuery),
    responses((status = 204), (status = 404, body = herm_types::api::Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    Query(q): Query<PathQuery>,
) -> ApiResult<StatusCode> {
    caller.require("deployments:write")?;
    let path = q.path.ok_or_else(|| ApiError::validation("`path` is required"))?;
    let (d, sb, _in_use) = sandbox(&st, &dep).await?;
    let id = d.id.clone();
    files::delete(sb.as_ref(), &id, &path).await?;
    record(&st, &d, "deleted", &path).await?;
    Ok(StatusCode::NO_CONTENT)
}
