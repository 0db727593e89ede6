//! Deployments: create (→ `provisioning` → `ready`), get, list, patch (secrets merged per
//! key), delete.

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Query, id, limit, next_cursor};
use crate::idem::{created, idempotent};
use crate::precondition::{IfMatch, etag_headers};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use herm_store::{DeploymentQuery, DeploymentRecord};
use herm_types::api::{DeletedResponse, DeploymentResponse, EventsInfo, FilesystemInfo, Page};
use herm_types::config::{DeploymentPatch, DeploymentSpec};
use herm_types::*;

pub fn response(d: DeploymentRecord) -> DeploymentResponse {
    DeploymentResponse {
        filesystem: FilesystemInfo {
            workspace_path: "/workspace".into(),
            persistent: d.spec.sandbox.persistent_filesystem,
        },
        events: EventsInfo { transport: "sse".into(), url: format!("/v1/deployments/{}/events", d.id) },
        deployment_id: d.id,
        status: d.status,
        thread_id: d.default_thread_id,
        created_at: d.created_at,
        updated_at: d.updated_at,
        error: d.error,
        spec: d.spec,
    }
}

/// Loads a live deployment by its path id, or 404.
pub async fn load(st: &AppState, raw: &str) -> ApiResult<DeploymentRecord> {
    let did: DeploymentId = id(raw, "deployment")?;
    Ok(st.engine.deployment(&did).await?)
}

/// A deployment with its `ETag`.
fn tagged(d: DeploymentRecord) -> (HeaderMap, Json<DeploymentResponse>) {
    (etag_headers(d.revision), Json(response(d)))
}

#[utoipa::path(post, path = "/v1/deployments", tag = "deployments", request_body = DeploymentSpec,
    responses((status = 201, body = DeploymentResponse), (status = 400, body = herm_types::api::Problem), (status = 422, body = herm_types::api::Problem)))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<DeploymentSpec>,
) -> Response {
    let run = async {
        caller.require("deployments:write")?;
        let rec = st.engine.create_deployment(body.value.clone()).await?;
        created(StatusCode::CREATED, &response(rec))
    };
    idempotent(&st, &caller, &headers, "deployments", &body.raw, run).await
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}", tag = "deployments",
    responses((status = 200, body = DeploymentResponse), (status = 404, body = herm_types::api::Problem)))]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
) -> ApiResult<(HeaderMap, Json<DeploymentResponse>)> {
    caller.require("deployments:read")?;
    Ok(tagged(load(&st, &dep).await?))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    customer_id: Option<String>,
    status: Option<DeploymentStatus>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/deployments", tag = "deployments", params(ListQuery),
    responses((status = 200, body = Page<DeploymentResponse>)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<DeploymentResponse>>> {
    caller.require("deployments:read")?;
    let limit = limit(q.limit)?;
    let before = match q.cursor.as_deref() {
        Some(c) => Some(DeploymentId::parse(c).map_err(|_| ApiError::validation("invalid cursor"))?),
        None => None,
    };
    let rows = st
        .engine
        .list_deployments(DeploymentQuery { customer_id: q.customer_id, status: q.status, before, limit })
        .await?;
    let next_cursor = next_cursor(&rows, limit, |d| d.id.to_string());
    Ok(Json(Page { data: rows.into_iter().map(response).collect(), next_cursor }))
}

#[utoipa::path(patch, path = "/v1/deployments/{deployment_id}", tag = "deployments", request_body = DeploymentPatch,
    responses((status = 200, body = DeploymentResponse), (status = 404, body = herm_types::api::Problem), (status = 422, body = herm_types::api::Problem)))]
pub async fn patch(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    IfMatch(if_match): IfMatch,
    body: JsonBody<DeploymentPatch>,
) -> ApiResult<(HeaderMap, Json<DeploymentResponse>)> {
    caller.require("deployments:write")?;
    let did: DeploymentId = id(&dep, "deployment")?;
    Ok(tagged(st.engine.patch_deployment(&did, body.value, if_match).await?))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Keep the workspace volume (default false: it is removed with the sandbox).
    retain_filesystem: Option<bool>,
}

#[utoipa::path(delete, path = "/v1/deployments/{deployment_id}", tag = "deployments", params(DeleteQuery),
    responses((status = 200, body = DeletedResponse), (status = 404, body = herm_types::api::Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    IfMatch(if_match): IfMatch,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<Json<DeletedResponse>> {
    caller.require("deployments:write")?;
    let did: DeploymentId = id(&dep, "deployment")?;
    st.engine.delete_deployment(&did, if_match, q.retain_filesystem.unwrap_or(false)).await?;
    Ok(Json(DeletedResponse { deployment_id: did, status: DeploymentStatus::Deleted }))
}
