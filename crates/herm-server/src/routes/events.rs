//! The log as a list (audit) and as SSE streams, per thread and per deployment.

use super::deployments::load;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Query, id, limit};
use crate::sse::{Scope, cursor, stream};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use herm_store::{EventFilter, ThreadRecord};
use herm_types::api::Page;
use herm_types::*;

async fn thread(st: &AppState, raw: &str) -> ApiResult<ThreadRecord> {
    let tid: ThreadId = id(raw, "thread")?;
    Ok(st.engine.thread(&tid).await?)
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The `sequence` to read after.
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/threads/{thread_id}/events", tag = "events", params(ListQuery),
    responses((status = 200, body = Page<Event>), (status = 404, body = herm_types::api::Problem)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<Event>>> {
    caller.require("deployments:read")?;
    let t = thread(&st, &tid).await?;
    let limit = limit(q.limit)?;
    let after = cursor(&HeaderMap::new(), q.cursor.as_deref())?;
    let data = st.engine.thread_events(&t.id, after, limit).await?;
    let next_cursor = (data.len() == limit).then(|| data.last().map(|e| e.sequence.0.to_string())).flatten();
    Ok(Json(Page { data, next_cursor }))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Resume after this cursor (same as `Last-Event-ID`).
    after: Option<String>,
}

#[utoipa::path(get, path = "/v1/threads/{thread_id}/events/stream", tag = "events", params(StreamQuery),
    responses((status = 200, description = "SSE stream of the thread's events; `id` is the event's `sequence`", content_type = "text/event-stream")))]
pub async fn thread_stream(
    State(st): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> ApiResult<Response> {
    caller.require("deployments:read")?;
    let t = thread(&st, &tid).await?;
    let after = cursor(&headers, q.after.as_deref())?;
    Ok(stream(st.clone(), t.deployment_id.clone(), Scope::Thread(t.id), after).into_response())
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeploymentStreamQuery {
    thread_id: Option<String>,
    run_id: Option<String>,
    /// Resume after this cursor (same as `Last-Event-ID`).
    after: Option<String>,
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/events", tag = "events", params(DeploymentStreamQuery),
    responses((status = 200, description = "SSE stream of every thread of the deployment; `id` is the event's `deployment_sequence`", content_type = "text/event-stream")))]
pub async fn deployment_stream(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    headers: HeaderMap,
    Query(q): Query<DeploymentStreamQuery>,
) -> ApiResult<Response> {
    caller.require("deployments:read")?;
    let d = load(&st, &dep).await?;
    let filter = EventFilter {
        thread_id: q
            .thread_id
            .as_deref()
            .map(|t| ThreadId::parse(t).map_err(|_| ApiError::validation("invalid thread_id")))
            .transpose()?,
        run_id: q
            .run_id
            .as_deref()
            .map(|r| RunId::parse(r).map_err(|_| ApiError::validation("invalid run_id")))
            .transpose()?,
    };
    let after = cursor(&headers, q.after.as_deref())?;
    Ok(stream(st.clone(), d.id, Scope::Deployment(filter), after).into_response())
}
