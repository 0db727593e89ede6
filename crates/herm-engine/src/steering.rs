//! Answers from people: tool confirmations (allow, deny, allow with edited input) and
//! answers to questions. Each is one conditional append on the thread's log: it lands only
//! if the log did not move since the request was read, so of two racing answers exactly one
//! wins and the other learns the request is no longer pending.

use crate::tools::validate_input;
use crate::{Engine, Error, Result};
use herm_store::{Append, Condition};
use herm_types::config::FieldError;
use herm_types::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// A steering request still waiting for a person.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    pub request_id: RequestId,
    pub run_id: RunId,
    pub kind: String,
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
                kind: kind.clone(),
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
        let store = self.store();
        for _ in 0..8 {
            let log = store.run_log(thread).await?;
            let pending = pending_requests(&log);
            let Some(p) = pending.iter().find(|p| &p.request_id == request) else {
                return Err(Error::NotPending);
            };
            match (&reply, p.kind.as_str()) {
                (Reply::Answer(_), "question") | (Reply::Allow { .. } | Reply::Deny { .. }, "approval") => {}
                (Reply::Answer(_), _) => {
                    return Err(Error::WrongReply("this request is an approval: send `user.tool_confirmation`"));
                }
                _ => return Err(Error::WrongReply("this request is a question: send `user.answer`")),
            }
            if let Reply::Allow { input: Some(input) } = &reply {
                self.check_edit(thread, p, input).await?;
            }
            let (result, answer, message, input) = match &reply {
                Reply::Allow { input } => (Some("allow".to_owned()), None, None, input.clone()),
                Reply::Deny { message } => (Some("deny".to_owned()), None, message.clone(), None),
                Reply::Answer(a) => (None, Some(a.clone()), None, None),
            };
            let mut events = vec![NewEvent::new(
                Some(p.run_id.clone()),
                EventKind::SteeringResponse { request_id: request.clone(), result, answer, message, input },
            )];
            if !pending.iter().any(|q| q.run_id == p.run_id && &q.request_id != request) {
                events.push(NewEvent::new(
                    Some(p.run_id.clone()),
                    EventKind::RunStatus { status: RunStatus::Running, error: None, usage: None },
                ));
            }
            let last = log.last().map(|e| e.sequence.0).unwrap_or(0);
            let mut a = Append::new(thread.clone(), events);
            a.conditions = vec![Condition::LastSequenceIs(last), Condition::ActiveRunIs(Some(p.run_id.clone()))];
            match store.append(a).await {
                Ok(_) => {
                    self.wake(thread.clone());
                    return Ok(p.run_id.clone());
                }
                // The log moved (another answer, a steer, an interrupt): look again.
                Err(herm_store::Error::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Contended)
    }

    /// Edited input must satisfy the tool's schema; the request stays pending otherwise.
    async fn check_edit(&self, thread: &ThreadId, p: &Pending, input: &Value) -> Result<()> {
        let store = self.store();
        let t = store.get_thread(thread).await?.ok_or(Error::NotFound)?;
        let dep = store.get_deployment(&t.deployment_id).await?.ok_or(Error::NotFound)?;
        let tools = self.tools(&dep.id, &dep.spec).await;
        let name = p.tool.as_deref().unwrap_or_default();
        let Some(tool) = tools.all().iter().find(|x| x.name == name) else {
            return Err(Error::InvalidInput(vec![FieldError::new(
                "input",
                format!("the tool `{name}` no longer exists"),
            )]));
        };
        let errors = validate_input(&tool.input_schema, input);
        if errors.is_empty() {
            return Ok(());
        }
        Err(Error::InvalidInput(
            errors.into_iter().map(|(path, msg)| FieldError::new(format!("input{path}"), msg)).collect(),
        ))
    }
}
