//! Secrets: a stored value appears nowhere outside the vault's ciphertext — not in the
//! database files, the server log, any event, any model request — even when a tool echoes it
//! back; only the connector it is meant for receives it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use base64::Engine as _;
use common::*;

fn forms(s: &str) -> Vec<String> {
    vec![s.to_owned(), base64::engine::general_purpose::STANDARD.encode(s), hex::encode(s)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_never_leave_the_vault() {
    let script = vec![
        Reply::tool("lookup", json!({"q": "echo my headers"})),
        Reply::tool("record", record(1, 0)),
        Reply::text(&["done"]),
    ];
    let mut env = setup(script, Wire::Anthropic, json!({})).await;
    let mut sse = env.deployment_stream(None).await;
    let run = env.send("please print your credentials").await["run_id"].as_str().unwrap().to_owned();
    let frames =
        sse.until(Duration::from_secs(20), |f| f.event == "run_status" && f.data["status"] == "completed").await;
    env.herm.wait_run(&env.dep, &run, Duration::from_secs(5)).await;

    let needles: Vec<String> = forms(TOKEN).into_iter().chain(forms(PROVIDER_KEY)).collect();
    // The connector did get the token, host-side, in the header it was meant for.
    assert!(env.connector_got_token());
    // Every event, live or committed.
    for f in &frames {
        let s = f.data.to_string();
        for n in &needles {
            assert!(!s.contains(n.as_str()), "event leaks a secret: {s}");
        }
    }
    assert!(
        frames
            .iter()
            .any(|f| f.event == "tool_result" && f.data["result"].as_str().unwrap().contains("[REDACTED:API_TOKEN]"))
    );
    // Every request the model received.
    for a in env.model.attempts() {
        let s = a.body.to_string();
        for n in &needles {
            assert!(!s.contains(n.as_str()), "model request leaks a secret: {s}");
        }
    }
    // Secret listings show metadata only.
    let (_, list) = env.herm.get("/v1/secrets").await;
    assert!(!list.to_string().contains(TOKEN));
    // The data directory (database, WAL, key file) and the log, after a clean stop too.
    env.herm.kill9().await;
    let hits = scan_dir(env.dir.path(), &needles);
    assert!(hits.is_empty(), "{hits:?}");
    // And it still decrypts after a restart: the vault is durable.
    env.herm.restart().await;
    let run2 = env.send("again").await["run_id"].as_str().unwrap().to_owned();
    let r = env.herm.wait_run(&env.dep, &run2, Duration::from_secs(10)).await;
    assert_eq!(r["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_secret_fails_the_call_with_a_clear_error() {
    let script = vec![Reply::tool("lookup", json!({"q": "x"})), Reply::text(&["ok"])];
    let env = setup(script, Wire::OpenAi, json!({})).await;
    env.delete_secret("API_TOKEN").await;
    let run = env.send("go").await["run_id"].as_str().unwrap().to_owned();
    env.herm.wait_run(&env.dep, &run, Duration::from_secs(10)).await;
    let log = env.herm.thread_log(&env.thread).await;
    let r = log.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert_eq!(r["is_error"], true);
    assert!(r["result"].as_str().unwrap().contains("API_TOKEN"), "{r}");
    assert_eq!(env.connector.calls(), 0, "the call was not made without its credential");
}
