//! Builds the provider-neutral conversation for a model call from the thread's log.
//!
//! Rules: a queued run's message joins the conversation where that run started; a message
//! that arrives while tool calls are outstanding follows their results (providers require a
//! tool result right after its call); a tool call that never got a result (its run was
//! stopped) is answered with an "interrupted" result so the conversation stays well formed.

use crate::machine::run_starts;
use herm_llm::{Message, ToolResultMsg};
use herm_types::event::{RequestedToolCall, Role};
use herm_types::*;

const NO_RESULT: &str = "The tool call was interrupted before it reported a result; its outcome is unknown.";

struct Builder {
    out: Vec<Message>,
    /// Text of the agent message waiting for its model_call record.
    pending_text: String,
    /// Outstanding tool calls of the last assistant turn and the results seen so far.
    open: Vec<RequestedToolCall>,
    results: Vec<ToolResultMsg>,
    deferred: Vec<String>,
}

impl Builder {
    fn user(&mut self, text: String) {
        if self.open.is_empty() {
            self.out.push(Message::User(text));
        } else {
            self.deferred.push(text);
        }
    }

    /// Closes the open tool batch, answering any call that has no result.
    fn flush(&mut self) {
        if self.open.is_empty() {
            return;
        }
        for c in std::mem::take(&mut self.open) {
            if !self.results.iter().any(|r| r.tool_use_id == c.tool_use_id) {
                self.results.push(ToolResultMsg {
                    tool_use_id: c.tool_use_id,
                    content: NO_RESULT.into(),
                    is_error: true,
                });
            }
        }
        self.out.push(Message::ToolResults(std::mem::take(&mut self.results)));
        for d in std::mem::take(&mut self.deferred) {
            self.out.push(Message::User(d));
        }
    }
}

