//! Table-driven tests of the run state machine: a log in, the next action out.

use super::*;
use herm_types::event::{BudgetScope, Confirmation, RequestKind, ToolOutcome};
use serde_json::json;

/// A log built event by event (shared with the record-assembly tests).
pub(super) struct Log {
    pub(super) events: Vec<Event>,
    dep: DeploymentId,
    thread: ThreadId,
}

impl Log {
    pub(super) fn new() -> Self {
        Self { events: vec![], dep: DeploymentId::new(), thread: ThreadId::new() }
    }
    pub(super) fn push(mut self, run: &RunId, kind: EventKind) -> Self {
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
    EventKind::RunStatus { status: s, kind: RunKind::User, trigger: None, error: None, usage: None }
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
        estimated: false,
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
            estimated: false,
        },
        other => other,
    }
}
fn started(id: &str) -> EventKind {
    EventKind::ToolCall { tool_use_id: id.into(), tool: "t".into(), origin: "http".into(), arguments: json!({}) }
}
pub(super) fn result(id: &str) -> EventKind {
    EventKind::ToolResult {
        tool_use_id: id.into(),
        tool: "t".into(),
        result: "ok".into(),
        is_error: false,
        duration_ms: 1,
        attachments: Vec::new(),
        outcome: ToolOutcome::Ok,
    }
}

#[test]
fn decisions_from_logs() {
    let r = RunId::new();
    let none = RunLimits::default();
    let two = RunLimits { max_steps: Some(2), ..RunLimits::default() };
    // Each model call of these logs costs 0.5 USD, and so the next one is expected to.
    let one_usd = RunLimits { max_cost_usd: Some(1.2), ..RunLimits::default() };
    let budget = |spent_usd| RunLimits { daily: Some(Budget { limit_usd: 2.0, spent_usd }), ..RunLimits::default() };
    let customer =
        |spent_usd| RunLimits { customer_daily: Some(Budget { limit_usd: 2.0, spent_usd }), ..RunLimits::default() };
    let other = RunId::new();
    let thread = RunLimits { thread_max_usd: Some(1.4), ..RunLimits::default() };
    let stop = |scope, limit_usd, spent_usd, next_call_usd| {
        Next::OverBudget(BudgetStop { scope, limit_usd, spent_usd, next_call_usd })
    };
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
            "a run under its cost limit calls the model",
            Log::new().push(&r, status(RunStatus::Running)).push(&r, model(&["a"])).push(&r, result("a")),
            one_usd,
            Next::CallModel,
        ),
        (
            "a run whose next call would pass its cost limit stops before it",
            Log::new()
                .push(&r, status(RunStatus::Running))
                .push(&r, model(&["a"]))
                .push(&r, result("a"))
                .push(&r, model(&["b"]))
                .push(&r, result("b")),
            one_usd,
            stop(BudgetScope::Run, 1.2, 1.0, 0.5),
        ),
        (
            "a thread's earlier runs count against its cost limit",
            Log::new()
                .push(&other, model(&["a"]))
                .push(&other, result("a"))
                .push(&r, status(RunStatus::Running))
                .push(&r, model(&["b"]))
                .push(&r, result("b")),
            thread,
            stop(BudgetScope::Thread, 1.4, 1.0, 0.5),
        ),
        (
            "a thread under its cost limit calls the model",
            Log::new().push(&r, status(RunStatus::Running)).push(&r, model(&["a"])).push(&r, result("a")),
            thread,
            Next::CallModel,
        ),
        (
            "a deployment under its daily budget calls the model",
            Log::new().push(&r, status(RunStatus::Running)),
            budget(1.99),
            Next::CallModel,
        ),
        (
            "a deployment over its daily budget does not start a model call",
            Log::new().push(&r, status(RunStatus::Running)),
            budget(2.0),
            stop(BudgetScope::Deployment, 2.0, 2.0, 0.0),
        ),
        (
            "the next call's expected cost counts against the daily budget",
            Log::new().push(&r, status(RunStatus::Running)).push(&r, model(&["a"])).push(&r, result("a")),
            budget(1.6),
            stop(BudgetScope::Deployment, 2.0, 1.6, 0.5),
        ),
        (
            "a customer under its daily budget calls the model",
            Log::new().push(&r, status(RunStatus::Running)).push(&r, model(&["a"])).push(&r, result("a")),
            customer(1.4),
            Next::CallModel,
        ),
        (
            "a customer whose next call would pass its daily budget stops",
            Log::new().push(&r, status(RunStatus::Running)).push(&r, model(&["a"])).push(&r, result("a")),
            customer(1.5),
            stop(BudgetScope::Customer, 2.0, 1.5, 0.5),
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
        assert_eq!(decide(&log.events, &r, limits, &|_| Gate::Free), want, "{name}");
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
    assert_eq!(decide(&log.events, &a, RunLimits::default(), &|_| Gate::Free), Next::Complete);
    assert_eq!(decide(&log.events, &b, RunLimits::default(), &|_| Gate::Free), Next::Start);
    assert_eq!(run_usage(&log.events, &a).output_tokens, 2);
}

