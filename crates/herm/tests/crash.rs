//! Crash tests: `kill -9` the server during a model stream, during a tool call and between
//! steps of a 5-step run; restart; the run completes, no completed model call is made twice,
//! and a non-repeat-safe tool in flight at the kill is not called again: the model is told
//! its outcome is unknown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

/// Four `record` calls (the `slow` one holds its response), then a final answer.
fn five_steps(stall_model_at: Option<usize>, slow_tool: Option<u64>) -> Vec<Reply> {
    let mut s: Vec<Reply> = (0..4)
        .map(|i| {
            let delay = if slow_tool == Some(i) { 60_000 } else { 0 };
            Reply::tool("record", record(i, delay)).with_text(&["step ", &i.to_string()])
        })
        .collect();
    s.push(Reply::text(&["all ", "done"]));
    if let Some(i) = stall_model_at {
        s[i] = s[i].clone().stall_first();
    }
    s
}

fn calls_per_n(env: &Env) -> Vec<usize> {
    let mut v = vec![0; 4];
    for c in env.connector.recorded() {
        let n: usize = c.query.split('&').find_map(|kv| kv.strip_prefix("n=")).unwrap().parse().unwrap();
        v[n] += 1;
    }
    v
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn finish_after_restart(env: &mut Env, run: &str) -> Value {
    env.herm.restart().await;
    let r = env.herm.wait_run(&env.dep, run, Duration::from_secs(30)).await;
    assert_eq!(r["status"], "completed", "{r}\n{}", env.herm.log_text());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_model_stream() {
    let mut env = setup(five_steps(Some(2), None), Wire::Anthropic, json!({})).await;
    let run = env.send("go").await["run_id"].as_str().unwrap().to_owned();
    // Step 2's first response streams its text and then hangs: kill herm mid-stream.
    let model = env.model.clone();
    wait_for("the model stream of step 2", || model.attempts().iter().any(|a| a.step == 2)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    env.herm.kill9().await;
    finish_after_restart(&mut env, &run).await;
    // The interrupted call was made again (it left nothing durable); no completed call twice.
    assert_eq!(env.model.completed_per_step(), vec![1, 1, 1, 1, 1]);
    assert_eq!(env.model.attempts().iter().filter(|a| a.step == 2).count(), 2);
    assert_eq!(calls_per_n(&env), vec![1, 1, 1, 1]);
    // The log holds exactly one model_call per step and one agent message per step.
    let log = env.herm.thread_log(&env.thread).await;
    assert_eq!(log.iter().filter(|e| e["type"] == "model_call").count(), 5);
    assert_eq!(log.iter().filter(|e| e["type"] == "tool_result" && e["outcome"] == "ok").count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_non_repeat_safe_tool_call() {
    let mut env = setup(five_steps(None, Some(1)), Wire::OpenAi, json!({})).await;
    let run = env.send("go").await["run_id"].as_str().unwrap().to_owned();
    let conn = env.connector.clone();
    wait_for("record #1 in flight", || conn.calls() == 2).await;
    env.herm.kill9().await;
    finish_after_restart(&mut env, &run).await;
    // `record` is not repeat-safe: the in-flight call (n=1) was not made again.
    assert_eq!(calls_per_n(&env), vec![1, 1, 1, 1]);
    assert_eq!(env.model.completed_per_step(), vec![1, 1, 1, 1, 1]);
    let log = env.herm.thread_log(&env.thread).await;
    let unknown: Vec<&Value> =
        log.iter().filter(|e| e["type"] == "tool_result" && e["outcome"] == "interrupted_unknown").collect();
    assert_eq!(unknown.len(), 1, "{log:#?}");
    assert_eq!(unknown[0]["is_error"], true);
    // The model was told: the step-2 request carries the unknown-outcome result.
    let step2 = env.model.attempts().into_iter().find(|a| a.step == 2).unwrap();
    let tool_msgs: Vec<&Value> =
        step2.body["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "tool").collect();
    assert!(tool_msgs[1]["content"].as_str().unwrap().contains("may or may not have taken effect"), "{tool_msgs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_between_steps() {
    let script: Vec<Reply> = five_steps(None, None).into_iter().map(|r| r.delayed(Duration::from_millis(30))).collect();
    let mut env = setup(script, Wire::Anthropic, json!({})).await;
    let mut sse = env.thread_stream(None).await;
    let run = env.send("go").await["run_id"].as_str().unwrap().to_owned();
    // Kill the moment the second step's tool result is committed.
    let mut results = 0;
    sse.until(Duration::from_secs(20), |f| {
        if f.event == "tool_result" {
            results += 1;
        }
        results == 2
    })
    .await;
    env.herm.kill9().await;
    finish_after_restart(&mut env, &run).await;
    assert_eq!(env.model.completed_per_step(), vec![1, 1, 1, 1, 1]);
    assert_eq!(calls_per_n(&env), vec![1, 1, 1, 1]);
    let log = env.herm.thread_log(&env.thread).await;
    let seqs: Vec<i64> = log.iter().map(|e| e["sequence"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert_eq!(log.iter().filter(|e| e["type"] == "run_status" && e["status"] == "completed").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_safe_tool_in_flight_is_repeated() {
    // `lookup` is repeat-safe: a call in flight at the kill is simply made again.
    let script = vec![Reply::tool("peek", json!({"delay_ms": 3000})), Reply::text(&["ok"])];
    let peek = json!([{"name": "peek", "description": "Read-only and slow", "method": "GET", "repeat_safe": true,
        "url": "PLACEHOLDER", "input_schema": {"type": "object"}}]);
    let mut env = setup(script, Wire::OpenAi, json!({})).await;
    let mut tools = env.herm.get(&format!("/v1/deployments/{}", env.dep)).await.1["http_tools"].clone();
    let mut p = peek[0].clone();
    p["url"] = json!(env.connector.url("/peek?delay_ms={{input.delay_ms}}"));
    tools.as_array_mut().unwrap().push(p);
    env.herm.ok("PATCH", &format!("/v1/deployments/{}", env.dep), &json!({"http_tools": tools}), 200).await;
    let run = env.send("go").await["run_id"].as_str().unwrap().to_owned();
    let conn = env.connector.clone();
    wait_for("lookup in flight", || conn.calls() == 1).await;
    env.herm.kill9().await;
    env.herm.restart().await;
    // The repeated call is held as well; it returns after the delay.
    let r = env.herm.wait_run(&env.dep, &run, Duration::from_secs(90)).await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(env.connector.calls(), 2);
    let log = env.herm.thread_log(&env.thread).await;
    assert_eq!(log.iter().filter(|e| e["type"] == "tool_call").count(), 1, "the call is journaled once");
    assert_eq!(log.iter().filter(|e| e["type"] == "tool_result" && e["outcome"] == "ok").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_node_takes_over_after_the_lease_expires() {
    // Node `a` dies mid-run. Node `b` may not reclaim `a`'s lease at start (it is not its own):
    // it must wait for the lease to expire, then resume from the log.
    let cfg = CONFIG.replace("lease_ttl_secs = 10", "lease_ttl_secs = 2");
    let mut env = setup_with(five_steps(Some(1), None), Wire::OpenAi, json!({}), &cfg).await;
    env.herm.opts.env.push(("HERM_ENGINE__NODE_ID".into(), "a".into()));
    env.herm.restart().await;
    let run = env.send("go").await["run_id"].as_str().unwrap().to_owned();
    let model = env.model.clone();
    wait_for("the model stream of step 1", || model.attempts().iter().any(|a| a.step == 1)).await;
    env.herm.kill9().await;
    let killed = std::time::Instant::now();
    env.herm.opts.env.retain(|(k, _)| k != "HERM_ENGINE__NODE_ID");
    env.herm.opts.env.push(("HERM_ENGINE__NODE_ID".into(), "b".into()));
    env.herm.restart().await;
    let r = env.herm.wait_run(&env.dep, &run, Duration::from_secs(30)).await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(env.model.attempts().iter().filter(|a| a.step == 1).count(), 2, "step 1 was made again by node b");
    assert!(killed.elapsed() >= Duration::from_millis(1500), "node b waited for the lease to expire");
    assert_eq!(env.model.completed_per_step(), vec![1, 1, 1, 1, 1]);
    assert_eq!(calls_per_n(&env), vec![1, 1, 1, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_model_stream_times_out_and_is_retried() {
    let cfg = CONFIG.replace("model_idle_timeout_secs = 30", "model_idle_timeout_secs = 1");
    let script = vec![Reply::text(&["hello"]).stall_first()];
    let env = setup_with(script, Wire::Anthropic, json!({}), &cfg).await;
    let run = env.send("hi").await["run_id"].as_str().unwrap().to_owned();
    let r = env.herm.wait_run(&env.dep, &run, Duration::from_secs(20)).await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(env.model.request_count(), 2, "the stalled call was abandoned and made again");
    assert_eq!(env.model.completed_per_step(), vec![1]);
    let log = env.herm.thread_log(&env.thread).await;
    let msgs: Vec<&Value> = log.iter().filter(|e| e["type"] == "agent_message").collect();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["content"], "hello", "only the successful attempt's text is committed");
}
