//! Threads (sessions) of a deployment, and runs.

use super::deployments::load;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, ListQuery, Query, id, next_cursor};
use crate::idem::{created, idempotent};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use herm_store::{ThreadQuery, ThreadRecord};
use herm_types::api::{
    Page, PendingRequest, RunResponse, ThreadCreate, ThreadDetail, ThreadMessage, ThreadPatch, ThreadSummary,
};
use herm_types::*;

fn summary(t: ThreadRecord) -> ThreadSummary {
    ThreadSummary {
        thread_id: t.id,
        deployment_id: t.deployment_id,
        title: t.title,
        status: t.status,
        message_count: t.message_count,
        last_sequence: t.last_sequence,
        created_at: t.created_at,
        last_activity_at: t.last_activity_at,
    }
}

/// Loads a thread of the given deployment, or 404.
pub async fn load_thread(st: &AppState, dep: &DeploymentId, raw: &str) -> ApiResult<ThreadRecord> {
    let tid: ThreadId = id(raw, "thread")?;
    Ok(st.engine.deployment_thread(dep, &tid).await?)
}

fn check_title(t: &str) -> ApiResult<()> {
    if t.len() > 500 { Err(ApiError::validation("`title` is longer than 500 bytes")) } else { Ok(()) }
}

#[utoipa::path(post, path = "/v1/deployments/{deployment_id}/threads", tag = "threads", request_body = ThreadCreate,
    responses((status = 201, body = ThreadSummary)))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    headers: HeaderMap,
    body: JsonBody<ThreadCreate>,
) -> Response {
    let route = format!("threads:{dep}");
    let run = async {
        caller.require("deployments:write")?;
        let d = load(&st, &dep).await?;
        let title = body.value.title.clone();
        if let Some(t) = &title {
            check_title(t)?;
        }
        let t = st.engine.create_thread(&d.id, title).await?;
        created(StatusCode::CREATED, &summary(t))
    };
    idempotent(&st, &caller, &headers, &route, &body.raw, run).await
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/threads", tag = "threads", params(ListQuery),
    responses((status = 200, body = Page<ThreadSummary>)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<ThreadSummary>>> {
    caller.require("deployments:read")?;
    let d = load(&st, &dep).await?;
    let (limit, before) = q.page::<ThreadId>()?;
    let rows = st.engine.list_threads(ThreadQuery { deployment_id: d.id, before, limit }).await?;
    let next_cursor = next_cursor(&rows, limit, |t| t.id.to_string());
    Ok(Json(Page { data: rows.into_iter().map(summary).collect(), next_cursor }))
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/threads/{thread_id}", tag = "threads",
    responses((status = 200, body = ThreadDetail), (status = 404, body = herm_types::api::Problem)))]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, tid)): Path<(String, String)>,
) -> ApiResult<Json<ThreadDetail>> {
    caller.require("deployments:read")?;
    let did: DeploymentId = id(&dep, "deployment")?;
    let tid: ThreadId = id(&tid, "thread")?;
    let detail = st.engine.thread_detail(&did, &tid).await?;
    let pending = detail
        .pending
        .into_iter()
        .map(|p| PendingRequest {
            request_id: p.request_id,
            run_id: p.run_id,
            kind: p.kind,
            summary: p.summary,
            tool: p.tool,
            tool_use_id: p.tool_use_id,
            arguments: p.arguments,
            question: p.question,
            options: p.options,
            created_at: p.created_at,
        })
        .collect();
    let messages = detail
        .messages
        .into_iter()
        .map(|m| ThreadMessage { role: m.role, content: m.content, run_id: m.run_id, created_at: m.created_at })
        .collect();
    Ok(Json(ThreadDetail { summary: summary(detail.thread), messages, pending }))
}

#[utoipa::path(patch, path = "/v1/deployments/{deployment_id}/threads/{thread_id}", tag = "threads", request_body = ThreadPatch,
    responses((status = 200, body = ThreadSummary)))]
pub async fn patch(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, tid)): Path<(String, String)>,
    body: JsonBody<ThreadPatch>,
) -> ApiResult<Json<ThreadSummary>> {
    caller.require("deployments:write")?;
    let did: DeploymentId = id(&dep, "deployment")?;
    let tid: ThreadId = id(&tid, "thread")?;
    check_title(&body.value.title)?;
    Ok(Json(summary(st.engine.rename_thread(&did, &tid, &body.value.title).await?)))
}

#[utoipa::path(delete, path = "/v1/deployments/{deployment_id}/threads/{thread_id}", tag = "threads",
    responses((status = 204), (status = 404, body = herm_types::api::Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, tid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require("deployments:write")?;
    let did: DeploymentId = id(&dep, "deployment")?;
    let tid: ThreadId = id(&tid, "thread")?;
    st.engine.delete_thread(&did, &tid).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/runs/{run_id}", tag = "runs",
    responses((status = 200, body = RunResponse), (status = 404, body = herm_types::api::Problem)))]
pub async fn get_run(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, rid)): Path<(String, String)>,
) -> ApiResult<Json<RunResponse>> {
    caller.require("deployments:read")?;
    let did: DeploymentId = id(&dep, "deployment")?;
    let rid: RunId = id(&rid, "run")?;
    let r = st.engine.run(&did, &rid).await?;
    Ok(Json(RunResponse {
        run_id: r.id,
        thread_id: r.thread_id,
        deployment_id: r.deployment_id,
        status: r.status,
        kind: r.kind,
        trigger: r.trigger,
        started_at: r.started_at,
        ended_at: r.ended_at,
        steps: r.steps,
        usage: r.usage,
        error: r.error,
    }))
}
