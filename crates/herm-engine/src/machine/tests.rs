//! Table-driven tests of the run state machine: a log in, the next action out.

use super::*;
use herm_types::event::ToolOutcome;
use serde_json::json;

struct Log {
    events: Vec<Event>,
    dep: DeploymentId,
    thread: ThreadId,
}

impl Log {
    fn new() -> Self {
        Self { events: vec![], dep: DeploymentId::new(), thread: ThreadId::new() }
    }
    fn push(mut self, run: &RunId, kind: EventKind) -> Self {
        let n = self.events.len() as i64 + 1;
        self.events.push(Event {
            id: EventId::new(),
            sequence: Sequence(n),
            deployment_sequence: DeploymentSeq(n),
            deployment_id: self.dep.clone(),
            thread_id: self.thread.clone(),
            run_id: Some(run.clone()),
            created_at: herm_types::now(),
            kind,
        });
        self
    }
}

fn user(t: &str) -> EventKind {
    EventKind::Message { role: Role::User, content: t.into(), attachments: vec![] }
}
fn status(s: RunStatus) -> EventKind {
    EventKind::RunStatus { status: s, error: None, usage: None }
}
fn call(id: &str) -> RequestedToolCall {
    RequestedToolCall { tool_use_id: id.into(), tool: "t".into(), arguments: json!({}) }
}
fn model(calls: &[&str]) -> EventKind {
    EventKind::ModelCall {
        model: "p/m".into(),
        input_tokens: 1,
        output_tokens: 2,
        cost_usd: 0.5,
        duration_ms: 1,
        tool_calls: calls.iter().map(|c| call(c)).collect(),
        stop_reason: None,
        context_sequence: None,
    }
}

/// A model call whose request included the log only through `seen`.
fn model_seen(seen: i64) -> EventKind {
    match model(&[]) {
        EventKind::ModelCall {
            model,
            input_tokens,
            output_tokens,
            cost_usd,
            duration_ms,
            tool_calls,
            stop_reason,
            ..
        } => EventKind::ModelCall {
            model,
            input_tokens,
            output_tokens,
            cost_usd,
            duration_ms,
            tool_calls,
            stop_reason,
            context_sequence: Some(seen),
        },
        other => other,
    }
}
fn started(id: &str) -> EventKind {
    EventKind::ToolCall { tool_use_id: id.into(), tool: "t".into(), origin: "http".into(), arguments: json!({}) }
}
fn result(id: &str) -> EventKind {
    EventKind::ToolResult {
        tool_use_id: id.into(),
        tool: "t".into(),
        result: "ok".into(),
        is_error: false,
        duration_ms: 1,
        outcome: ToolOutcome::Ok,
    }
}

#[test]
fn decisions_from_logs() {
    let r = RunId::new();
    let none = RunLimits::default();
    let two = RunLimits { max_steps: Some(2) };
    let cases: Vec<(&str, Log, RunLimits, Next)> = vec![
        ("queued run starts", Log::new().push(&r, user("hi")).push(&r, status(RunStatus::Queued)), none, Next::Start),
        (
            "fresh run calls the model",
            Log::new().push(&r, user("hi")).push(&r, status(RunStatus::Running)),
            none,
            Next::CallModel,
        ),
        (
            "a final answer completes",
            Log::new().push(&r, user("hi")).push(&r, status(RunStatus::Running)).push(&r, model(&[])),
            none,
            Next::Complete,
        ),
        (
            "input after a final answer calls the model again",
            Log::new().push(&r, status(RunStatus::Running)).push(&r, model(&[])).push(&r, user("more")),
            none,
            Next::CallModel,
        ),
        (
            "a requested tool runs",
            Log::new().push(&r, status(RunStatus::Running)).push(&r, model(&["a", "b"])),
            none,
            Next::RunTool(call("a")),
        ),
        (
            "tools run in order",
            Log::new()
                .push(&r, status(RunStatus::Running))
                .push(&r, model(&["a", "b"]))
                .push(&r, started("a"))
                .push(&r, result("a")),
            none,
            Next::RunTool(call("b")),
        ),
        (
            "a started tool without result is in flight",
            Log::new().push(&r, status(RunStatus::Running)).push(&r, model(&["a"])).push(&r, started("a")),
            none,
            Next::InFlight(call("a")),
        ),
        (
            "after all results the model is called",
            Log::new()
                .push(&r, status(RunStatus::Running))
                .push(&r, model(&["a"]))
                .push(&r, started("a"))
                .push(&r, result("a")),
            none,
            Next::CallModel,
        ),
        (
            "step limit stops the run",
            Log::new()
                .push(&r, status(RunStatus::Running))
                .push(&r, model(&["a"]))
                .push(&r, result("a"))
                .push(&r, model(&["b"]))
                .push(&r, result("b")),
            two,
            Next::Fail { code: "max_steps_exceeded", message: "the run reached its limit of 2 steps".into() },
        ),
        (
            "input that arrived while the model streamed is answered",
            Log::new()
                .push(&r, user("hi"))
                .push(&r, status(RunStatus::Running))
                .push(&r, user("also this"))
                .push(&r, model_seen(2)),
            none,
            Next::CallModel,
        ),
        (
            "input the model saw does not call it again",
            Log::new()
                .push(&r, user("hi"))
                .push(&r, status(RunStatus::Running))
                .push(&r, user("also this"))
                .push(&r, model_seen(3)),
            none,
            Next::Complete,
        ),
        (
            "completed run is idle",
            Log::new().push(&r, status(RunStatus::Running)).push(&r, status(RunStatus::Completed)),
            none,
            Next::Idle,
        ),
        ("waiting run is idle", Log::new().push(&r, status(RunStatus::WaitingOnHuman)), none, Next::Idle),
    ];
    for (name, log, limits, want) in cases {
        assert_eq!(decide(&log.events, &r, limits), want, "{name}");
    }
}

#[test]
fn other_runs_do_not_leak_into_a_decision() {
    let (a, b) = (RunId::new(), RunId::new());
    let log = Log::new()
        .push(&a, status(RunStatus::Running))
        .push(&b, user("later"))
        .push(&b, status(RunStatus::Queued))
        .push(&a, model(&[]));
    assert_eq!(decide(&log.events, &a, RunLimits::default()), Next::Complete);
    assert_eq!(decide(&log.events, &b, RunLimits::default()), Next::Start);
    assert_eq!(run_usage(&log.events, &a).output_tokens, 2);
}
