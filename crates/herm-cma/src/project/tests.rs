use super::*;
use herm_types::event::{RunError, ToolOutcome};
use herm_types::proactive::{GoalStatus, Verdict};

fn ev(n: i64, kind: EventKind) -> Event {
    Event {
        id: EventId::new(),
        sequence: Sequence(n),
        deployment_sequence: DeploymentSeq(n),
        deployment_id: DeploymentId::new(),
        thread_id: ThreadId::new(),
        run_id: None,
        created_at: chrono::Utc::now(),
        kind,
    }
}

fn status(s: RunStatus) -> EventKind {
    EventKind::RunStatus { status: s, kind: RunKind::default(), trigger: None, error: None, usage: None }
}

fn model_call() -> EventKind {
    EventKind::ModelCall {
        model: "m".into(),
        input_tokens: 10,
        output_tokens: 5,
        cost_usd: 0.01,
        duration_ms: 1,
        tool_calls: vec![],
        stop_reason: None,
        context_sequence: None,
        estimated: false,
    }
}

fn types(out: &[Value]) -> Vec<&str> {
    out.iter().map(|v| v["type"].as_str().unwrap_or_default()).collect()
}

#[test]
fn an_approved_call_reads_like_cma() {
    let log = vec![
        ev(1, EventKind::Message { role: Role::User, content: "hi".into(), attachments: vec![] }),
        ev(2, status(RunStatus::Running)),
        ev(3, EventKind::AgentMessage { content: "let me look".into() }),
        ev(4, model_call()),
        ev(
            5,
            EventKind::SteeringRequest {
                request_id: RequestId::new(),
                kind: RequestKind::Approval,
                summary: "shell".into(),
                tool: Some("shell".into()),
                tool_use_id: Some("tu1".into()),
                arguments: Some(json!({"command": "ls"})),
                question: None,
                options: None,
            },
        ),
        ev(6, status(RunStatus::WaitingOnHuman)),
    ];
    let (out, _) = all(&log);
    assert_eq!(
        types(&out),
        [
            "user.message",
            "session.status_running",
            "span.model_request_start",
            "agent.message",
            "span.model_request_end",
            "agent.tool_use",
            "session.status_idle"
        ]
    );
    let tool_use = &out[5];
    assert_eq!(tool_use["id"], log[4].id.as_str());
    assert_eq!(tool_use["name"], "bash");
    assert_eq!(tool_use["input"], json!({"command": "ls"}));
    assert_eq!(tool_use["evaluated_permission"], "ask");
    assert_eq!(out[6]["stop_reason"], json!({"type": "requires_action", "event_ids": [log[4].id.as_str()]}));
    assert_eq!(out[4]["model_request_start_id"], out[2]["id"]);
    assert_eq!(out[4]["model_usage"]["input_tokens"], 10);

    // Approved: the echo names the tool use event; the write-ahead record shows nothing.
    let EventKind::SteeringRequest { request_id, .. } = &log[4].kind else { unreachable!() };
    let more = [
        ev(
            7,
            EventKind::SteeringResponse {
                request_id: request_id.clone(),
                result: Some(Confirmation::Allow),
                answer: None,
                message: None,
                input: None,
            },
        ),
        ev(8, status(RunStatus::Running)),
        ev(
            9,
            EventKind::ToolCall {
                tool_use_id: "tu1".into(),
                tool: "shell".into(),
                origin: "builtin".into(),
                arguments: json!({"command": "ls"}),
            },
        ),
        ev(
            10,
            EventKind::ToolResult {
                tool_use_id: "tu1".into(),
                tool: "shell".into(),
                result: "a.txt".into(),
                is_error: false,
                duration_ms: 3,
                attachments: vec![],
                outcome: ToolOutcome::Ok,
            },
        ),
        ev(11, EventKind::AgentMessage { content: "done".into() }),
        ev(12, model_call()),
        ev(13, status(RunStatus::Completed)),
    ];
    let full: Vec<Event> = log.iter().chain(more.iter()).cloned().collect();
    let (out, p) = all(&full);
    let tail = &out[7..];
    assert_eq!(
        types(tail),
        [
            "user.tool_confirmation",
            "session.status_running",
            "agent.tool_result",
            "span.model_request_start",
            "agent.message",
            "span.model_request_end",
            "session.status_idle"
        ]
    );
    assert_eq!(tail[0]["tool_use_id"], log[4].id.as_str());
    assert_eq!(tail[0]["result"], "allow");
    assert_eq!(tail[2]["tool_use_id"], log[4].id.as_str());
    assert_eq!(tail[2]["content"], json!([{"type": "text", "text": "a.txt"}]));
    assert_eq!(tail[6]["stop_reason"], json!({"type": "end_turn"}));
    assert_eq!(p.usage().input_tokens, 20);
    // Ids are unique.
    let mut ids: Vec<&str> = out.iter().map(|v| v["id"].as_str().unwrap_or_default()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), out.len());
}

