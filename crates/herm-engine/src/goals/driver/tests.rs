use super::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("a test time").with_timezone(&Utc)
}

fn goal(max_runs: u32, max_cost: Option<f64>, deadline: Option<&str>, state: GoalState) -> GoalRecord {
    GoalRecord {
        id: GoalId::new(),
        deployment_id: DeploymentId::new(),
        thread_id: ThreadId::new(),
        spec: GoalSpec {
            objective: "o".into(),
            done_criteria: None,
            max_runs,
            max_cost_usd: max_cost,
            check_every_secs: 600,
            deadline_at: deadline.map(at),
        },
        status: GoalStatus::Active,
        state,
        revision: 1,
        created_at: at("2026-12-01T00:00:00Z"),
        updated_at: at("2026-12-01T00:00:00Z"),
    }
}

fn run(status: RunStatus, cost: f64, ended: Option<&str>) -> RunRecord {
    RunRecord {
        id: RunId::new(),
        thread_id: ThreadId::new(),
        deployment_id: DeploymentId::new(),
        status,
        kind: RunKind::Goal,
        trigger: None,
        started_at: at("2026-12-01T00:00:00Z"),
        ended_at: ended.map(at),
        steps: 1,
        usage: Usage { input_tokens: 1, output_tokens: 1, cost_usd: cost },
        error: None,
    }
}

fn failed() -> RunRecord {
    let mut r = run(RunStatus::Error, 0.0, Some("2026-12-02T11:00:00Z"));
    r.error = Some(herm_types::event::RunError { code: "model_not_configured".into(), message: "m".into() });
    r
}

#[test]
fn the_loop_takes_one_step_at_a_time() {
    let now = at("2026-12-02T12:00:00Z");
    let done = |c: f64| run(RunStatus::Completed, c, Some("2026-12-02T11:00:00Z"));
    let claim = GoalState { claim: Some((RunId::new(), "shipped".into())), ..Default::default() };
    let waiting = GoalState { wait_until: Some(at("2026-12-03T00:00:00Z")), ..Default::default() };
    let cases: Vec<(&str, GoalRecord, Vec<RunRecord>, Step)> = vec![
        ("a new goal starts its first run", goal(3, None, None, GoalState::default()), vec![], Step::Start { n: 1 }),
        (
            "a running run is watched",
            goal(3, None, None, GoalState::default()),
            vec![run(RunStatus::Running, 0.0, None)],
            Step::Watch { waiting_on_human: false },
        ),
        (
            "a run waiting on a person makes the goal wait",
            goal(3, None, None, GoalState::default()),
            vec![run(RunStatus::WaitingOnHuman, 0.0, None)],
            Step::Watch { waiting_on_human: true },
        ),
        (
            "a claim is judged, even on the last run",
            goal(1, None, None, claim.clone()),
            vec![done(0.1)],
            Step::Judge { run: claim.claim.clone().unwrap().0, summary: "shipped".into() },
        ),
        (
            "max_runs ends it",
            goal(2, None, None, GoalState::default()),
            vec![done(0.0), done(0.0)],
            Step::Exhaust("max_runs (2) reached".into()),
        ),
        (
            "max_cost ends it",
            goal(9, Some(0.5), None, GoalState::default()),
            vec![done(0.3), done(0.3)],
            Step::Exhaust("max_cost_usd (0.5) reached: 0.6000 spent".into()),
        ),
        (
            "judge costs count",
            goal(9, Some(0.5), None, GoalState { judge_cost_usd: 0.45, ..Default::default() }),
            vec![done(0.1)],
            Step::Exhaust("max_cost_usd (0.5) reached: 0.5500 spent".into()),
        ),
        (
            "the deadline ends it",
            goal(9, None, Some("2026-12-02T00:00:00Z"), GoalState::default()),
            vec![done(0.0)],
            Step::Exhaust("the deadline passed".into()),
        ),
        (
            "a wait the agent asked for is kept",
            goal(9, None, None, waiting),
            vec![done(0.0)],
            Step::WaitUntil(at("2026-12-03T00:00:00Z")),
        ),
        (
            "runs are spaced by check_every",
            goal(9, None, None, GoalState::default()),
            vec![run(RunStatus::Completed, 0.0, Some("2026-12-02T11:55:00Z"))],
            Step::PauseUntil(at("2026-12-02T12:05:00Z")),
        ),
        (
            "three failed runs in a row fail the goal",
            goal(9, None, None, GoalState::default()),
            vec![done(0.0), failed(), failed(), failed()],
            Step::Fail("3 runs in a row failed (last error: model_not_configured)".into()),
        ),
        (
            "two failed runs do not",
            goal(9, None, None, GoalState::default()),
            vec![failed(), done(0.0), failed(), failed()],
            Step::Start { n: 5 },
        ),
        (
            "after the pause the next run starts",
            goal(9, None, None, GoalState::default()),
            vec![done(0.0), done(0.0)],
            Step::Start { n: 3 },
        ),
    ];
    for (what, g, runs, want) in cases {
        assert_eq!(decide(&g, &runs, now), want, "{what}");
    }
}
