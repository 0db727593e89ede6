//! A full run over both provider wire formats, checked event by event over SSE: streamed
//! tokens, an `http_tools` call with a secret injected host-side, and a final answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

async fn full_run(wire: Wire) {
    let script = vec![
        Reply::tool("lookup", json!({"q": "weather in Paris"})).with_text(&["Let me ", "check."]),
        Reply::text(&["It is ", "sunny ", "in Paris."]),
    ];
    let env = setup(script, wire, json!({})).await;
    let mut sse = env.thread_stream(None).await;
    let sent = env.send("What's the weather in Paris?").await;
    assert_eq!(sent["disposition"], "started");
    let run = sent["run_id"].as_str().unwrap().to_owned();

    let frames = sse
        .until(Duration::from_secs(20), |f| {
            f.event == "run_status" && matches!(f.data["status"].as_str(), Some("completed" | "error"))
        })
        .await;
    let committed: Vec<&Frame> = frames.iter().filter(|f| f.is_committed()).collect();
    let types: Vec<&str> = committed.iter().map(|f| f.event.as_str()).collect();
    assert_eq!(
        types,
        [
            "message",
            "run_status",
            "agent_message",
            "model_call",
            "tool_call",
            "tool_result",
            "agent_message",
            "model_call",
            "run_status"
        ],
        "{frames:#?}"
    );
    // Ids are the thread sequence, contiguous from 1; every frame names the run.
    for (i, f) in committed.iter().enumerate() {
        assert_eq!(f.id.as_deref(), Some((i + 1).to_string().as_str()));
        assert_eq!(f.data["sequence"], json!(i + 1));
        assert_eq!(f.data["run_id"], json!(run));
        assert_eq!(f.data["type"], json!(f.event));
    }
    let d = |i: usize| &committed[i].data;
    assert_eq!(d(0)["content"], "What's the weather in Paris?");
    assert_eq!(d(1)["status"], "running");
    assert_eq!(d(2)["content"], "Let me check.");
    assert_eq!(d(3)["model"], "fake/m1");
    assert_eq!(d(3)["input_tokens"], 30);
    assert_eq!(d(4)["tool"], "lookup");
    assert_eq!(d(4)["origin"], "http");
    assert_eq!(d(4)["arguments"], json!({"q": "weather in Paris"}));
    assert_eq!(d(5)["outcome"], "ok");
    assert_eq!(d(5)["is_error"], false);
    assert_eq!(d(5)["tool_use_id"], d(4)["tool_use_id"]);
    let result = d(5)["result"].as_str().unwrap();
    assert!(result.starts_with("HTTP 200"), "{result}");
    assert!(result.contains("weather%20in%20Paris"), "input templated and URL-encoded: {result}");
    // The connector echoed the Authorization header back: the secret must be redacted.
    assert!(!result.contains(TOKEN), "secret leaked into the tool result: {result}");
    assert!(result.contains("[REDACTED:API_TOKEN]"), "{result}");
    assert_eq!(d(6)["content"], "It is sunny in Paris.");
    assert_eq!(d(8)["status"], "completed");
    assert_eq!(d(8)["usage"]["input_tokens"], 50);
    assert_eq!(d(8)["usage"]["output_tokens"], 25);

    // Tokens streamed live, in order, without ids.
    let tokens: String =
        frames.iter().filter(|f| f.event == "token").map(|f| f.data["delta"].as_str().unwrap()).collect();
    assert_eq!(tokens, "Let me check.It is sunny in Paris.");
    assert!(frames.iter().filter(|f| f.event == "token").all(|f| f.id.is_none()));

    // The connector got the real secret host-side, once.
    let calls = env.connector.recorded();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].headers.iter().any(|(k, v)| k == "authorization" && v == &format!("Bearer {TOKEN}")));
    // The provider key from the vault reached the model server in the provider's header.
    let a = env.model.attempts();
    let want = match wire {
        Wire::Anthropic => ("x-api-key", PROVIDER_KEY.to_owned()),
        Wire::OpenAi => ("authorization", format!("Bearer {PROVIDER_KEY}")),
    };
    assert!(a[0].headers.iter().any(|(k, v)| k == want.0 && v == &want.1), "{:?}", a[0].headers);
    // Each step was requested exactly once; the second request carried the tool result.
    assert_eq!(env.model.completed_per_step(), vec![1, 1]);
    assert_eq!(env.model.request_count(), 2);
    let second = a[1].body.to_string();
    assert!(second.contains("HTTP 200") && !second.contains(TOKEN));

    // The run resource and the thread agree with the stream.
    let r = env.herm.wait_run(&env.dep, &run, Duration::from_secs(5)).await;
    assert_eq!(r["status"], "completed");
    assert_eq!(r["steps"], 2);
    let cost = r["usage"]["cost_usd"].as_f64().unwrap();
    assert!((cost - (50.0 * 3.0 + 25.0 * 15.0) / 1e6).abs() < 1e-12, "{cost}");
    let (_, t) = env.herm.get(&format!("/v1/deployments/{}/threads/{}", env.dep, env.thread)).await;
    let roles: Vec<&str> = t["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "agent", "agent"]);
    assert_eq!(t["status"], "idle");
    assert_eq!(t["message_count"], 3);
    // The audit list is the same log.
    let log = env.herm.thread_log(&env.thread).await;
    assert_eq!(log.len(), committed.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_run_anthropic() {
    full_run(Wire::Anthropic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_run_openai() {
    full_run(Wire::OpenAi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_retry_then_surface_as_run_error() {
    // Two 503s are retried; the step then succeeds. A 400 is not retried: the run errors.
    let script = vec![Reply::text(&["fine"]).fail_first(503, 2)];
    let env = setup(script, Wire::OpenAi, json!({})).await;
    let run = env.send("hi").await["run_id"].as_str().unwrap().to_owned();
    let r = env.herm.wait_run(&env.dep, &run, Duration::from_secs(10)).await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(env.model.request_count(), 3);

    let env = setup(vec![Reply::text(&["x"]).fail_first(400, 5)], Wire::Anthropic, json!({})).await;
    let run = env.send("hi").await["run_id"].as_str().unwrap().to_owned();
    let r = env.herm.wait_run(&env.dep, &run, Duration::from_secs(10)).await;
    assert_eq!(r["status"], "error");
    assert_eq!(r["error"]["code"], "model_request_rejected");
    assert_eq!(env.model.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_run_steps_is_enforced() {
    let script = (0..5).map(|i| Reply::tool("lookup", json!({"q": format!("q{i}")}))).collect();
    let env = setup(script, Wire::OpenAi, json!({"limits": {"max_run_steps": 2}})).await;
    let run = env.send("loop").await["run_id"].as_str().unwrap().to_owned();
    let r = env.herm.wait_run(&env.dep, &run, Duration::from_secs(10)).await;
    assert_eq!(r["status"], "error");
    assert_eq!(r["error"]["code"], "max_steps_exceeded");
    assert_eq!(r["steps"], 2);
    assert_eq!(env.model.request_count(), 2);
}

/// A call the runtime answers without running anything (here: no such tool) has nothing to
/// write ahead of: its call and result commit with the model's record, in one commit with the
/// next call's write-ahead record; that next call (an `http_tools` connector) has an effect,
/// so its result commits after it was made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_answered_inline_commits_with_the_model_call() {
    let calls = vec![("nope".to_owned(), json!({})), ("lookup".to_owned(), json!({"q": "rain"}))];
    let script = vec![Reply { tool_calls: calls, ..Reply::tool("", json!({})) }, Reply::text(&["done"])];
    let env = setup(script, Wire::OpenAi, json!({})).await;
    let run = env.send("two calls").await["run_id"].as_str().unwrap().to_owned();
    let r = env.herm.wait_run(&env.dep, &run, Duration::from_secs(10)).await;
    assert_eq!(r["status"], "completed", "{r}");

    let log = env.herm.thread_log(&env.thread).await;
    let types: Vec<&str> = log.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "message",
            "run_status",
            "model_call",
            "tool_call",
            "tool_result",
            "tool_call",
            "tool_result",
            "agent_message",
            "model_call",
            "run_status"
        ]
    );
    let (model, nope_call, nope_result, lookup_call, lookup_result) = (&log[2], &log[3], &log[4], &log[5], &log[6]);
    assert_eq!((nope_call["tool"].as_str(), nope_call["origin"].as_str()), (Some("nope"), Some("unknown")));
    assert_eq!(nope_result["is_error"], true);
    assert!(nope_result["result"].as_str().unwrap().contains("there is no tool named `nope`"), "{nope_result}");
    assert_eq!((lookup_call["tool"].as_str(), lookup_call["origin"].as_str()), (Some("lookup"), Some("http")));
    assert_eq!(lookup_result["outcome"], "ok");
    // One commit: the events of an append share its time (to the microsecond).
    let at = |e: &Value| e["created_at"].as_str().unwrap().to_owned();
    for e in [nope_call, nope_result, lookup_call] {
        assert_eq!(at(e), at(model), "{e}");
    }
    assert_ne!(at(lookup_result), at(model), "the connector's result commits after its call was made");
    assert_eq!(env.connector.recorded().len(), 1);
    assert_eq!(env.model.completed_per_step(), vec![1, 1]);
}
