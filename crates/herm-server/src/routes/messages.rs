//! Sending messages (`POST …/messages`) and user events (`POST /v1/threads/{id}/events`).

use super::deployments::load;
use super::threads::load_thread;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, MAX_MESSAGE_BODY, id};
use crate::idem::{created, idempotent};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use herm_engine::steering::Reply;
use herm_store::{DeploymentRecord, ThreadRecord};
use herm_types::api::*;
use herm_types::attachment::{self, AttachmentInput};
use herm_types::config::limits;
use herm_types::*;

fn check_content(field: &str, s: &str) -> ApiResult<()> {
    if s.trim().is_empty() {
        return Err(ApiError::validation(format!("`{field}` must not be empty")));
    }
    if s.len() > limits::MAX_MESSAGE {
        return Err(ApiError::validation(format!("`{field}` is longer than {} bytes", limits::MAX_MESSAGE)));
    }
    Ok(())
}

fn check_attachments(a: &[AttachmentInput]) -> ApiResult<()> {
    attachment::check_all(a).map_err(ApiError::validation)
}

fn ready(d: &DeploymentRecord) -> ApiResult<()> {
    match d.status {
        DeploymentStatus::Ready => Ok(()),
        DeploymentStatus::Provisioning => Err(herm_engine::Error::NotReady.into()),
        _ => Err(ApiError::new(StatusCode::CONFLICT, "deployment_not_ready", "the deployment failed to provision")),
    }
}

#[utoipa::path(post, path = "/v1/deployments/{deployment_id}/messages", tag = "messages", request_body = MessageRequest,
    responses((status = 202, body = MessageResponse), (status = 409, body = Problem)))]
pub async fn send(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    headers: HeaderMap,
    body: JsonBody<MessageRequest, MAX_MESSAGE_BODY>,
) -> Response {
    let route = format!("messages:{dep}");
    let run = async {
        caller.require("deployments:write")?;
        let req = body.value.clone();
        check_content("content", &req.content)?;
        check_attachments(&req.attachments)?;
        let d = load(&st, &dep).await?;
        ready(&d)?;
        let thread = match req.thread_id.as_deref() {
            None => d.default_thread_id.clone(),
            Some("new") => st.engine.create_thread(&d.id, None).await?.id,
            Some(t) => load_thread(&st, &d.id, t).await?.id,
        };
        let s = st.engine.submit_message(&d, &thread, req.content, req.attachments).await?;
        created(
            StatusCode::ACCEPTED,
            &MessageResponse {
                run_id: s.run_id,
                deployment_id: d.id,
                thread_id: thread,
                status: s.status,
                disposition: s.disposition,
            },
        )
    };
    idempotent(&st, &caller, &headers, &route, &body.raw, run).await
}

#[utoipa::path(post, path = "/v1/threads/{thread_id}/events", tag = "threads", request_body = UserEventsRequest,
    responses((status = 200, body = UserEventsResponse), (status = 409, body = Problem)))]
pub async fn user_events(
    State(st): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    headers: HeaderMap,
    body: JsonBody<UserEventsRequest, MAX_MESSAGE_BODY>,
) -> Response {
    let route = format!("events:{tid}");
    let run = async {
        caller.require("deployments:write")?;
        let req = body.value.clone();
        validate(&req)?;
        let tid: ThreadId = id(&tid, "thread")?;
        let thread = st.engine.thread(&tid).await?;
        let d = st.engine.deployment(&thread.deployment_id).await.map_err(|_| ApiError::not_found("thread"))?;
        let mut results = Vec::new();
        for ev in req.events {
            results.push(apply(&st, &d, &thread, ev).await?);
        }
        created(StatusCode::OK, &UserEventsResponse { thread_id: thread.id, results })
    };
    idempotent(&st, &caller, &headers, &route, &body.raw, run).await
}

fn validate(req: &UserEventsRequest) -> ApiResult<()> {
    if req.events.is_empty() || req.events.len() > 20 {
        return Err(ApiError::validation("`events` must hold 1-20 events"));
    }
    if req.events.iter().filter(|e| matches!(e, UserEvent::Message { .. })).count() > 1 {
        return Err(ApiError::validation("at most one `user.message` per request"));
    }
    for e in &req.events {
        match e {
            UserEvent::Message { content, attachments } => {
                check_content("content", content)?;
                check_attachments(attachments)?;
            }
            UserEvent::Steer { message } => check_content("message", message)?,
            UserEvent::Interrupt { message: Some(m) } if m.len() > limits::MAX_MESSAGE => {
                return Err(ApiError::validation("`message` is too long"));
            }
            UserEvent::Answer { answer, .. } => check_content("answer", answer)?,
            UserEvent::ToolConfirmation { deny_message: Some(m), .. } if m.len() > limits::MAX_MESSAGE => {
                return Err(ApiError::validation("`deny_message` is too long"));
            }
            UserEvent::ToolConfirmation { input: Some(i), .. } if !i.is_object() => {
                return Err(ApiError::validation("`input` must be a JSON object"));
            }
            _ => {}
        }
    }
    Ok(())
}

async fn apply(
    st: &AppState,
    d: &DeploymentRecord,
    thread: &ThreadRecord,
    ev: UserEvent,
) -> ApiResult<UserEventOutcome> {
    let outcome = |kind: &str, outcome: &str, run_id: Option<RunId>, disposition: Option<Disposition>| {
        UserEventOutcome { kind: kind.into(), outcome: outcome.into(), run_id, disposition }
    };
    match ev {
        UserEvent::Message { content, attachments } => {
            ready(d)?;
            let s = st.engine.submit_message(d, &thread.id, content, attachments).await?;
            let name = serde_json::to_value(s.disposition)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            Ok(outcome("user.message", &name, Some(s.run_id), Some(s.disposition)))
        }
        UserEvent::Steer { message } => {
            let run = st.engine.steer(&thread.id, message).await?;
            Ok(outcome("user.steer", "steered", Some(run), None))
        }
        UserEvent::Interrupt { message } => {
            let run = st.engine.interrupt(&thread.id, message).await?;
            Ok(outcome("user.interrupt", "interrupted", Some(run), None))
        }
        UserEvent::ToolConfirmation { request_id, result, deny_message, input } => {
            let reply = match result {
                ConfirmationResult::Allow => Reply::Allow { input },
                ConfirmationResult::Deny => Reply::Deny { message: deny_message },
            };
            let run = st.engine.respond(&thread.id, &request_id, reply).await?;
            let word = if result == ConfirmationResult::Allow { "allowed" } else { "denied" };
            Ok(outcome("user.tool_confirmation", word, Some(run), None))
        }
        UserEvent::Answer { request_id, answer } => {
            let run = st.engine.respond(&thread.id, &request_id, Reply::Answer(answer)).await?;
            Ok(outcome("user.answer", "answered", Some(run), None))
        }
    }
}
