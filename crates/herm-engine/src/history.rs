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
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

const NO_RESULT: &str = "The tool call was interrupted before it reported a result; its outcome is unknown.";

/// The opening of the message that stands for a compacted part of the conversation.
pub const SUMMARY_HEADING: &str = "[Summary of the earlier conversation, written when it grew too long to send whole]";

/// One message of the conversation and the log sequences it was built from. The message is
/// shared: the turns a worker keeps between steps go into each request without a copy.
#[derive(Clone, Debug, PartialEq)]
pub struct Turn {
    pub message: Arc<Message>,
    pub first: i64,
    pub last: i64,
    /// The message's estimated tokens ([`crate::compaction::message_tokens`]), counted once.
    pub tokens: u64,
    /// Whether the message shows media (whose bytes are loaded before each call): a request
    /// without any is not searched for them.
    pub media: bool,
}

impl Turn {
    pub fn new(message: Message, first: i64, last: i64) -> Self {
        let tokens = crate::compaction::message_tokens(&message);
        let media = message.media().next().is_some();
        Turn { message: Arc::new(message), first, last, tokens, media }
    }
}

#[derive(Default)]
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
        self.out.push(Turn::new(message, first, last));
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

    /// Folds an event other than a person's input.
    fn record(&mut self, e: &Event) {
        let seq = e.sequence.0;
        match &e.kind {
            EventKind::AgentMessage { content } => {
                self.pending_from.get_or_insert(seq);
                self.pending_text.push_str(content)
            }
            EventKind::ModelCall { tool_calls, .. } => {
                self.flush(seq);
                let text = std::mem::take(&mut self.pending_text);
                let first = self.pending_from.take().unwrap_or(seq);
                if !text.is_empty() || !tool_calls.is_empty() {
                    self.push(Message::Assistant { text, tool_calls: tool_calls.clone() }, first, seq);
                }
                self.open = tool_calls.clone();
            }
            EventKind::ToolResult { tool_use_id, result, is_error, attachments, .. }
                if self.open.iter().any(|c| &c.tool_use_id == tool_use_id) =>
            {
                self.results_from.get_or_insert(seq);
                self.results.push(ToolResultMsg {
                    tool_use_id: tool_use_id.clone(),
                    content: result.clone(),
                    is_error: *is_error,
                    media: attachments.iter().map(stored).collect(),
                });
                if self.results.len() == self.open.len() {
                    self.flush(seq);
                }
            }
            EventKind::RunStatus { status, .. } if status.is_terminal() => self.flush(seq),
            _ => {}
        }
    }

    /// Nothing is half-built: no open calls, no text waiting for its record, no message
    /// waiting for a batch to close.
    fn quiet(&self) -> bool {
        self.open.is_empty() && self.results.is_empty() && self.pending_from.is_none() && self.deferred.is_empty()
    }
}

/// The part of a thread's conversation that no later event can change, kept by a worker
/// between builds so that each build folds only the events after it (a long thread's every
/// step would otherwise rebuild, copy and free the whole conversation).
///
/// It ends at a run's terminal status where every run the log named so far had ended, no
/// message waits to join later, no tool batch is open and no message was placed because it
/// belongs to the run being built. A later event that could still change it voids it: a
/// model call whose request predates its end (a message written while that call streamed
/// would join after it), or a status of one of its runs (terminal runs never change).
#[derive(Clone, Debug, Default)]
pub struct Settled {
    /// How many of the log's first events it was built from (logs only grow).
    len: usize,
    /// The sequence of the last of them.
    through: i64,
    turns: Vec<Turn>,
    /// Every run its events named, all ended, with where each started running (if it did).
    runs: HashMap<RunId, Option<i64>>,
    /// Where the latest compaction among its events is in the log.
    compaction: Option<usize>,
}

impl Settled {
    /// Whether this is a settled prefix of `log` for building `run`'s conversation.
    fn holds_for(&self, log: &[Event], run: &RunId) -> bool {
        if self.len == 0 {
            return true;
        }
        let prefix = self.len <= log.len() && log[self.len - 1].sequence.0 == self.through;
        prefix
            && !self.runs.contains_key(run)
            && log[self.len..].iter().all(|e| match &e.kind {
                EventKind::ModelCall { context_sequence: Some(c), .. } => *c >= self.through,
                EventKind::RunStatus { .. } => e.run_id.as_ref().is_none_or(|r| !self.runs.contains_key(r)),
                _ => true,
            })
    }

