//! Steering: approvals that survive restarts (allow, deny, edit), questions, several gated
//! calls in one turn, the Tools API, interrupting a model stream, and races with one defined
//! outcome each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

async fn pending(env: &Env, thread: &str) -> Vec<Value> {
    let (_, t) = env.herm.get(&format!("/v1/deployments/{}/threads/{thread}", env.dep)).await;
    t["pending"].as_array().unwrap().clone()
}

async fn events(env: &Env, thread: &str, body: Value) -> (u16, Value) {
    env.herm.post(&format!("/v1/threads/{thread}/events"), &json!({"events": [body]})).await
}

fn gated() -> Value {
    json!({"tool_policies": {"record": "always_ask"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_survives_kill_and_restarts_then_runs_once_with_the_edit() {
    let script =
        vec![Reply::tool("record", record(7, 0)).with_text(&["I will record it."]), Reply::text(&["Recorded."])];
    let mut env = setup(script, Wire::Anthropic, gated()).await;
    let mut sse = env.thread_stream(None).await;
    let run = env.send("record seven").await["run_id"].as_str().unwrap().to_owned();
    let frames = sse.until(Duration::from_secs(10), |f| f.event == "steering_request").await;
    let req = frames.last().unwrap().data.clone();
    assert_eq!((req["kind"].as_str(), req["tool"].as_str()), (Some("approval"), Some("record")));
    assert_eq!(req["arguments"], record(7, 0));
    assert!(req["summary"].as_str().unwrap().starts_with("record("), "{req}");
    wait_status(&env, &run, "waiting_on_human").await;
    assert_eq!(env.connector.calls(), 0, "nothing ran before approval");

    // The operator redeploys twice while the customer is away.
    env.herm.restart().await;
    env.herm.restart().await;
    let p = pending(&env, &env.thread.clone()).await;
    assert_eq!(p.len(), 1);
    let request_id = p[0]["request_id"].as_str().unwrap().to_owned();
    assert_eq!(request_id, req["request_id"].as_str().unwrap());

    // An edit that breaks the schema is refused and the request stays pending.
    let (s, v) = events(
        &env,
        &env.thread.clone(),
        json!({"type": "user.tool_confirmation", "request_id": request_id, "result": "allow", "input": {"n": "seven"}}),
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (422, Some("validation_error")), "{v}");
    assert_eq!(v["errors"][0]["path"], "input/n");
    assert_eq!(pending(&env, &env.thread.clone()).await.len(), 1);

    let (s, v) = events(
        &env,
        &env.thread.clone(),
        json!({"type": "user.tool_confirmation", "request_id": request_id, "result": "allow", "input": record(8, 0)}),
    )
    .await;
    assert_eq!((s, v["results"][0]["outcome"].as_str()), (200, Some("allowed")), "{v}");
    assert_eq!(env.herm.wait_run(&env.dep, &run, Duration::from_secs(10)).await["status"], "completed");
    let calls = env.connector.recorded();
    assert_eq!(calls.len(), 1, "the tool ran once");
    assert!(calls[0].query.starts_with("n=8"), "with the edited arguments: {}", calls[0].query);
    assert_eq!(env.model.completed_per_step(), vec![1, 1], "no completed model call was repeated");
    let log = env.herm.thread_log(&env.thread).await;
    let tc = log.iter().find(|e| e["type"] == "tool_call").unwrap();
    assert_eq!(tc["arguments"], record(8, 0), "the journal records what actually ran");
    // A second answer to the same request is refused.
    let (s, v) = events(
        &env,
        &env.thread.clone(),
        json!({"type": "user.tool_confirmation", "request_id": request_id, "result": "allow"}),
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (409, Some("conflict")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_with_a_message_and_the_agent_adapts() {
    let script = vec![Reply::tool("record", record(1, 0)), Reply::text(&["Using the other list."])];
    let env = setup(script, Wire::OpenAi, gated()).await;
    let run = env.send("record one").await["run_id"].as_str().unwrap().to_owned();
    wait_status(&env, &run, "waiting_on_human").await;
    let rid = pending(&env, &env.thread).await[0]["request_id"].as_str().unwrap().to_owned();
    // An answer is the wrong reply to an approval.
    let (s, _) = events(&env, &env.thread, json!({"type": "user.answer", "request_id": rid, "answer": "yes"})).await;
    assert_eq!(s, 400);
    let (s, v) = events(&env, &env.thread, json!({"type": "user.tool_confirmation", "request_id": rid, "result": "deny", "deny_message": "use the other list"})).await;
    assert_eq!((s, v["results"][0]["outcome"].as_str()), (200, Some("denied")));
    assert_eq!(env.herm.wait_run(&env.dep, &run, Duration::from_secs(10)).await["status"], "completed");
    assert_eq!(env.connector.calls(), 0);
    let log = env.herm.thread_log(&env.thread).await;
    let r = log.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert_eq!((r["outcome"].as_str(), r["is_error"].as_bool()), (Some("denied"), Some(true)));
    let second = &env.model.attempts()[1].body;
    let tool_msg = second["messages"].as_array().unwrap().iter().find(|m| m["role"] == "tool").unwrap();
    assert!(tool_msg["content"].as_str().unwrap().contains("use the other list"), "{tool_msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_asks_instead_of_guessing() {
    let script = vec![
        Reply::tool(
            "ask_user",
            json!({"question": "Two campaigns match: which one?", "options": ["Spring", "Summer"]}),
        ),
        Reply::text(&["Done with Summer."]),
    ];
    let env = setup(script, Wire::Anthropic, json!({})).await;
    let mut sse = env.thread_stream(None).await;
    let run = env.send("pause the campaign").await["run_id"].as_str().unwrap().to_owned();
    let frames = sse.until(Duration::from_secs(10), |f| f.event == "steering_request").await;
    let q = &frames.last().unwrap().data;
    assert_eq!(
        (q["kind"].as_str(), q["question"].as_str()),
        (Some("question"), Some("Two campaigns match: which one?"))
    );
    assert_eq!(q["options"], json!(["Spring", "Summer"]));
    wait_status(&env, &run, "waiting_on_human").await;
    let rid = q["request_id"].as_str().unwrap();
    let (s, _) =
        events(&env, &env.thread, json!({"type": "user.tool_confirmation", "request_id": rid, "result": "allow"}))
            .await;
    assert_eq!(s, 400, "a confirmation is the wrong reply to a question");
    let (s, v) = events(&env, &env.thread, json!({"type": "user.answer", "request_id": rid, "answer": "Summer"})).await;
    assert_eq!((s, v["results"][0]["outcome"].as_str()), (200, Some("answered")));
    assert_eq!(env.herm.wait_run(&env.dep, &run, Duration::from_secs(10)).await["status"], "completed");
    let second = env.model.attempts()[1].body.to_string();
    assert!(second.contains("Summer"), "the model saw the answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_gated_calls_in_one_turn_are_each_answered() {
    let two = Reply {
        tool_calls: vec![("record".into(), record(1, 0)), ("record".into(), record(2, 0))],
        input_tokens: 1,
        output_tokens: 1,
        ..Default::default()
    };
    let env = setup(vec![two, Reply::text(&["ok"])], Wire::OpenAi, gated()).await;
    let run = env.send("record both").await["run_id"].as_str().unwrap().to_owned();
    wait_status(&env, &run, "waiting_on_human").await;
    let p = pending(&env, &env.thread).await;
    assert_eq!(p.len(), 2, "both surfaced at once");
    let (a, b) = (p[0]["request_id"].as_str().unwrap().to_owned(), p[1]["request_id"].as_str().unwrap().to_owned());
    events(&env, &env.thread, json!({"type": "user.tool_confirmation", "request_id": a, "result": "allow"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, r) = env.herm.get(&format!("/v1/deployments/{}/runs/{run}", env.dep)).await;
    assert_eq!(r["status"], "waiting_on_human", "still waiting for the second answer");
    assert_eq!(env.connector.calls(), 0, "calls run in order once all before them are settled");
    events(&env, &env.thread, json!({"type": "user.tool_confirmation", "request_id": b, "result": "deny"})).await;
    assert_eq!(env.herm.wait_run(&env.dep, &run, Duration::from_secs(10)).await["status"], "completed");
    assert_eq!(env.connector.calls(), 1);
    let log = env.herm.thread_log(&env.thread).await;
    let outcomes: Vec<&str> =
        log.iter().filter(|e| e["type"] == "tool_result").map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["ok", "denied"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_api_lists_and_sets_policies() {
    let env = setup(
        vec![Reply::text(&["hi"]), Reply::text(&["again"])],
        Wire::OpenAi,
        json!({"tool_policies": {"rec*": "always_ask"}}),
    )
    .await;
    let (s, t) = env.herm.get(&format!("/v1/deployments/{}/tools", env.dep)).await;
    assert_eq!(s, 200);
    let find = |t: &Value, n: &str| t["data"].as_array().unwrap().iter().find(|x| x["name"] == n).cloned().unwrap();
    assert_eq!(find(&t, "record")["permission"], "always_ask", "globs apply");
    assert_eq!(find(&t, "lookup")["permission"], "always_allow");
    assert_eq!(
        (find(&t, "ask_user")["origin"].as_str(), find(&t, "lookup")["origin"].as_str()),
        (Some("builtin"), Some("http"))
    );
    let v = env
        .herm
        .ok("PATCH", &format!("/v1/deployments/{}/tools/lookup", env.dep), &json!({"enabled": false}), 200)
        .await;
    assert_eq!((v["enabled"].as_bool(), v["permission"].as_str()), (Some(false), Some("disabled")));
    let v = env
        .herm
        .ok("PATCH", &format!("/v1/deployments/{}/tools/record", env.dep), &json!({"permission": "always_allow"}), 200)
        .await;
    assert_eq!(v["permission"], "always_allow", "an exact entry wins over the glob");
    let (s, _) = env.herm.patch(&format!("/v1/deployments/{}/tools/nope", env.dep), &json!({"enabled": false})).await;
    assert_eq!(s, 404);
    // A disabled tool is not shown to the model.
    let run = env.send("hi").await["run_id"].as_str().unwrap().to_owned();
    env.herm.wait_run(&env.dep, &run, Duration::from_secs(10)).await;
    let tools: Vec<String> = env.model.attempts()[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(!tools.contains(&"lookup".to_owned()) && tools.contains(&"record".to_owned()), "{tools:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_during_a_model_stream() {
    let env =
        setup(vec![Reply::text(&["thinking..."]).stall_first(), Reply::text(&["next"])], Wire::Anthropic, json!({}))
            .await;
    let run = env.send("long question").await["run_id"].as_str().unwrap().to_owned();
    let model = env.model.clone();
    for _ in 0..200 {
        if model.request_count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (s, v) = events(&env, &env.thread, json!({"type": "user.interrupt"})).await;
    assert_eq!((s, v["results"][0]["outcome"].as_str()), (200, Some("interrupted")));
    let r = env.herm.wait_run(&env.dep, &run, Duration::from_secs(5)).await;
    assert_eq!(r["status"], "interrupted");
    let log = env.herm.thread_log(&env.thread).await;
    assert!(log.iter().all(|e| e["type"] != "agent_message"), "the cancelled stream left no message: {log:#?}");
    // The thread takes new work at once.
    let run2 = env.send("short one").await["run_id"].as_str().unwrap().to_owned();
    assert_eq!(env.herm.wait_run(&env.dep, &run2, Duration::from_secs(10)).await["status"], "completed");
}

/// A fresh thread with one run waiting on approval of `record`.
async fn waiting_thread(env: &Env) -> (String, String, String) {
    let r = env
        .herm
        .ok(
            "POST",
            &format!("/v1/deployments/{}/messages", env.dep),
            &json!({"content": "go", "thread_id": "new"}),
            202,
        )
        .await;
    let (thread, run) = (r["thread_id"].as_str().unwrap().to_owned(), r["run_id"].as_str().unwrap().to_owned());
    wait_status(env, &run, "waiting_on_human").await;
    let rid = pending(env, &thread).await[0]["request_id"].as_str().unwrap().to_owned();
    (thread, run, rid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_have_one_defined_outcome() {
    let script = vec![Reply::tool("record", record(1, 0)), Reply::text(&["done"]), Reply::text(&["again"])];
    let env = setup(script, Wire::OpenAi, gated()).await;
    for i in 0..8 {
        // Two confirmations of one request: exactly one wins, the tool runs once.
        let before = env.connector.calls();
        let (thread, run, rid) = waiting_thread(&env).await;
        let body = json!({"type": "user.tool_confirmation", "request_id": rid, "result": "allow"});
        let (a, b) = tokio::join!(events(&env, &thread, body.clone()), events(&env, &thread, body));
        let mut codes = [a.0, b.0];
        codes.sort();
        assert_eq!(codes, [200, 409], "iteration {i}: {a:?} {b:?}");
        assert_eq!(env.herm.wait_run(&env.dep, &run, Duration::from_secs(10)).await["status"], "completed");
        assert_eq!(env.connector.calls(), before + 1, "iteration {i}");

        // A confirmation racing an interrupt: the run ends interrupted or the confirmation is
        // refused; either way the log is consistent and the tool ran at most once.
        let before = env.connector.calls();
        let (thread, run, rid) = waiting_thread(&env).await;
        let (c, x) = tokio::join!(
            events(&env, &thread, json!({"type": "user.tool_confirmation", "request_id": rid, "result": "allow"})),
            events(&env, &thread, json!({"type": "user.interrupt"})),
        );
        let r = env.herm.wait_run(&env.dep, &run, Duration::from_secs(10)).await;
        match (c.0, x.0) {
            (200, 200) => assert!(r["status"] == "interrupted" || r["status"] == "completed", "{r}"),
            (409, 200) => assert_eq!(r["status"], "interrupted"),
            (200, 409) => assert_eq!(r["status"], "completed", "the run finished before the interrupt"),
            other => panic!("iteration {i}: unexpected {other:?} {c:?} {x:?}"),
        }
        assert!(env.connector.calls() <= before + 1);
        let log = env.herm.thread_log(&thread).await;
        let end = log
            .iter()
            .position(|e| e["type"] == "run_status" && (e["status"] == "interrupted" || e["status"] == "completed"))
            .unwrap();
        assert!(log[end + 1..].iter().all(|e| e["run_id"] != run.as_str()), "nothing after the end: {log:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steer_racing_completion_is_answered_or_refused() {
    let env =
        setup(vec![Reply::text(&["first answer"]), Reply::text(&["answer with the steer"])], Wire::OpenAi, json!({}))
            .await;
    let (mut steered, mut refused) = (0, 0);
    for i in 0..12 {
        let r = env
            .herm
            .ok(
                "POST",
                &format!("/v1/deployments/{}/messages", env.dep),
                &json!({"content": "hi", "thread_id": "new"}),
                202,
            )
            .await;
        let (thread, run) = (r["thread_id"].as_str().unwrap().to_owned(), r["run_id"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(i % 4)).await;
        let (s, v) = events(&env, &thread, json!({"type": "user.steer", "message": "also mention the weather"})).await;
        assert_eq!(env.herm.wait_run(&env.dep, &run, Duration::from_secs(10)).await["status"], "completed");
        let log = env.herm.thread_log(&thread).await;
        let model_calls = log.iter().filter(|e| e["type"] == "model_call").count();
        let steer_at = log.iter().position(|e| e["type"] == "steer");
        match s {
            200 => {
                assert_eq!(v["results"][0]["outcome"], "steered");
                // The steer was folded in: a model call came after it.
                let last_call = log.iter().rposition(|e| e["type"] == "model_call").unwrap();
                assert!(last_call > steer_at.unwrap(), "iteration {i}: steer not answered: {log:#?}");
                steered += 1;
            }
            409 => {
                assert_eq!((steer_at, model_calls), (None, 1), "iteration {i}: refused steer left a trace");
                refused += 1;
            }
            other => panic!("iteration {i}: unexpected {other} {v}"),
        }
    }
    eprintln!("steered {steered}, refused {refused}");
}
