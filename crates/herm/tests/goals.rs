//! Goals as an operator meets them: the runtime keeps starting runs toward an objective; the
//! agent reports progress and claims it done; a judge (a separate model call, seen at the fake
//! model by its system prompt) sends it back once and then agrees; budgets end a goal; a
//! person cancels one; a crash in the middle changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

const JUDGE: &str = "strict, fair judge";

fn verdict(result: &str, feedback: &str) -> Reply {
    Reply::text(&[&json!({"result": result, "feedback": feedback}).to_string()])
}

async fn goal_env(script: Vec<Reply>, judge: Vec<Reply>, extra: Value) -> Env {
    let model = FakeModel::start_with_sides(script, vec![(JUDGE.into(), judge)]).await;
    setup_model(model, Wire::Anthropic, extra, CONFIG).await
}

async fn create(env: &Env, body: Value) -> Value {
    env.herm.ok("POST", &format!("/v1/deployments/{}/goals", env.dep), &body, 201).await
}

async fn wait_goal(env: &Env, id: &str, status: &str) -> Value {
    let mut g = Value::Null;
    for _ in 0..600 {
        g = env.herm.ok("GET", &format!("/v1/deployments/{}/goals/{id}", env.dep), &Value::Null, 200).await;
        if g["status"] == status {
            return g;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("goal {id} never reached {status}: {g}");
}

fn events_of<'a>(log: &'a [Value], kind: &str) -> Vec<&'a Value> {
    log.iter().filter(|e| e["type"] == kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goal_is_done_when_the_judge_agrees_after_one_revision() {
    let script = vec![
        Reply::tool("goal_done", json!({"summary": "I sent the onboarding doc to legal."})),
        Reply::text(&["Claimed."]),
        Reply::tool("goal_progress", json!({"note": "legal approved version 2"})),
        Reply::tool("goal_done", json!({"summary": "Legal approved version 2 in writing."})),
        Reply::text(&["Done."]),
    ];
    let judge =
        vec![verdict("needs_revision", "legal has not approved it yet"), verdict("pass", "approval is on record")];
    let env = goal_env(script, judge, json!({})).await;
    let g = create(
        &env,
        json!({"objective": "Get our onboarding doc approved by legal", "done_criteria": "Legal approved it in writing",
               "check_every": "1s", "max_runs": 5}),
    )
    .await;
    assert!(g["goal_id"].as_str().unwrap().starts_with("goal_"));
    assert_eq!((g["status"].as_str(), g["check_every"].as_str()), (Some("active"), Some("1s")), "{g}");
    let id = g["goal_id"].as_str().unwrap();
    let done = wait_goal(&env, id, "done").await;
    assert_eq!(done["runs"].as_array().unwrap().len(), 2, "{done}");
    assert_eq!(done["progress_notes"][0]["note"], "legal approved version 2");
    assert!(done["reason"].as_str().unwrap().contains("approval is on record"), "{done}");
    assert!(done["cost_usd"].as_f64().unwrap() > 0.0);

    let log = env.herm.thread_log(done["thread_id"].as_str().unwrap()).await;
    let verdicts: Vec<&str> = events_of(&log, "goal_verdict").iter().map(|e| e["result"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["needs_revision", "pass"]);
    let statuses: Vec<&str> = events_of(&log, "goal_status").iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!((statuses.first(), statuses.last()), (Some(&"active"), Some(&"done")), "{statuses:?}");
    assert!(
        log.iter().filter(|e| e["type"] == "run_status").all(|e| e["kind"] == "goal" && e["trigger"]["goal_id"] == id)
    );
    // The judge ran in its own context, twice; the second run saw its feedback.
    let attempts = env.model.attempts();
    let judged: Vec<_> = attempts.iter().filter(|a| a.side == Some(0)).collect();
    assert_eq!(judged.len(), 2);
    assert!(!judged[0].body.to_string().contains("goal_done\""), "no tools in the judge's request");
    let second_run_first = attempts.iter().find(|a| a.side.is_none() && a.step == 2).unwrap();
    assert!(second_run_first.body.to_string().contains("legal has not approved it yet"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goal_stops_when_its_run_budget_is_spent() {
    let env = goal_env(
        vec![Reply::text(&["working"]), Reply::text(&["still working"]), Reply::text(&["more"])],
        vec![],
        json!({}),
    )
    .await;
    let g = create(&env, json!({"objective": "Keep going", "max_runs": 2, "check_every": "1s"})).await;
    let g = wait_goal(&env, g["goal_id"].as_str().unwrap(), "exhausted").await;
    assert_eq!(g["reason"], "max_runs (2) reached", "{g}");
    assert_eq!(g["runs"].as_array().unwrap().len(), 2);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(env.model.request_count(), 2, "no run starts after the budget is spent");
    // Goal tools are offered to a goal's runs only.
    let tools = |a: &Attempt| -> Vec<String> {
        a.body["tools"]
            .as_array()
            .map(|t| t.iter().map(|x| x["name"].as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    assert!(tools(&env.model.attempts()[0]).contains(&"goal_done".to_owned()));
    run_to_end(&env, "hello").await;
    let user = env.model.attempts().last().unwrap().clone();
    assert!(!tools(&user).iter().any(|t| t.starts_with("goal_")), "{:?}", tools(&user));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goal_waits_for_a_person_and_can_be_cancelled() {
    let script = vec![Reply::tool("record", record(1, 0)), Reply::text(&["ok"])];
    let env = goal_env(script, vec![], json!({"tool_policies": {"record": "always_ask"}})).await;
    let g = create(&env, json!({"objective": "Record the entry", "check_every": "1s"})).await;
    let id = g["goal_id"].as_str().unwrap();
    let waiting = wait_goal(&env, id, "waiting").await;
    assert_eq!(waiting["reason"], "its run waits for a person", "{waiting}");
    let run = waiting["runs"][0]["run_id"].as_str().unwrap().to_owned();
    let c = env.herm.ok("POST", &format!("/v1/deployments/{}/goals/{id}/cancel", env.dep), &json!({}), 200).await;
    assert_eq!(c["status"], "cancelled");
    assert_eq!(env.herm.wait_run(&env.dep, &run, Duration::from_secs(10)).await["status"], "interrupted");
    let (s, v) = env.herm.post(&format!("/v1/deployments/{}/goals/{id}/cancel", env.dep), &json!({})).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("conflict")), "{v}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(env.connector.calls(), 0);
    assert_eq!(env.model.request_count(), 1, "nothing runs for a cancelled goal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goal_survives_kill_9_in_the_middle_of_a_run() {
    let script = vec![
        Reply::tool("goal_done", json!({"summary": "all set"})),
        Reply::text(&["Claiming", " the", " goal", " done", " now", "."]).delayed(Duration::from_millis(150)),
    ];
    let mut env = goal_env(script, vec![verdict("pass", "fine")], json!({})).await;
    let g = create(&env, json!({"objective": "Finish", "check_every": "1s"})).await;
    let id = g["goal_id"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        if env.model.attempts().iter().any(|a| a.step == 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.herm.kill9().await;
    env.herm.restart().await;
    let done = wait_goal(&env, &id, "done").await;
    assert_eq!(done["runs"].as_array().unwrap().len(), 1, "the interrupted run resumed; no second run: {done}");
    assert_eq!(env.model.attempts().iter().filter(|a| a.side == Some(0)).count(), 1, "judged once");
    assert_eq!(env.model.completed_per_step()[0], 1, "the finished step was not paid for twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_goals_are_refused() {
    let env = goal_env(vec![], vec![], json!({})).await;
    for body in [
        json!({"objective": ""}),
        json!({"objective": "x", "max_runs": 0}),
        json!({"objective": "x", "max_cost_usd": -1}),
        json!({"objective": "x", "check_every": "5 fortnights"}),
        json!({"objective": "x", "deadline_at": "2001-01-01T00:00:00Z"}),
        json!({"objective": "x", "thread_id": "nope"}),
        json!({"objective": "x", "extra": true}),
    ] {
        let (s, v) = env.herm.post(&format!("/v1/deployments/{}/goals", env.dep), &body).await;
        assert_eq!((s, v["code"].as_str()), (400, Some("validation_error")), "{body}: {v}");
    }
    let (s, _) = env.herm.get(&format!("/v1/deployments/{}/goals/goal_0000000000000000000000", env.dep)).await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goal_whose_judge_cannot_be_asked_fails_and_says_why() {
    let script = vec![Reply::tool("goal_done", json!({"summary": "done"})), Reply::text(&["Claimed."])];
    let env = goal_env(script, vec![Reply::text(&["-"]).fail_first(400, 1)], json!({})).await;
    let g = create(&env, json!({"objective": "Finish", "check_every": "1s"})).await;
    let g = wait_goal(&env, g["goal_id"].as_str().unwrap(), "failed").await;
    assert!(g["reason"].as_str().unwrap().starts_with("the judge could not be asked"), "{g}");
    let log = env.herm.thread_log(g["thread_id"].as_str().unwrap()).await;
    assert!(events_of(&log, "goal_verdict").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goal_is_active_again_once_its_person_answers() {
    let slow = Reply::text(&["Recording", " it", " now", " and", " then", " some", " more", "."])
        .delayed(Duration::from_millis(400));
    let script = vec![Reply::tool("record", record(1, 0)), slow];
    let env = goal_env(script, vec![], json!({"tool_policies": {"record": "always_ask"}})).await;
    let g = create(&env, json!({"objective": "Record the entry", "check_every": "1h"})).await;
    let id = g["goal_id"].as_str().unwrap();
    let waiting = wait_goal(&env, id, "waiting").await;
    let thread = waiting["thread_id"].as_str().unwrap();
    let (_, t) = env.herm.get(&format!("/v1/deployments/{}/threads/{thread}", env.dep)).await;
    let request = t["pending"][0]["request_id"].clone();
    env.herm
        .ok(
            "POST",
            &format!("/v1/threads/{thread}/events"),
            &json!({"events": [{"type": "user.tool_confirmation", "request_id": request, "result": "allow"}]}),
            200,
        )
        .await;
    let active = wait_goal(&env, id, "active").await;
    let run = active["runs"][0]["run_id"].as_str().unwrap();
    let (_, r) = env.herm.get(&format!("/v1/deployments/{}/runs/{run}", env.dep)).await;
    assert_eq!(r["status"], "running", "the goal is active while its run still works: {r}");
}
