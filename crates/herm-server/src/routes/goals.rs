//! The Goals API on a deployment: create (the loop starts at once), list, get with runs and
//! progress, cancel.

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
use herm_types::api::Page;
use herm_types::proactive::*;
use herm_types::*;

#[utoipa::path(post, path = "/v1/deployments/{deployment_id}/goals", tag = "goals", request_body = GoalCreate,
    responses((status = 201, body = Goal), (status = 400, body = herm_types::api::Problem), (status = 404, body = herm_types::api::Problem)))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    headers: HeaderMap,
    body: JsonBody<GoalCreate>,
) -> Response {
    let route = format!("goals:{dep}");
    let run = async {
        caller.require("deployments:write")?;
        let did: DeploymentId = id(&dep, "deployment")?;
        created(StatusCode::CREATED, &st.engine.create_goal(&did, body.value.clone()).await?.value)
    };
    idempotent(&st, &caller, &headers, &route, &body.raw, run).await
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/goals", tag = "goals", params(ListQuery),
    responses((status = 200, body = Page<Goal>)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<Goal>>> {
    caller.require("deployments:read")?;
    let did: DeploymentId = id(&dep, "deployment")?;
    let (limit, before) = q.page::<GoalId>()?;
    let rows = st.engine.list_goals(&did, before, limit).await?;
    Ok(Json(Page { next_cursor: next_cursor(&rows, limit, |g| g.goal_id.to_string()), data: rows }))
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/goals/{goal_id}", tag = "goals",
    responses((status = 200, body = Goal), (status = 404, body = herm_types::api::Problem)))]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, goal)): Path<(String, String)>,
) -> ApiResult<(HeaderMap, Json<Goal>)> {
    caller.require("deployments:read")?;
    let g = st.engine.goal(&id(&dep, "deployment")?, &id(&goal, "goal")?).await?;
    Ok((etag_headers(g.revision), Json(g.value)))
}

#[utoipa::path(post, path = "/v1/deployments/{deployment_id}/goals/{goal_id}/cancel", tag = "goals",
    responses((status = 200, body = Goal), (status = 404, body = herm_types::api::Problem), (status = 409, body = herm_types::api::Problem), (status = 412, body = herm_types::api::Problem)))]
pub async fn cancel(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, goal)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
) -> ApiResult<(HeaderMap, Json<Goal>)> {
    caller.require("deployments:write")?;
    let g = st.engine.cancel_goal(&id(&dep, "deployment")?, &id(&goal, "goal")?, if_match).await?;
    Ok((etag_headers(g.revision), Json(g.value)))
}
