//! Builds the provider-neutral conversation for a model call from the thread's log.
//!
//! Rules: a queued run's message joins the conversation where that run started; a message
//! that arrives while tool calls are outstanding follows their results (providers require a
//! tool result right after its call); a tool call that never got a result (its run was
//! stopped) is answered with an "interrupted" result so the conversation stays well formed.

use crate::machine::run_starts;
use herm_llm::{Media, Message, ToolResultMsg};
use herm_types::event::{RequestedToolCall, Role};
use herm_types::*;

const NO_RESULT: &str = "The tool call was interrupted before it reported a result; its outcome is unknown.";

/// The opening of the message that stands for a compacted part of the conversation.
pub const SUMMARY_HEADING: &str = "[Summary of the earlier conversation, written when it grew too long to send whole]";

/// One message of the conversation and the log sequences it was built from.
#[derive(Clone, Debug, PartialEq)]
pub struct Turn {
    pub message: Message,
    pub first: i64,
    pub last: i64,
}

struct Builder {
    out: Vec<Turn>,
    /// Text of the agent message waiting for its model_call record, and where it began.
    pending_text: String,
    pending_from: Option<i64>,
    /// Outstanding tool calls of the last assistant turn and the results seen so far.
    open: Vec<RequestedToolCall>,
    results: Vec<ToolResultMsg>,
    results_from: Option<i64>,
    deferred: Vec<(String, Vec<Media>, i64)>,
}

impl Builder {
    fn push(&mut self, message: Message, first: i64, last: i64) {
        self.out.push(Turn { message, first, last });
    }

    fn user(&mut self, text: String, media: Vec<Media>, seq: i64) {
        if self.open.is_empty() {
            self.push(Message::User { text, media }, seq, seq);
        } else {
            self.deferred.push((text, media, seq));
        }
    }

    /// Closes the open tool batch at sequence `at`, answering any call that has no result.
    fn flush(&mut self, at: i64) {
        if self.open.is_empty() {
            return;
        }
        for c in std::mem::take(&mut self.open) {
            if !self.results.iter().any(|r| r.tool_use_id == c.tool_use_id) {
                self.results.push(ToolResultMsg {
                    tool_use_id: c.tool_use_id,
                    content: NO_RESULT.into(),
                    is_error: true,
                    media: Vec::new(),
                });
            }
        }
        let first = self.results_from.take().unwrap_or(at);
        let results = std::mem::take(&mut self.results);
        self.push(Message::ToolResults(results), first, at);
        for (text, media, seq) in std::mem::take(&mut self.deferred) {
            self.push(Message::User { text, media }, seq, seq);
        }
    }
}

/// The conversation as the model should see it before the next call of `run`: the
/// thread's latest compaction summary stands for what it replaced.
pub fn build(log: &[Event], run: &RunId) -> Vec<Message> {
    compacted(turns(log, run), latest_compaction(log)).into_iter().map(|t| t.message).collect()
}

/// The thread's latest compaction: its summary and the last sequence it replaced.
pub fn latest_compaction(log: &[Event]) -> Option<(&str, i64)> {
    log.iter().rev().find_map(|e| match &e.kind {
        EventKind::Compaction { summary, replaced_through_sequence, .. } => {
            Some((summary.as_str(), *replaced_through_sequence))
        }
        _ => None,
    })
}

/// `turns` with every turn built only from events up to `through` replaced by one message
/// holding the summary.
pub fn compacted(turns: Vec<Turn>, compaction: Option<(&str, i64)>) -> Vec<Turn> {
    let Some((summary, through)) = compaction else { return turns };
    let mut rest: Vec<Turn> = turns.into_iter().skip_while(|t| t.last <= through).collect();
    // A compaction cuts only between whole exchanges; a tool result never loses its call.
    while matches!(rest.first(), Some(Turn { message: Message::ToolResults(_), .. })) {
        rest.remove(0);
    }
    let mut out =
        vec![Turn { message: Message::user(format!("{SUMMARY_HEADING}\n{summary}")), first: 0, last: through }];
    out.extend(rest);
    out
}

/// A medium of the conversation; its bytes are loaded before the call (history does no I/O).
fn stored(a: &herm_types::attachment::Attachment) -> Media {
    Media { attachment: a.clone(), source: herm_llm::MediaSource::Stored }
}