#[test]
fn free_calls_questions_and_errors() {
    let q = RequestId::new();
    let log = vec![
        ev(
            1,
            EventKind::ToolCall {
                tool_use_id: "a".into(),
                tool: "docs__search".into(),
                origin: "mcp:docs".into(),
                arguments: json!({"q": "x"}),
            },
        ),
        ev(
            2,
            EventKind::ToolResult {
                tool_use_id: "a".into(),
                tool: "docs__search".into(),
                result: "r".into(),
                is_error: false,
                duration_ms: 1,
                attachments: vec![],
                outcome: ToolOutcome::Ok,
            },
        ),
        ev(
            3,
            EventKind::SteeringRequest {
                request_id: q.clone(),
                kind: RequestKind::Question,
                summary: "q".into(),
                tool: Some("ask_user".into()),
                tool_use_id: Some("b".into()),
                arguments: None,
                question: Some("which?".into()),
                options: Some(vec!["x".into(), "y".into()]),
            },
        ),
        ev(4, status(RunStatus::WaitingOnHuman)),
        ev(
            5,
            EventKind::SteeringResponse {
                request_id: q,
                result: None,
                answer: Some("x".into()),
                message: None,
                input: None,
            },
        ),
        ev(
            6,
            EventKind::ToolResult {
                tool_use_id: "b".into(),
                tool: "ask_user".into(),
                result: "x".into(),
                is_error: false,
                duration_ms: 0,
                attachments: vec![],
                outcome: ToolOutcome::Ok,
            },
        ),
        ev(
            7,
            EventKind::RunStatus {
                status: RunStatus::Error,
                kind: RunKind::default(),
                trigger: None,
                error: Some(RunError { code: "model_overloaded".into(), message: "busy".into() }),
                usage: None,
            },
        ),
    ];
    let (out, _) = all(&log);
    assert_eq!(
        types(&out),
        [
            "agent.mcp_tool_use",
            "agent.mcp_tool_result",
            "agent.custom_tool_use",
            "session.status_idle",
            "user.custom_tool_result",
            "session.error",
            "session.status_idle"
        ]
    );
    assert_eq!(out[0]["mcp_server_name"], "docs");
    assert_eq!(out[0]["name"], "search");
    assert_eq!(out[0]["evaluated_permission"], "allow");
    assert_eq!(out[1]["mcp_tool_use_id"], out[0]["id"]);
    assert_eq!(out[2]["name"], "ask_user");
    assert_eq!(out[2]["input"], json!({"question": "which?", "options": ["x", "y"]}));
    assert_eq!(out[3]["stop_reason"]["event_ids"], json!([out[2]["id"]]));
    assert_eq!(out[4]["custom_tool_use_id"], out[2]["id"]);
    assert_eq!(out[5]["error"]["type"], "model_overloaded_error");
    assert_eq!(out[5]["error"]["retry_status"]["type"], "exhausted");
    assert_eq!(out[6]["stop_reason"]["type"], "retries_exhausted");
}

#[test]
fn error_codes_map_to_cma_types() {
    for (code, want) in [
        ("insufficient_credits", "billing_error"),
        ("max_steps_exceeded", "tool_use_limit_reached_error"),
        ("model_overloaded", "model_overloaded_error"),
        ("model_rate_limited", "model_rate_limited_error"),
        ("model_error", "model_request_failed_error"),
        ("sandbox_unavailable", "unknown_error"),
    ] {
        assert_eq!(error_type(code), want, "{code}");
    }
}

#[test]
fn outcomes_are_goals_on_the_thread() {
    let goal = GoalId::new();
    let run = RunId::new();
    let mut kickoff =
        ev(2, EventKind::Message { role: Role::User, content: "[Goal …] work".into(), attachments: vec![] });
    kickoff.run_id = Some(run.clone());
    let mut started = ev(
        3,
        EventKind::RunStatus {
            status: RunStatus::Running,
            kind: RunKind::Goal,
            trigger: None,
            error: None,
            usage: None,
        },
    );
    started.run_id = Some(run.clone());
    let verdict = |n, result| {
        ev(
            n,
            EventKind::GoalVerdict {
                goal_id: goal.clone(),
                run_id: run.clone(),
                result,
                feedback: "why".into(),
                cost_usd: 0.0,
            },
        )
    };
    let log = vec![
        ev(1, EventKind::GoalStatus { goal_id: goal.clone(), status: GoalStatus::Active, reason: None }),
        kickoff,
        started,
        verdict(4, Verdict::NeedsRevision),
        verdict(5, Verdict::Pass),
        ev(6, EventKind::GoalStatus { goal_id: goal.clone(), status: GoalStatus::Active, reason: None }),
    ];
    let o = Outcome { description: "write it".into(), rubric: "it is written".into(), max_iterations: 3 };
    let (out, _) = fold(&log, Projector::with_outcomes(HashMap::from([(goal.to_string(), o)])));
    assert_eq!(
        types(&out),
        [
            "user.define_outcome",
            "session.status_running",
            "span.outcome_evaluation_start",
            "span.outcome_evaluation_end",
            "span.outcome_evaluation_start",
            "span.outcome_evaluation_end"
        ],
        "the goal's own message is not the user's, and the outcome is defined once"
    );
    assert_eq!(out[0]["outcome_id"], goal.as_str());
    assert_eq!(out[0]["rubric"], json!({"type": "text", "content": "it is written"}));
    assert_eq!((out[3]["result"].as_str(), out[3]["iteration"].as_u64()), (Some("needs_revision"), Some(0)));
    assert_eq!((out[5]["result"].as_str(), out[5]["iteration"].as_u64()), (Some("satisfied"), Some(1)));
    assert_eq!(out[5]["outcome_evaluation_start_id"], out[4]["id"]);
    // Unknown goals (herm's own, not defined through this API) show nothing.
    let (out, _) = all(&log[..1]);
    assert!(out.is_empty());
    // A user message at the end of the log comes out at the end.
    let mut last = ev(7, EventKind::Message { role: Role::User, content: "hi".into(), attachments: vec![] });
    last.run_id = Some(RunId::new());
    let (out, _) = all(&[last]);
    assert_eq!(types(&out), ["user.message"]);
}
