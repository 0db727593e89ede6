//! The Dreams API on a deployment: dream now, list dreams, and one dream with what it changed.

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ListQuery, Query, id, next_cursor};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herm_types::api::Page;
use herm_types::memory::Dream;
use herm_types::*;

#[utoipa::path(post, path = "/v1/deployments/{deployment_id}/dreams", tag = "dreams",
    responses((status = 202, body = Dream), (status = 404, body = herm_types::api::Problem), (status = 409, body = herm_types::api::Problem)))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
) -> ApiResult<(StatusCode, Json<Dream>)> {
    caller.require("deployments:write")?;
    Ok((StatusCode::ACCEPTED, Json(st.engine.start_dream(&id(&dep, "deployment")?).await?)))
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/dreams", tag = "dreams", params(ListQuery),
    responses((status = 200, body = Page<Dream>), (status = 404, body = herm_types::api::Problem)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<Dream>>> {
    caller.require("deployments:read")?;
    let (limit, before) = q.page::<DreamId>()?;
    let rows = st.engine.list_dreams(&id(&dep, "deployment")?, before, limit).await?;
    Ok(Json(Page { next_cursor: next_cursor(&rows, limit, |d| d.dream_id.to_string()), data: rows }))
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/dreams/{dream_id}", tag = "dreams",
    responses((status = 200, body = Dream), (status = 404, body = herm_types::api::Problem)))]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, dream)): Path<(String, String)>,
) -> ApiResult<Json<Dream>> {
    caller.require("deployments:read")?;
    Ok(Json(st.engine.get_dream(&id(&dep, "deployment")?, &id(&dream, "dream")?).await?))
}
