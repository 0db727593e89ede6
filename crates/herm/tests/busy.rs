//! A message sent while a run is active follows the deployment's `busy_policy`, and the
//! response's `disposition` says which outcome happened; `user.steer` and `user.interrupt`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

/// Run 1: a slow `record` call, then an answer. Run 2 (if any): an answer.
fn script() -> Vec<Reply> {
    vec![Reply::tool("record", record(0, 1500)), Reply::text(&["one done"]), Reply::text(&["two done"])]
}

async fn busy_env(policy: &str) -> (Env, String) {
    let env = setup(script(), Wire::OpenAi, json!({"busy_policy": policy})).await;
    let run = env.send("first").await["run_id"].as_str().unwrap().to_owned();
    let conn = env.connector.clone();
    for _ in 0..200 {
        if conn.calls() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(conn.calls(), 1, "the slow tool call started");
    (env, run)
}

fn user_texts(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_runs_after_the_active_run() {
    let (env, run1) = busy_env("queue").await;
    let r = env.send("second").await;
    assert_eq!((r["disposition"].as_str(), r["status"].as_str()), (Some("queued"), Some("queued")));
    let run2 = r["run_id"].as_str().unwrap().to_owned();
    assert_ne!(run1, run2);
    assert_eq!(env.herm.wait_run(&env.dep, &run1, Duration::from_secs(10)).await["status"], "completed");
    assert_eq!(env.herm.wait_run(&env.dep, &run2, Duration::from_secs(10)).await["status"], "completed");
    // Run 1's model calls never saw the queued message; run 2's did, after run 1's answer.
    let a = env.model.attempts();
    assert_eq!(user_texts(&a[1].body), ["first"]);
    assert_eq!(user_texts(&a[2].body), ["first", "second"]);
    let log = env.herm.thread_log(&env.thread).await;
    let pos = |run: &str, status: &str| {
        log.iter().position(|e| e["run_id"] == run && e["type"] == "run_status" && e["status"] == status).unwrap()
    };
    assert!(pos(&run1, "completed") < pos(&run2, "running"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_answers_409_thread_busy() {
    let (env, run1) = busy_env("reject").await;
    let (s, v) = env.herm.post(&format!("/v1/deployments/{}/messages", env.dep), &json!({"content": "second"})).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("thread_busy")));
    assert_eq!(env.herm.wait_run(&env.dep, &run1, Duration::from_secs(10)).await["status"], "completed");
    // Once idle, the thread takes messages again.
    assert_eq!(env.send("later").await["disposition"], "started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steer_folds_the_message_into_the_next_model_call() {
    let (env, run1) = busy_env("steer").await;
    let r = env.send("make it shorter").await;
    assert_eq!((r["disposition"].as_str(), r["run_id"].as_str()), (Some("steered"), Some(run1.as_str())));
    let steer = env
        .herm
        .ok(
            "POST",
            &format!("/v1/threads/{}/events", env.thread),
            &json!({"events": [{"type": "user.steer", "message": "and friendlier"}]}),
            200,
        )
        .await;
    assert_eq!(steer["results"][0]["outcome"], "steered");
    assert_eq!(env.herm.wait_run(&env.dep, &run1, Duration::from_secs(10)).await["status"], "completed");
    let a = env.model.attempts();
    assert_eq!(a.len(), 2, "one run, two model calls");
    let texts = user_texts(&a[1].body);
    assert_eq!(texts[0], "first");
    assert!(texts.iter().any(|t| t == "make it shorter"), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("and friendlier")), "{texts:?}");
    // The steer follows the tool result, as providers require.
    let roles: Vec<&str> =
        a[1].body["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "user", "user"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_stops_the_active_run_and_starts_the_new_one() {
    let (env, run1) = busy_env("interrupt").await;
    let r = env.send("forget that, do this").await;
    assert_eq!(r["disposition"], "interrupted");
    let run2 = r["run_id"].as_str().unwrap().to_owned();
    assert_eq!(env.herm.wait_run(&env.dep, &run1, Duration::from_secs(10)).await["status"], "interrupted");
    assert_eq!(env.herm.wait_run(&env.dep, &run2, Duration::from_secs(10)).await["status"], "completed");
    // Run 2's conversation answers run 1's unfinished tool call as interrupted.
    let last = env.model.attempts().pop().unwrap();
    let tool = last.body["messages"].as_array().unwrap().iter().find(|m| m["role"] == "tool").unwrap().clone();
    assert!(tool["content"].as_str().unwrap().contains("outcome is unknown"), "{tool}");
    let log = env.herm.thread_log(&env.thread).await;
    assert!(log.iter().any(|e| e["type"] == "interrupt" && e["run_id"] == run1));
    // Nothing was written for run 1 after it was interrupted.
    let stop = log.iter().position(|e| e["run_id"] == run1 && e["status"] == "interrupted").unwrap();
    assert!(log[stop + 1..].iter().all(|e| e["run_id"] != run1), "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_interrupt_event_stops_the_run() {
    let (env, run1) = busy_env("steer").await;
    let r = env
        .herm
        .ok(
            "POST",
            &format!("/v1/sessions/{}/events", env.thread),
            &json!({"events": [{"type": "user.interrupt", "message": "stop"}]}),
            200,
        )
        .await;
    assert_eq!(
        (r["results"][0]["outcome"].as_str(), r["results"][0]["run_id"].as_str()),
        (Some("interrupted"), Some(run1.as_str()))
    );
    assert_eq!(env.herm.wait_run(&env.dep, &run1, Duration::from_secs(10)).await["status"], "interrupted");
    // An honest record: the call that was running has an unknown outcome.
    let log = env.herm.thread_log(&env.thread).await;
    let r = log.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert_eq!((r["tool"].as_str(), r["outcome"].as_str()), (Some("record"), Some("interrupted_unknown")));
    assert!(log.iter().any(|e| e["type"] == "interrupt" && e["message"] == "stop"));
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(env.model.request_count(), 1, "no model call after the interrupt");
    let (_, t) = env.herm.get(&format!("/v1/deployments/{}/threads/{}", env.dep, env.thread)).await;
    assert_eq!(t["status"], "idle");
}
