//! The steps where a run needs a person: writing steering requests (approvals and questions)
//! and then letting go, and turning a person's denial or answer into the tool's result.

use super::{Driver, Flow, status};
use crate::Result;
use crate::machine::{Ask, Gate};
use herm_types::event::{RequestKind, RequestedToolCall, ToolOutcome};
use herm_types::*;
use serde_json::Value;

const SUMMARY_MAX: usize = 200;
const DENIED: &str = "The user denied this tool call.";

/// One line saying what a tool call is about to do: `send_email(to="a@b", subject="Hi")`.
pub(crate) fn summary(tool: &str, args: &Value) -> String {
    let inner = match args {
        Value::Object(m) => m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    };
    let mut s = format!("{tool}({inner})");
    if s.len() > SUMMARY_MAX {
        let cut = (0..=SUMMARY_MAX - 1).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn result(run: &RunId, call: RequestedToolCall, text: String, outcome: ToolOutcome) -> NewEvent {
    NewEvent::new(
        Some(run.clone()),
        EventKind::ToolResult {
            tool_use_id: call.tool_use_id,
            tool: call.tool,
            result: text,
            attachments: Vec::new(),
            is_error: outcome != ToolOutcome::Ok,
            duration_ms: 0,
            outcome,
        },
    )
}

impl Driver<'_> {
    /// Writes a steering request per call and marks the run waiting; the next fold finds it
    /// idle and the worker lets go: nothing is held while a person thinks.
    pub(super) async fn ask(&self, run: &RunId, asks: Vec<Ask>) -> Result<Flow> {
        let mut events = Vec::with_capacity(asks.len() + 1);
        let mut waiting = asks.is_empty();
        for a in asks {
            let c = a.call;
            let kind = match a.gate {
                Gate::Question => {
                    let Some(q) = c.arguments.get("question").and_then(Value::as_str).map(str::to_owned) else {
                        let msg = "ask_user needs a `question` string".to_owned();
                        events.push(result(run, c, msg, ToolOutcome::Error));
                        continue;
                    };
                    let options = c
                        .arguments
                        .get("options")
                        .and_then(Value::as_array)
                        .map(|o| o.iter().filter_map(Value::as_str).map(str::to_owned).collect::<Vec<_>>());
                    EventKind::SteeringRequest {
                        request_id: RequestId::new(),
                        kind: RequestKind::Question,
                        summary: q.chars().take(SUMMARY_MAX).collect(),
                        tool: Some(c.tool),
                        tool_use_id: Some(c.tool_use_id),
                        arguments: None,
                        question: Some(q),
                        options,
                    }
                }
                _ => EventKind::SteeringRequest {
                    request_id: RequestId::new(),
                    kind: RequestKind::Approval,
                    summary: summary(&c.tool, &c.arguments),
                    tool: Some(c.tool),
                    tool_use_id: Some(c.tool_use_id),
                    arguments: Some(c.arguments),
                    question: None,
                    options: None,
                },
            };
            events.push(NewEvent::new(Some(run.clone()), kind));
            waiting = true;
        }
        if waiting {
            events.push(status(&self.log, run, RunStatus::WaitingOnHuman, None, None));
        }
        let flow = self.append(run, events, vec![]).await?;
        if waiting {
            self.status_changed(run).await;
        }
        Ok(flow)
    }

    /// A denied call: the model is told, in the user's words if they gave any.
    pub(super) async fn denied(&self, run: &RunId, call: RequestedToolCall, message: Option<String>) -> Result<Flow> {
        let text = match message {
            Some(m) if !m.trim().is_empty() => format!("{DENIED} Their message: {m}"),
            _ => DENIED.to_owned(),
        };
        self.append(run, vec![result(run, call, text, ToolOutcome::Denied)], vec![]).await
    }

    /// The user's answer to the agent's question is the question's result.
    pub(super) async fn answered(&self, run: &RunId, call: RequestedToolCall, answer: String) -> Result<Flow> {
        self.append(run, vec![result(run, call, answer, ToolOutcome::Ok)], vec![]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_one_bounded_line() {
        let s = summary("send_email", &serde_json::json!({"to": "a@b.c", "subject": "Hi"}));
        assert_eq!(s, r#"send_email(subject="Hi", to="a@b.c")"#);
        let long = summary("t", &serde_json::json!({"x": "é".repeat(500)}));
        assert!(long.len() <= SUMMARY_MAX + '…'.len_utf8() && long.ends_with('…'));
    }
}
