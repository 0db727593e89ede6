//! The Automations API on a deployment (create with the schedule echoed back, list, get with
//! recent firings, patch, delete, run now, pause, resume, firings) and the webhook trigger
//! URL, which authenticates with the automation's own token instead of an API key.

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, ListQuery, Query, id, limit, next_cursor};
use crate::idem::{created, idempotent};
use crate::precondition::{IfMatch, etag_headers};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use herm_types::api::Page;
use herm_types::proactive::*;
use herm_types::*;

#[utoipa::path(post, path = "/v1/deployments/{deployment_id}/automations", tag = "automations", request_body = AutomationCreate,
    responses((status = 201, body = Automation), (status = 400, body = herm_types::api::Problem), (status = 404, body = herm_types::api::Problem)))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    headers: HeaderMap,
    body: JsonBody<AutomationCreate>,
) -> Response {
    let route = format!("automations:{dep}");
    let run = async {
        caller.require("deployments:write")?;
        let did: DeploymentId = id(&dep, "deployment")?;
        let c = st.engine.create_automation(&did, body.value.clone()).await?;
        created(StatusCode::CREATED, &c.value)
    };
    idempotent(&st, &caller, &headers, &route, &body.raw, run).await
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/automations", tag = "automations", params(ListQuery),
    responses((status = 200, body = Page<Automation>)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<Automation>>> {
    caller.require("deployments:read")?;
    let did: DeploymentId = id(&dep, "deployment")?;
    let (limit, before) = q.page::<AutomationId>()?;
    let rows = st.engine.list_automations(&did, before, limit).await?;
    Ok(Json(Page { next_cursor: next_cursor(&rows, limit, |a| a.automation_id.to_string()), data: rows }))
}

fn ids(dep: &str, auto: &str) -> ApiResult<(DeploymentId, AutomationId)> {
    Ok((id(dep, "deployment")?, id(auto, "automation")?))
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/automations/{automation_id}", tag = "automations",
    responses((status = 200, body = Automation), (status = 404, body = herm_types::api::Problem)))]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, auto)): Path<(String, String)>,
) -> ApiResult<(HeaderMap, Json<Automation>)> {
    caller.require("deployments:read")?;
    let (did, aid) = ids(&dep, &auto)?;
    let a = st.engine.automation(&did, &aid).await?;
    Ok((etag_headers(a.revision), Json(a.value)))
}

#[utoipa::path(patch, path = "/v1/deployments/{deployment_id}/automations/{automation_id}", tag = "automations",
    request_body = AutomationPatch,
    responses((status = 200, body = Automation), (status = 400, body = herm_types::api::Problem), (status = 404, body = herm_types::api::Problem), (status = 412, body = herm_types::api::Problem)))]
pub async fn patch(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, auto)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
    body: JsonBody<AutomationPatch>,
) -> ApiResult<(HeaderMap, Json<Automation>)> {
    caller.require("deployments:write")?;
    let (did, aid) = ids(&dep, &auto)?;
    let a = st.engine.patch_automation(&did, &aid, body.value, if_match).await?;
    Ok((etag_headers(a.revision), Json(a.value)))
}

#[utoipa::path(delete, path = "/v1/deployments/{deployment_id}/automations/{automation_id}", tag = "automations",
    responses((status = 204), (status = 404, body = herm_types::api::Problem), (status = 412, body = herm_types::api::Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, auto)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
) -> ApiResult<StatusCode> {
    caller.require("deployments:write")?;
    let (did, aid) = ids(&dep, &auto)?;
    st.engine.delete_automation(&did, &aid, if_match).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/deployments/{deployment_id}/automations/{automation_id}/run", tag = "automations",
    responses((status = 202, body = FiredRun), (status = 404, body = herm_types::api::Problem), (status = 409, body = herm_types::api::Problem)))]
pub async fn run_now(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, auto)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let route = format!("automation-run:{auto}");
    let run = async {
        caller.require("deployments:write")?;
        let (did, aid) = ids(&dep, &auto)?;
        created(StatusCode::ACCEPTED, &st.engine.run_automation_now(&did, &aid).await?)
    };
    idempotent(&st, &caller, &headers, &route, b"", run).await
}

#[utoipa::path(post, path = "/v1/deployments/{deployment_id}/automations/{automation_id}/pause", tag = "automations",
    responses((status = 200, body = Automation), (status = 404, body = herm_types::api::Problem), (status = 412, body = herm_types::api::Problem)))]
pub async fn pause(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, auto)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
) -> ApiResult<(HeaderMap, Json<Automation>)> {
    set_enabled(st, caller, dep, auto, if_match, false).await
}

#[utoipa::path(post, path = "/v1/deployments/{deployment_id}/automations/{automation_id}/resume", tag = "automations",
    responses((status = 200, body = Automation), (status = 404, body = herm_types::api::Problem), (status = 412, body = herm_types::api::Problem)))]
pub async fn resume(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, auto)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
) -> ApiResult<(HeaderMap, Json<Automation>)> {
    set_enabled(st, caller, dep, auto, if_match, true).await
}

async fn set_enabled(
    st: AppState,
    caller: Caller,
    dep: String,
    auto: String,
    if_match: Option<i64>,
    enabled: bool,
) -> ApiResult<(HeaderMap, Json<Automation>)> {
    caller.require("deployments:write")?;
    let (did, aid) = ids(&dep, &auto)?;
    let reason = (!enabled).then(|| "paused by an operator".to_owned());
    let a = st.engine.set_automation_enabled(&did, &aid, enabled, reason, if_match).await?;
    Ok((etag_headers(a.revision), Json(a.value)))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FiringsQuery {
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/automations/{automation_id}/firings", tag = "automations",
    params(FiringsQuery), responses((status = 200, body = Page<Firing>), (status = 404, body = herm_types::api::Problem)))]
pub async fn firings(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, auto)): Path<(String, String)>,
    Query(q): Query<FiringsQuery>,
) -> ApiResult<Json<Page<Firing>>> {
    caller.require("deployments:read")?;
    let (did, aid) = ids(&dep, &auto)?;
    let data = st.engine.automation_firings(&did, &aid, limit(q.limit)?).await?;
    Ok(Json(Page { data, next_cursor: None }))
}

/// `POST /v1/triggers/{automation_id}`: the automation's token as a bearer token (not an API
/// key), an optional `Herm-Delivery-Id`, any JSON body.
#[utoipa::path(post, path = "/v1/triggers/{automation_id}", tag = "automations", request_body = Object,
    responses((status = 202, body = FiredRun), (status = 400, body = herm_types::api::Problem), (status = 401, body = herm_types::api::Problem), (status = 409, body = herm_types::api::Problem)),
    security(("trigger_token" = [])))]
pub async fn trigger(
    State(st): State<AppState>,
    Path(auto): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<FiredRun>)> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("a trigger needs `Authorization: Bearer <its token>`"))?;
    let delivery = headers.get("herm-delivery-id").map(|v| v.to_str().unwrap_or("\u{0}"));
    let payload: serde_json::Value = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::validation(format!("the body is not JSON: {e}")))?
    };
    let fired = st.engine.trigger_automation(&auto, token, delivery, payload).await?;
    Ok((StatusCode::ACCEPTED, Json(fired)))
}