/// The conversation as the model should see it before the next call of `run`.
pub fn build(log: &[Event], run: &RunId) -> Vec<Message> {
    let starts = run_starts(log);
    // For each model call, the last sequence its request included: a message written after
    // that (while it streamed) joins the conversation after the call, not before it.
    let calls: Vec<(i64, i64)> = log
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ModelCall { context_sequence: Some(c), .. } => Some((e.sequence.0, *c)),
            _ => None,
        })
        .collect();
    let unseen_until =
        |seq: i64| calls.iter().find(|(at, _)| *at > seq).filter(|(_, c)| *c < seq).map(|(at, _)| at + 1);
    let mut b = Builder { out: vec![], pending_text: String::new(), open: vec![], results: vec![], deferred: vec![] };
    // Messages that join later than where they were written: (sequence to join at, text).
    let mut waiting: Vec<(i64, String)> = Vec::new();
    for e in log {
        while let Some(pos) = waiting.iter().position(|(s, _)| *s <= e.sequence.0) {
            let (_, t) = waiting.remove(pos);
            b.user(t);
        }
        match &e.kind {
            EventKind::Message { role: Role::User, content, .. } => {
                let start = e.run_id.as_ref().and_then(|r| starts.get(r)).copied();
                match (start, unseen_until(e.sequence.0)) {
                    (Some(s), _) if s > e.sequence.0 => waiting.push((s, content.clone())),
                    // A run that never started (still queued) is not part of the conversation,
                    // unless it is the run being built.
                    (None, _) if e.run_id.as_ref() != Some(run) => {}
                    (_, Some(at)) => waiting.push((at, content.clone())),
                    _ => b.user(content.clone()),
                }
            }
            EventKind::Steer { message } => match unseen_until(e.sequence.0) {
                Some(at) => waiting.push((at, format!("[steering from the user] {message}"))),
                None => b.user(format!("[steering from the user] {message}")),
            },
            EventKind::AgentMessage { content } => b.pending_text.push_str(content),
            EventKind::ModelCall { tool_calls, .. } => {
                b.flush();
                let text = std::mem::take(&mut b.pending_text);
                if !text.is_empty() || !tool_calls.is_empty() {
                    b.out.push(Message::Assistant { text, tool_calls: tool_calls.clone() });
                }
                b.open = tool_calls.clone();
            }
            EventKind::ToolResult { tool_use_id, result, is_error, .. }
                if b.open.iter().any(|c| &c.tool_use_id == tool_use_id) =>
            {
                b.results.push(ToolResultMsg {
                    tool_use_id: tool_use_id.clone(),
                    content: result.clone(),
                    is_error: *is_error,
                });
                if b.results.len() == b.open.len() {
                    b.flush();
                }
            }
            EventKind::RunStatus { status, .. } if status.is_terminal() => b.flush(),
            _ => {}
        }
    }
    for (_, t) in waiting {
        b.user(t);
    }
    // Tool calls still open belong to the run being built: the machine runs them before the
    // next model call, so they are never open here in practice.
    b.flush();
    b.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use herm_types::event::ToolOutcome;
    use serde_json::json;

    fn model_call(tool_calls: Vec<RequestedToolCall>, context_sequence: Option<i64>) -> EventKind {
        EventKind::ModelCall {
            model: "m".into(),
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            duration_ms: 0,
            tool_calls,
            stop_reason: None,
            context_sequence,
        }
    }

    fn status(status: RunStatus) -> EventKind {
        EventKind::RunStatus { status, kind: RunKind::User, trigger: None, error: None, usage: None }
    }

    fn ev(seq: i64, run: &RunId, kind: EventKind) -> Event {
        Event {
            id: EventId::new(),
            sequence: Sequence(seq),
            deployment_sequence: DeploymentSeq(seq),
            deployment_id: DeploymentId::new(),
            thread_id: ThreadId::new(),
            run_id: Some(run.clone()),
            created_at: herm_types::now(),
            kind,
        }
    }

    #[test]
    fn queued_message_joins_after_the_active_run_and_steer_after_tool_results() {
        let (a, b) = (RunId::new(), RunId::new());
        let call = RequestedToolCall { tool_use_id: "t1".into(), tool: "x".into(), arguments: json!({}) };
        let log = vec![
            ev(1, &a, EventKind::Message { role: Role::User, content: "first".into(), attachments: vec![] }),
            ev(2, &a, status(RunStatus::Running)),
            ev(3, &a, EventKind::AgentMessage { content: "calling".into() }),
            ev(4, &a, model_call(vec![call.clone()], None)),
            ev(5, &b, EventKind::Message { role: Role::User, content: "queued".into(), attachments: vec![] }),
            ev(6, &b, status(RunStatus::Queued)),
            ev(7, &a, EventKind::Message { role: Role::User, content: "steered".into(), attachments: vec![] }),
            ev(
                8,
                &a,
                EventKind::ToolResult {
                    tool_use_id: "t1".into(),
                    tool: "x".into(),
                    result: "r".into(),
                    is_error: false,
                    duration_ms: 1,
                    outcome: ToolOutcome::Ok,
                },
            ),
            ev(9, &a, model_call(vec![], None)),
            ev(10, &a, EventKind::AgentMessage { content: "done".into() }),
        ];
        let h = build(&log, &a);
        assert_eq!(h[0], Message::User("first".into()));
        assert_eq!(h[1], Message::Assistant { text: "calling".into(), tool_calls: vec![call] });
        assert!(matches!(&h[2], Message::ToolResults(r) if r[0].content == "r"));
        assert_eq!(h[3], Message::User("steered".into()));
        assert_eq!(h.len(), 4, "queued message must not appear before its run starts: {h:?}");

        let mut log2 = log.clone();
        log2.push(ev(11, &a, model_call(vec![], None)));
        log2.push(ev(12, &a, status(RunStatus::Completed)));
        log2.push(ev(13, &b, status(RunStatus::Running)));
        let h2 = build(&log2, &b);
        assert_eq!(h2.last(), Some(&Message::User("queued".into())));
    }

    #[test]
    fn input_written_while_the_model_streamed_follows_its_answer() {
        let a = RunId::new();
        let log = vec![
            ev(1, &a, EventKind::Message { role: Role::User, content: "q".into(), attachments: vec![] }),
            ev(2, &a, status(RunStatus::Running)),
            ev(3, &a, EventKind::Steer { message: "shorter".into() }),
            ev(4, &a, EventKind::AgentMessage { content: "long answer".into() }),
            ev(5, &a, model_call(vec![], Some(2))),
        ];
        let h = build(&log, &a);
        assert_eq!(h[0], Message::User("q".into()));
        assert!(matches!(&h[1], Message::Assistant { text, .. } if text == "long answer"));
        assert_eq!(h[2], Message::User("[steering from the user] shorter".into()));
    }

    #[test]
    fn unanswered_tool_call_of_a_stopped_run_gets_a_result() {
        let a = RunId::new();
        let call = RequestedToolCall { tool_use_id: "t1".into(), tool: "x".into(), arguments: json!({}) };
        let log = vec![
            ev(1, &a, status(RunStatus::Running)),
            ev(2, &a, model_call(vec![call], None)),
            ev(3, &a, status(RunStatus::Interrupted)),
        ];
        let h = build(&log, &RunId::new());
        assert!(matches!(&h[1], Message::ToolResults(r) if r[0].is_error && r[0].content == NO_RESULT));
    }
}
