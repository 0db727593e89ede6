//! Answers from people: tool confirmations (allow, deny, allow with edited input) and
//! answers to questions. Each is one conditional append on the thread's log: it lands only
//! if the log did not move since the request was read, so of two racing answers exactly one
//! wins and the other learns the request is no longer pending.

use crate::conditional::Reads;
use crate::machine::run_origin;
use crate::{Engine, Error, Result};
use herm_store::{Append, Condition};
use herm_types::config::FieldError;
use herm_types::event::{Confirmation, RequestKind};
use herm_types::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// A steering request still waiting for a person.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    pub request_id: RequestId,
    pub run_id: RunId,
    pub kind: RequestKind,
    pub summary: String,
    pub tool: Option<String>,
    pub tool_use_id: Option<String>,
    pub arguments: Option<Value>,
    pub question: Option<String>,
    pub options: Option<Vec<String>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Requests of non-terminal runs that have no response yet, oldest first.
pub fn pending_requests(log: &[Event]) -> Vec<Pending> {
    let mut answered = HashSet::new();
    let mut status: HashMap<&RunId, RunStatus> = HashMap::new();
    for e in log {
        match (&e.kind, &e.run_id) {
            (EventKind::SteeringResponse { request_id, .. }, _) => {
                answered.insert(request_id);
            }
            (EventKind::RunStatus { status: s, .. }, Some(r)) => {
                status.insert(r, *s);
            }
            _ => {}
        }
    }
    log.iter()
        .filter_map(|e| match (&e.kind, &e.run_id) {
            (
                EventKind::SteeringRequest {
                    request_id,
                    kind,
                    summary,
                    tool,
                    tool_use_id,
                    arguments,
                    question,
                    options,
                },
                Some(run),
            ) if !answered.contains(request_id) && status.get(run).is_some_and(|s| !s.is_terminal()) => Some(Pending {
                request_id: request_id.clone(),
                run_id: run.clone(),
                kind: *kind,
                summary: summary.clone(),
                tool: tool.clone(),
                tool_use_id: tool_use_id.clone(),
                arguments: arguments.clone(),
                question: question.clone(),
                options: options.clone(),
                created_at: e.created_at,
            }),
            _ => None,
        })
        .collect()
}

/// A person's answer to a steering request.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Allow { input: Option<Value> },
    Deny { message: Option<String> },
    Answer(String),
}

impl Engine {
    /// Records a person's reply to a pending request and wakes the run when nothing else is
    /// pending. Errors: [`Error::NotPending`], [`Error::InvalidInput`], [`Error::WrongReply`].
    pub async fn respond(&self, thread: &ThreadId, request: &RequestId, reply: Reply) -> Result<RunId> {
        // Edited input is checked against the tool's schema first (the tool a request names
        // never changes); the write below re-checks that the request is still pending.
        if let Reply::Allow { input: Some(input) } = &reply {
            let log = self.store().run_log(thread).await?;
            let Some(p) = pending_requests(&log).into_iter().find(|p| &p.request_id == request) else {
                return Err(Error::NotPending);
            };
            if p.kind == RequestKind::Approval {
                self.check_edit(thread, &p, input).await?;
            }
        }
        let run = self
            .append_planned(thread, Reads::Log, |seen| {
                let pending = pending_requests(&seen.log);
                let Some(p) = pending.iter().find(|p| &p.request_id == request) else {
                    return Err(Error::NotPending);
                };
                match (&reply, p.kind) {
                    (Reply::Answer(_), RequestKind::Question)
                    | (Reply::Allow { .. } | Reply::Deny { .. }, RequestKind::Approval) => {}
                    (Reply::Answer(_), _) => {
                        return Err(Error::WrongReply("this request is an approval: send `user.tool_confirmation`"));
                    }
                    _ => return Err(Error::WrongReply("this request is a question: send `user.answer`")),
                }
                let (result, answer, message, input) = match &reply {
                    Reply::Allow { input } => (Some(Confirmation::Allow), None, None, input.clone()),
                    Reply::Deny { message } => (Some(Confirmation::Deny), None, message.clone(), None),
                    Reply::Answer(a) => (None, Some(a.clone()), None, None),
                };
                let (kind, trigger) = run_origin(&seen.log, &p.run_id);
                let mut events = vec![NewEvent::new(
                    Some(p.run_id.clone()),
                    EventKind::SteeringResponse { request_id: request.clone(), result, answer, message, input },
                )];
                if !pending.iter().any(|q| q.run_id == p.run_id && &q.request_id != request) {
                    events.push(NewEvent::new(
                        Some(p.run_id.clone()),
                        EventKind::RunStatus { status: RunStatus::Running, kind, trigger, error: None, usage: None },
                    ));
                }
                // Lands only if the log did not move (another answer, a steer, an interrupt).
                let mut a = Append::new(thread.clone(), events);
                a.conditions = vec![
                    Condition::LastSequenceIs(seen.last_sequence()),
                    Condition::ActiveRunIs(Some(p.run_id.clone())),
                ];
                Ok((a, (p.run_id.clone(), kind)))
            })
            .await?;
        self.wake(thread.clone());
        let (run, kind) = run;
        if kind != RunKind::User {
            // A goal waiting on this answer is active again.
            self.run_status_changed(&run).await;
        }
        Ok(run)
    }

    /// Edited input must satisfy the tool's schema; the request stays pending otherwise.
    async fn check_edit(&self, thread: &ThreadId, p: &Pending, input: &Value) -> Result<()> {
        let store = self.store();
        let t = store.get_thread(thread).await?.ok_or(Error::NotFound("thread"))?;
        let dep = store.get_deployment(&t.deployment_id).await?.ok_or(Error::NotFound("deployment"))?;
        let tools = self.tools(&dep.id, &dep.spec).await;
        let name = p.tool.as_deref().unwrap_or_default();
        let Some(tool) = tools.all().iter().find(|x| x.name == name) else {
            return Err(Error::InvalidInput(vec![FieldError::new(
                "input",
                format!("the tool `{name}` no longer exists"),
            )]));
        };
        let errors = tool.check_input(input);
        if errors.is_empty() {
            return Ok(());
        }
        Err(Error::InvalidInput(
            errors.into_iter().map(|(path, msg)| FieldError::new(format!("input{path}"), msg)).collect(),
        ))
    }
}