fn request(tool_use_id: &str, req: &RequestId) -> EventKind {
    EventKind::SteeringRequest {
        request_id: req.clone(),
        kind: RequestKind::Approval,
        summary: "s".into(),
        tool: Some("t".into()),
        tool_use_id: Some(tool_use_id.into()),
        arguments: Some(json!({})),
        question: None,
        options: None,
    }
}

fn response(req: &RequestId, result: &str, input: Option<serde_json::Value>) -> EventKind {
    EventKind::SteeringResponse {
        request_id: req.clone(),
        result: Some(if result == "deny" { Confirmation::Deny } else { Confirmation::Allow }),
        answer: None,
        message: (result == "deny").then(|| "use the other list".into()),
        input,
    }
}

fn answer(req: &RequestId, text: &str) -> EventKind {
    EventKind::SteeringResponse {
        request_id: req.clone(),
        result: None,
        answer: Some(text.into()),
        message: None,
        input: None,
    }
}

#[test]
fn gated_decisions() {
    let r = RunId::new();
    let (q1, q2) = (RequestId::new(), RequestId::new());
    let none = RunLimits::default();
    // Tool "t" calls a and b need approval; "free" calls do not.
    let gate = |name: &str| if name == "t" { Gate::Approval } else { Gate::Free };
    let running = || Log::new().push(&r, status(RunStatus::Running));
    let edited = RequestedToolCall { arguments: json!({"subject": "new"}), ..call("a") };
    let cases: Vec<(&str, Log, Next)> = vec![
        (
            "every gated call of a turn is surfaced at once",
            running().push(&r, model(&["a", "b"])),
            Next::AskPerson(vec![
                Ask { call: call("a"), gate: Gate::Approval },
                Ask { call: call("b"), gate: Gate::Approval },
            ]),
        ),
        (
            "a waiting run is idle",
            running().push(&r, model(&["a"])).push(&r, request("a", &q1)).push(&r, status(RunStatus::WaitingOnHuman)),
            Next::Idle,
        ),
        (
            "an allowed call runs with the edited input",
            running()
                .push(&r, model(&["a"]))
                .push(&r, request("a", &q1))
                .push(&r, status(RunStatus::WaitingOnHuman))
                .push(&r, response(&q1, "allow", Some(json!({"subject": "new"}))))
                .push(&r, status(RunStatus::Running)),
            Next::RunTool(edited),
        ),
        (
            "a denied call is answered with the message",
            running().push(&r, model(&["a"])).push(&r, request("a", &q1)).push(&r, response(&q1, "deny", None)),
            Next::Denied { call: call("a"), message: Some("use the other list".into()) },
        ),
        (
            "one answered of two while waiting: still idle",
            running()
                .push(&r, model(&["a", "b"]))
                .push(&r, request("a", &q1))
                .push(&r, request("b", &q2))
                .push(&r, status(RunStatus::WaitingOnHuman))
                .push(&r, response(&q1, "allow", None)),
            Next::Idle,
        ),
        (
            "a settled call runs; an unanswered one after it puts the run back to waiting",
            running()
                .push(&r, model(&["a", "b"]))
                .push(&r, request("a", &q1))
                .push(&r, request("b", &q2))
                .push(&r, response(&q1, "allow", None))
                .push(&r, started("a"))
                .push(&r, result("a")),
            Next::AskPerson(vec![]),
        ),
        (
            "an approved call that started and died is in flight (approval consumed)",
            running()
                .push(&r, model(&["a"]))
                .push(&r, request("a", &q1))
                .push(&r, response(&q1, "allow", None))
                .push(&r, started("a")),
            Next::InFlight(call("a")),
        ),
        (
            "re-approval after a crash lets it run again",
            running()
                .push(&r, model(&["a"]))
                .push(&r, request("a", &q1))
                .push(&r, response(&q1, "allow", None))
                .push(&r, started("a"))
                .push(&r, request("a", &q2))
                .push(&r, response(&q2, "allow", None)),
            Next::RunTool(call("a")),
        ),
    ];
    for (name, log, want) in cases {
        assert_eq!(decide(&log.events, &r, none, &gate), want, "{name}");
    }
}

#[test]
fn questions_wait_for_an_answer() {
    let r = RunId::new();
    let q = RequestId::new();
    let gate = |_: &str| Gate::Question;
    let log = Log::new().push(&r, status(RunStatus::Running)).push(&r, model(&["a"]));
    assert_eq!(
        decide(&log.events, &r, RunLimits::default(), &gate),
        Next::AskPerson(vec![Ask { call: call("a"), gate: Gate::Question }])
    );
    let log = log.push(&r, request("a", &q)).push(&r, answer(&q, "the second one"));
    assert_eq!(
        decide(&log.events, &r, RunLimits::default(), &gate),
        Next::Answered { call: call("a"), answer: "the second one".into() }
    );
}