    /// How many of the log's first events it covers. Every run they name has ended, and
    /// an ended run never changes: the run still to drive is named after them.
    pub fn events(&self) -> usize {
        self.len
    }

    /// [`latest_compaction`] of `log`, of which this is a settled prefix (as
    /// [`turns_after`] leaves it): only the events after it are searched.
    pub fn latest_compaction<'l>(&self, log: &'l [Event]) -> Option<(&'l str, i64)> {
        latest_compaction(&log[self.len.min(log.len())..])
            .or_else(|| self.compaction.and_then(|i| log.get(i)).and_then(compaction_of))
    }

    /// About how many bytes it holds (for a cache's bound).
    pub fn approx_bytes(&self) -> usize {
        self.turns.iter().map(|t| 64 + t.tokens as usize * 4).sum::<usize>() + self.runs.len() * 64
    }
}

/// The conversation as the model should see it before the next call of `run`: the
/// thread's latest compaction summary stands for what it replaced.
pub fn build(log: &[Event], run: &RunId) -> Vec<Arc<Message>> {
    compacted(turns(log, run), latest_compaction(log)).into_iter().map(|t| t.message).collect()
}

/// The thread's latest compaction: its summary and the last sequence it replaced.
pub fn latest_compaction(log: &[Event]) -> Option<(&str, i64)> {
    log.iter().rev().find_map(compaction_of)
}

/// A compaction's summary and the last sequence it replaced.
fn compaction_of(e: &Event) -> Option<(&str, i64)> {
    match &e.kind {
        EventKind::Compaction { summary, replaced_through_sequence, .. } => {
            Some((summary.as_str(), *replaced_through_sequence))
        }
        _ => None,
    }
}

/// `turns` with every turn built only from events up to `through` replaced by one message
/// holding the summary.
pub fn compacted(turns: Vec<Turn>, compaction: Option<(&str, i64)>) -> Vec<Turn> {
    let Some((summary, through)) = compaction else { return turns };
    let mut rest: Vec<Turn> = turns.into_iter().skip_while(|t| t.last <= through).collect();
    // A compaction cuts only between whole exchanges; a tool result never loses its call.
    while matches!(rest.first().map(|t| &*t.message), Some(Message::ToolResults(_))) {
        rest.remove(0);
    }
    let summary = Message::user(format!("{SUMMARY_HEADING}\n{summary}"));
    let mut out = vec![Turn::new(summary, 0, through)];
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
    turns_after(log, run, &mut Settled::default())
}

/// [`turns`], the same turns, folding only the events after `settled` when it is a settled
/// prefix of `log` (from scratch otherwise), and moving `settled` to the last point of `log`
/// that no later event can change.
pub fn turns_after(log: &[Event], run: &RunId, settled: &mut Settled) -> Vec<Turn> {
    if !settled.holds_for(log, run) {
        *settled = Settled::default();
    }
    let rest = &log[settled.len..];
    let mut fold = Fold::new(rest, run, settled);
    for (i, e) in rest.iter().enumerate() {
        fold.event(e);
        if fold.settles_at(e) {
            fold.cut = Some((i + 1, fold.b.out.len()));
        }
    }
    let Fold { mut b, waiting, starts, cut, .. } = fold;
    let end = log.last().map(|e| e.sequence.0).unwrap_or(0);
    for (_, t, m, at) in waiting {
        b.user(t, m, at);
    }
    // Tool calls still open belong to the run being built: the machine runs them before the
    // next model call, so they are never open here in practice.
    b.flush(end);
    let mut out = Vec::with_capacity(settled.turns.len() + b.out.len());
    out.extend(settled.turns.iter().cloned());
    if let Some((events, built)) = cut {
        let through = rest[events - 1].sequence.0;
        settled.turns.extend(b.out[..built].iter().cloned());
        for (i, e) in rest[..events].iter().enumerate() {
            if let Some(r) = &e.run_id {
                let start = starts.get(r).copied().filter(|s| *s <= through);
                settled.runs.entry(r.clone()).or_insert(start);
            }
            if matches!(e.kind, EventKind::Compaction { .. }) {
                settled.compaction = Some(settled.len + i);
            }
        }
        settled.len += events;
        settled.through = through;
    }
    out.extend(b.out);
    out
}