/// The whole conversation of the thread before the next call of `run`, each message with
/// the sequences it came from (no compaction applied).
pub fn turns(log: &[Event], run: &RunId) -> Vec<Turn> {
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
    // The calls are in log order: the first one after `seq` is found by bisection (one
    // linear search per message made long threads quadratic).
    let unseen_until = |seq: i64| {
        let next = calls.partition_point(|(at, _)| *at <= seq);
        calls.get(next).filter(|(_, c)| *c < seq).map(|(at, _)| at + 1)
    };
    let mut b = Builder {
        out: vec![],
        pending_text: String::new(),
        pending_from: None,
        open: vec![],
        results: vec![],
        results_from: None,
        deferred: vec![],
    };
    // Messages that join later than where they were written:
    // (sequence to join at, text, media, written at).
    let mut waiting: Vec<(i64, String, Vec<Media>, i64)> = Vec::new();
    for e in log {
        let seq = e.sequence.0;
        while let Some(pos) = waiting.iter().position(|(s, ..)| *s <= seq) {
            let (_, t, m, at) = waiting.remove(pos);
            b.user(t, m, at);
        }
        match &e.kind {
            EventKind::Message { role: Role::User, content, attachments } => {
                let start = e.run_id.as_ref().and_then(|r| starts.get(r)).copied();
                let media = || attachments.iter().map(stored).collect::<Vec<_>>();
                match (start, unseen_until(seq)) {
                    (Some(s), _) if s > seq => waiting.push((s, content.clone(), media(), seq)),
                    // A run that never started (still queued) is not part of the conversation,
                    // unless it is the run being built.
                    (None, _) if e.run_id.as_ref() != Some(run) => {}
                    (_, Some(at)) => waiting.push((at, content.clone(), media(), seq)),
                    _ => b.user(content.clone(), media(), seq),
                }
            }
            EventKind::Steer { message } => match unseen_until(seq) {
                Some(at) => waiting.push((at, format!("[steering from the user] {message}"), Vec::new(), seq)),
                None => b.user(format!("[steering from the user] {message}"), Vec::new(), seq),
            },
            EventKind::AgentMessage { content } => {
                b.pending_from.get_or_insert(seq);
                b.pending_text.push_str(content)
            }
            EventKind::ModelCall { tool_calls, .. } => {
                b.flush(seq);
                let text = std::mem::take(&mut b.pending_text);
                let first = b.pending_from.take().unwrap_or(seq);
                if !text.is_empty() || !tool_calls.is_empty() {
                    b.push(Message::Assistant { text, tool_calls: tool_calls.clone() }, first, seq);
                }
                b.open = tool_calls.clone();
            }
            EventKind::ToolResult { tool_use_id, result, is_error, attachments, .. }
                if b.open.iter().any(|c| &c.tool_use_id == tool_use_id) =>
            {
                b.results_from.get_or_insert(seq);
                b.results.push(ToolResultMsg {
                    tool_use_id: tool_use_id.clone(),
                    content: result.clone(),
                    is_error: *is_error,
                    media: attachments.iter().map(stored).collect(),
                });
                if b.results.len() == b.open.len() {
                    b.flush(seq);
                }
            }
            EventKind::RunStatus { status, .. } if status.is_terminal() => b.flush(seq),
            _ => {}
        }
    }
    let end = log.last().map(|e| e.sequence.0).unwrap_or(0);
    for (_, t, m, at) in waiting {
        b.user(t, m, at);
    }
    // Tool calls still open belong to the run being built: the machine runs them before the
    // next model call, so they are never open here in practice.
    b.flush(end);
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
            estimated: false,
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
                    attachments: Vec::new(),
                    outcome: ToolOutcome::Ok,
                },
            ),
            ev(9, &a, model_call(vec![], None)),
            ev(10, &a, EventKind::AgentMessage { content: "done".into() }),
        ];
        let h = build(&log, &a);
        assert_eq!(h[0], Message::user("first"));
        assert_eq!(h[1], Message::Assistant { text: "calling".into(), tool_calls: vec![call] });
        assert!(matches!(&h[2], Message::ToolResults(r) if r[0].content == "r"));
        assert_eq!(h[3], Message::user("steered"));
        assert_eq!(h.len(), 4, "queued message must not appear before its run starts: {h:?}");

        let mut log2 = log.clone();
        log2.push(ev(11, &a, model_call(vec![], None)));
        log2.push(ev(12, &a, status(RunStatus::Completed)));
        log2.push(ev(13, &b, status(RunStatus::Running)));
        let h2 = build(&log2, &b);
        assert_eq!(h2.last(), Some(&Message::user("queued")));
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
        assert_eq!(h[0], Message::user("q"));
        assert!(matches!(&h[1], Message::Assistant { text, .. } if text == "long answer"));
        assert_eq!(h[2], Message::user("[steering from the user] shorter"));
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

    fn picture(name: &str) -> herm_types::attachment::Attachment {
        herm_types::attachment::Attachment {
            kind: herm_types::attachment::AttachmentKind::Image,
            media_type: "image/png".into(),
            size: 10,
            sha256: "ab".repeat(32),
            name: Some(name.into()),
            attachment_id: Some(AttachmentId::new()),
            url: None,
            width: Some(2),
            height: Some(2),
        }
    }

    #[test]
    fn attachments_become_media_still_to_load() {
        let a = RunId::new();
        let call = RequestedToolCall { tool_use_id: "t1".into(), tool: "view_image".into(), arguments: json!({}) };
        let log = vec![
            ev(
                1,
                &a,
                EventKind::Message { role: Role::User, content: "q".into(), attachments: vec![picture("in.png")] },
            ),
            ev(2, &a, status(RunStatus::Running)),
            ev(3, &a, model_call(vec![call], None)),
            ev(
                4,
                &a,
                EventKind::ToolResult {
                    tool_use_id: "t1".into(),
                    tool: "view_image".into(),
                    result: "here".into(),
                    is_error: false,
                    duration_ms: 1,
                    attachments: vec![picture("out.png")],
                    outcome: ToolOutcome::Ok,
                },
            ),
        ];
        let h = build(&log, &a);
        let Message::User { text, media } = &h[0] else { panic!("{:?}", h[0]) };
        assert_eq!((text.as_str(), media.len()), ("q", 1));
        assert_eq!(media[0].attachment.name.as_deref(), Some("in.png"));
        assert_eq!(media[0].source, herm_llm::MediaSource::Stored);
        let Message::ToolResults(r) = &h[2] else { panic!("{:?}", h[2]) };
        assert_eq!(r[0].media[0].attachment.name.as_deref(), Some("out.png"));
    }
}