/// The fold of the events after a settled prefix.
struct Fold<'a, 's> {
    run: &'a RunId,
    settled: &'s Settled,
    b: Builder,
    /// Where the runs of these events started running.
    starts: HashMap<&'a RunId, i64>,
    /// For each model call, its sequence and the last sequence its request included.
    calls: Vec<(i64, i64)>,
    /// Messages that join later than where they were written:
    /// (sequence to join at, text, media, written at).
    waiting: Vec<(i64, String, Vec<Media>, i64)>,
    /// Runs named so far that have not ended, and those that ended.
    live: HashSet<&'a RunId>,
    ended: HashSet<&'a RunId>,
    /// A message was placed only because it belongs to the run being built: what follows
    /// depends on which run that is, so nothing settles any more.
    for_this_run: bool,
    /// The events and turns of the last point that settled.
    cut: Option<(usize, usize)>,
}

impl<'a, 's> Fold<'a, 's> {
    fn new(rest: &'a [Event], run: &'a RunId, settled: &'s Settled) -> Self {
        let calls = rest
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::ModelCall { context_sequence: Some(c), .. } => Some((e.sequence.0, *c)),
                _ => None,
            })
            .collect();
        Fold {
            run,
            settled,
            b: Builder::default(),
            starts: run_starts(rest),
            calls,
            waiting: Vec::new(),
            live: HashSet::new(),
            ended: HashSet::new(),
            for_this_run: false,
            cut: None,
        }
    }

    fn start_of(&self, r: &RunId) -> Option<i64> {
        match self.settled.runs.get(r) {
            Some(start) => *start,
            None => self.starts.get(r).copied(),
        }
    }

    /// Where a message written at `seq` joins instead, when a model call's request did not
    /// include it (it was written while the call streamed): right after that call. The calls
    /// are in log order: the first one after `seq` is found by bisection (one linear search
    /// per message made long threads quadratic).
    fn unseen_until(&self, seq: i64) -> Option<i64> {
        let next = self.calls.partition_point(|(at, _)| *at <= seq);
        self.calls.get(next).filter(|(_, c)| *c < seq).map(|(at, _)| at + 1)
    }

    fn event(&mut self, e: &'a Event) {
        let seq = e.sequence.0;
        while let Some(pos) = self.waiting.iter().position(|(s, ..)| *s <= seq) {
            let (_, t, m, at) = self.waiting.remove(pos);
            self.b.user(t, m, at);
        }
        if let Some(r) = &e.run_id {
            if matches!(&e.kind, EventKind::RunStatus { status, .. } if status.is_terminal()) {
                self.live.remove(r);
                self.ended.insert(r);
            } else if !self.ended.contains(r) && !self.settled.runs.contains_key(r) {
                self.live.insert(r);
            }
        }
        match &e.kind {
            EventKind::Message { role: Role::User, content, attachments } => {
                let start = e.run_id.as_ref().and_then(|r| self.start_of(r));
                let media = || attachments.iter().map(stored).collect::<Vec<_>>();
                match (start, self.unseen_until(seq)) {
                    (Some(s), _) if s > seq => self.waiting.push((s, content.clone(), media(), seq)),
                    // A run that never started (still queued) is not part of the conversation,
                    // unless it is the run being built.
                    (None, _) if e.run_id.as_ref() != Some(self.run) => {}
                    (start, unseen) => {
                        self.for_this_run |= start.is_none();
                        match unseen {
                            Some(at) => self.waiting.push((at, content.clone(), media(), seq)),
                            None => self.b.user(content.clone(), media(), seq),
                        }
                    }
                }
            }
            EventKind::Steer { message } => match self.unseen_until(seq) {
                Some(at) => self.waiting.push((at, format!("[steering from the user] {message}"), Vec::new(), seq)),
                None => self.b.user(format!("[steering from the user] {message}"), Vec::new(), seq),
            },
            _ => self.b.record(e),
        }
    }

    /// Whether nothing after `e` (just folded) can change the turns built so far.
    fn settles_at(&self, e: &Event) -> bool {
        matches!(&e.kind, EventKind::RunStatus { status, .. } if status.is_terminal())
            && self.live.is_empty()
            && self.waiting.is_empty()
            && self.b.quiet()
            && !self.for_this_run
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herm_types::event::ToolOutcome;
    use serde_json::json;

    /// [`build`]'s messages, unshared.
    fn built(log: &[Event], run: &RunId) -> Vec<Message> {
        build(log, run).into_iter().map(|m| Message::clone(&m)).collect()
    }

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
        let h = built(&log, &a);
        assert_eq!(h[0], Message::user("first"));
        assert_eq!(h[1], Message::Assistant { text: "calling".into(), tool_calls: vec![call] });
        assert!(matches!(&h[2], Message::ToolResults(r) if r[0].content == "r"));
        assert_eq!(h[3], Message::user("steered"));
        assert_eq!(h.len(), 4, "queued message must not appear before its run starts: {h:?}");

        let mut log2 = log.clone();
        log2.push(ev(11, &a, model_call(vec![], None)));
        log2.push(ev(12, &a, status(RunStatus::Completed)));
        log2.push(ev(13, &b, status(RunStatus::Running)));
        let h2 = built(&log2, &b);
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
        let h = built(&log, &a);
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
        let h = built(&log, &RunId::new());
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
        let h = built(&log, &a);
        let Message::User { text, media } = &h[0] else { panic!("{:?}", h[0]) };
        assert_eq!((text.as_str(), media.len()), ("q", 1));
        assert_eq!(media[0].attachment.name.as_deref(), Some("in.png"));
        assert_eq!(media[0].source, herm_llm::MediaSource::Stored);
        let Message::ToolResults(r) = &h[2] else { panic!("{:?}", h[2]) };
        assert_eq!(r[0].media[0].attachment.name.as_deref(), Some("out.png"));
    }

    /// A thread's log written step by step.
    #[derive(Default)]
    struct Thread(Vec<Event>);

    impl Thread {
        fn add(&mut self, run: Option<&RunId>, kind: EventKind) -> i64 {
            let seq = self.0.len() as i64 + 1;
            let mut e = ev(seq, &RunId::new(), kind);
            e.run_id = run.cloned();
            self.0.push(e);
            seq
        }
        fn say(&mut self, run: Option<&RunId>, text: &str) -> i64 {
            self.add(run, EventKind::Message { role: Role::User, content: text.into(), attachments: vec![] })
        }
        fn result(&mut self, run: &RunId, id: &str) {
            let r = EventKind::ToolResult {
                tool_use_id: id.into(),
                tool: "x".into(),
                result: format!("result of {id}"),
                is_error: false,
                duration_ms: 1,
                attachments: vec![],
                outcome: ToolOutcome::Ok,
            };
            self.add(Some(run), r);
        }
        fn call(id: &str) -> RequestedToolCall {
            RequestedToolCall { tool_use_id: id.into(), tool: "x".into(), arguments: json!({"id": id}) }
        }
        fn last(&self) -> i64 {
            self.0.len() as i64
        }
    }

    /// A thread with every way a message can join late: runs queued behind others, steering
    /// written while a model call streamed, a run stopped with a call open, a run cancelled
    /// before it started, a message of no run, compaction, and plain runs between them.
    fn eventful_thread() -> Thread {
        let mut t = Thread::default();
        let [a, b, c, d, e, f] = std::array::from_fn(|_| RunId::new());
        // A plain run with a tool call.
        t.say(Some(&a), "a");
        t.add(Some(&a), status(RunStatus::Running));
        t.add(Some(&a), EventKind::AgentMessage { content: "calling".into() });
        t.add(Some(&a), model_call(vec![Thread::call("a1")], Some(t.last())));
        // B is queued while A runs, and starts when A ends.
        t.say(Some(&b), "b");
        t.add(Some(&b), status(RunStatus::Queued));
        t.result(&a, "a1");
        t.add(Some(&a), model_call(vec![], Some(t.last())));
        t.add(Some(&a), status(RunStatus::Completed));
        t.add(Some(&b), status(RunStatus::Running));
        // Steering written while B's call streamed joins after it; B is stopped with a call open.
        let before = t.last();
        t.add(Some(&b), EventKind::Steer { message: "shorter".into() });
        t.add(Some(&b), model_call(vec![Thread::call("b1"), Thread::call("b2")], Some(before)));
        t.result(&b, "b1");
        t.add(Some(&b), status(RunStatus::Interrupted));
        // C is cancelled before it ever runs; a message of no run.
        t.say(Some(&c), "never runs");
        t.add(Some(&c), status(RunStatus::Queued));
        t.add(Some(&c), status(RunStatus::Interrupted));
        t.say(None, "of no run");
        // Plain runs, one compacted.
        for (run, text) in [(&d, "d"), (&e, "e")] {
            t.say(Some(run), text);
            t.add(Some(run), status(RunStatus::Running));
            t.add(Some(run), model_call(vec![Thread::call(text)], Some(t.last())));
            t.result(run, text);
            t.add(Some(run), model_call(vec![], Some(t.last())));
            t.add(Some(run), status(RunStatus::Completed));
        }
        let through = t.last() - 3;
        let compaction = EventKind::Compaction {
            summary: "earlier".into(),
            replaced_through_sequence: through,
            tokens_before: 0,
            tokens_after: 0,
            model: "m".into(),
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            estimated: false,
        };
        t.say(Some(&f), "f");
        t.add(Some(&f), status(RunStatus::Running));
        t.add(Some(&f), compaction);
        t.add(Some(&f), EventKind::AgentMessage { content: "done".into() });
        t.add(Some(&f), model_call(vec![], Some(t.last())));
        t.add(Some(&f), status(RunStatus::Completed));
        t
    }

    /// The run a build at the end of `log` would be for: the last run named.
    fn last_run(log: &[Event]) -> RunId {
        log.iter().rev().find_map(|e| e.run_id.clone()).unwrap_or_default()
    }

    #[test]
    fn building_after_a_settled_part_gives_the_whole_build() {
        let log = eventful_thread().0;
        let mut points = std::collections::BTreeSet::new();
        for j in 0..=log.len() {
            let mut settled = Settled::default();
            turns_after(&log[..j], &last_run(&log[..j]), &mut settled);
            points.insert(settled.len);
            for k in j..=log.len() {
                let (part, run) = (&log[..k], last_run(&log[..k]));
                let mut s = settled.clone();
                assert_eq!(turns_after(part, &run, &mut s), turns(part, &run), "settled at {j}, built at {k}");
                let after = turns_after(part, &run, &mut s);
                assert_eq!(s.latest_compaction(part), latest_compaction(part), "settled at {j}, built at {k}");
                assert_eq!(
                    compacted(after, s.latest_compaction(part)),
                    compacted(turns(part, &run), latest_compaction(part)),
                );
            }
        }
        // Nothing settled yet, then at the ends of B, C (cancelled), D, E and F.
        assert_eq!(points.len(), 6, "{points:?}");
        // F's compaction, settled, still stands for what it replaced in a later run's build.
        let mut settled = Settled::default();
        turns_after(&log, &last_run(&log), &mut settled);
        let mut more = Thread(log.clone());
        let g = RunId::new();
        more.say(Some(&g), "g");
        more.add(Some(&g), status(RunStatus::Running));
        let built = turns_after(&more.0, &g, &mut settled);
        assert!(settled.latest_compaction(&more.0).is_some());
        assert_eq!(settled.latest_compaction(&more.0), latest_compaction(&more.0));
        assert_eq!(
            compacted(built, settled.latest_compaction(&more.0)),
            compacted(turns(&more.0, &g), latest_compaction(&more.0))
        );
    }

    #[test]
    fn the_settled_part_reaches_the_last_run_that_ended_with_nothing_pending() {
        let t = eventful_thread();
        let mut settled = Settled::default();
        turns_after(&t.0, &last_run(&t.0), &mut settled);
        assert_eq!(settled.len, t.0.len(), "the thread's last event ends its last run");
        // B's queued message held the settled part back until B started; B's open call until
        // B ended: A's end never settled.
        let mut early = Settled::default();
        let a_end =
            t.0.iter().position(|e| matches!(e.kind, EventKind::RunStatus { status: RunStatus::Completed, .. }));
        let a_end = a_end.unwrap() + 1;
        turns_after(&t.0[..a_end + 1], &last_run(&t.0[..a_end + 1]), &mut early);
        assert_eq!(early.len, 0, "B was queued when A ended");
    }

    #[test]
    fn a_settled_part_a_later_event_contradicts_is_not_used() {
        let mut t = Thread::default();
        let (a, b) = (RunId::new(), RunId::new());
        t.say(Some(&a), "a");
        t.add(Some(&a), status(RunStatus::Running));
        t.add(Some(&a), model_call(vec![], Some(t.last())));
        t.add(Some(&a), status(RunStatus::Completed));
        let mut settled = Settled::default();
        turns_after(&t.0, &a, &mut settled);
        assert_eq!(settled.len, 4);
        // A call whose request was built before the settled end (no worker writes one: the
        // run it belongs to had ended), and a status of an ended run.
        let mut late = Thread(t.0.clone());
        late.say(Some(&b), "b");
        late.add(Some(&b), status(RunStatus::Running));
        late.add(Some(&b), model_call(vec![], Some(1)));
        assert!(!settled.holds_for(&late.0, &b));
        assert_eq!(turns_after(&late.0, &b, &mut settled.clone()), turns(&late.0, &b));
        let mut again = Thread(t.0.clone());
        again.add(Some(&a), status(RunStatus::Running));
        assert!(!settled.holds_for(&again.0, &a));
        // A log that is not the one it was built from.
        let mut other = Thread::default();
        other.say(None, "x");
        assert!(!settled.holds_for(&other.0, &b));
    }
}
