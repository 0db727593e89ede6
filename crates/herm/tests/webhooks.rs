//! Outbound webhooks: a receiver that fails three times before accepting gets exactly one
//! accepted delivery of each event (by id), across a `kill -9` of herm; signatures verify
//! with the documented recipe (`examples/verify_webhook.py`); payloads carry no secret; the
//! deliveries are listed with their status.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;
use common::*;
use std::io::Write;

const HOOK_SECRET: &str = "whsec-canary-5d1e9a7c3f";

/// The documented recipe, run on one received attempt.
fn verifies(r: &Received, secret: &str) -> bool {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/verify_webhook.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .env("WEBHOOK_SECRET", secret)
        .env("WEBHOOK_ID", &r.id)
        .env("WEBHOOK_TIMESTAMP", &r.timestamp)
        .env("WEBHOOK_SIGNATURE", &r.signature)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(r.body.as_bytes()).unwrap();
    child.wait().unwrap().success()
}

async fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_is_accepted_once_across_a_crash() {
    let config = format!("{CONFIG}\n[webhooks]\nretry_base_ms = 400\n");
    let script = vec![Reply::text(&["done"]), Reply::tool("record", json!({"n": 1, "delay_ms": 0}))];
    let mut env =
        setup_with(script, Wire::Anthropic, json!({"tool_policies": {"record": "always_ask"}}), &config).await;
    let receiver = Receiver::start(3).await;
    let sec = env.herm.ok("POST", "/v1/secrets", &json!({"name": "HOOK_SIGNING", "value": HOOK_SECRET}), 201).await;
    let body = json!({
        "url": receiver.url(), "events": ["run.completed", "run.waiting", "run.failed"],
        "secret": sec["secret_id"], "customer_id": "cust-1", "description": "pager"
    });
    let hook = env.herm.ok("POST", "/v1/webhooks", &body, 201).await;
    let hook_id = hook["id"].as_str().unwrap();

    let completed = run_to_end(&env, "hello").await;
    let r = env.send("record it").await;
    let waiting = r["run_id"].as_str().unwrap().to_owned();
    wait_status(&env, &waiting, "waiting_on_human").await;

    // Both events were tried and refused at least once; then herm dies.
    until("first attempts", Duration::from_secs(20), || receiver.tally().len() == 2).await;
    env.herm.kill9().await;
    env.herm.restart().await;
    until("accepted deliveries", Duration::from_secs(30), || {
        let t = receiver.tally();
        t.len() == 2 && t.values().all(|(_, ok)| *ok >= 1)
    })
    .await;
    // Time for a duplicate to show up, if one were coming.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let tally = receiver.tally();
    for (id, (attempts, accepted)) in &tally {
        assert_eq!(*accepted, 1, "{id} was accepted {accepted} times");
        assert!(*attempts >= 4, "{id}: three refusals, then the accepted attempt ({attempts})");
    }

    let received = receiver.received();
    let mut types = Vec::new();
    for r in received.iter().filter(|r| r.status < 300) {
        assert!(verifies(r, HOOK_SECRET), "the signature of {} verifies", r.id);
        assert!(!verifies(r, "another-secret"), "and only with the webhook's secret");
        let p: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(p["id"], r.id.as_str(), "the webhook-id header is the event id");
        assert_eq!(p["data"]["deployment_id"], env.dep.as_str());
        assert_eq!(p["data"]["customer_id"], "cust-1");
        let run = p["data"]["run_id"].as_str().unwrap();
        types.push((p["type"].as_str().unwrap().to_owned(), run == completed, run == waiting));
    }
    types.sort();
    assert_eq!(
        types,
        [("run.completed".to_owned(), true, false), ("run.waiting".to_owned(), false, true)],
        "{received:?}"
    );
    for r in &received {
        for canary in [HOOK_SECRET, TOKEN, PROVIDER_KEY] {
            assert!(!r.body.contains(canary) && !r.signature.contains(canary), "a secret in a delivery");
        }
    }
    assert!(!env.herm.log_text().contains(HOOK_SECRET), "the signing secret is never logged");

    // The deliveries, as the operator sees them.
    let list = env.herm.ok("GET", &format!("/v1/webhooks/{hook_id}/deliveries"), &Value::Null, 200).await;
    let rows = list["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    for d in rows {
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["last_status"], 204, "{d}");
        // An attempt is recorded after its request: one the kill cut off between the two was
        // made but not counted (and is why the event was sent again).
        let (made, _) = tally[d["event_id"].as_str().unwrap()];
        let counted = d["attempts"].as_u64().unwrap() as usize;
        assert!(counted <= made && counted + 1 >= made && counted >= 3, "{made} made: {d}");
        assert!(d["delivered_at"].is_string(), "{d}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_is_given_up_after_its_attempts() {
    let config = format!("{CONFIG}\n[webhooks]\nretry_base_ms = 50\nmax_attempts = 3\n");
    let env = setup_with(vec![Reply::text(&["done"])], Wire::OpenAi, json!({}), &config).await;
    let receiver = Receiver::start(100).await;
    let sec = env.herm.ok("POST", "/v1/secrets", &json!({"name": "HOOK_SIGNING", "value": HOOK_SECRET}), 201).await;
    let body = json!({"url": receiver.url(), "events": ["run.completed"], "secret": sec["secret_id"], "deployment_id": env.dep});
    let hook = env.herm.ok("POST", "/v1/webhooks", &body, 201).await;
    run_to_end(&env, "hello").await;
    let path = format!("/v1/webhooks/{}/deliveries", hook["id"].as_str().unwrap());
    let mut last = Value::Null;
    for _ in 0..200 {
        last = env.herm.ok("GET", &path, &Value::Null, 200).await;
        if last["data"][0]["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let d = &last["data"][0];
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_u64(), d["last_status"].as_u64()),
        (Some("failed"), Some(3), Some(500)),
        "{last}"
    );
    assert!(d["next_attempt_at"].is_null(), "{d}");
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_checked_and_admin_only() {
    let (h, _dir) = start_herm().await;
    let sec = h.ok("POST", "/v1/secrets", &json!({"name": "HOOK_SIGNING", "value": HOOK_SECRET}), 201).await;
    let ok = json!({"url": "http://127.0.0.1:9/hook", "events": ["run.failed"], "secret": sec["secret_id"]});
    for (bad, status) in [
        (json!({"url": "ftp://x", "events": ["run.failed"], "secret": sec["secret_id"]}), 400),
        (json!({"url": "http://x/hook", "events": [], "secret": sec["secret_id"]}), 400),
        (json!({"url": "http://x/hook", "events": ["run.exploded"], "secret": sec["secret_id"]}), 400),
        (json!({"url": "http://x/hook", "events": ["run.failed"], "secret": "sec_0123456789abcdefghijkl"}), 422),
        (json!({"url": "http://x/hook", "events": ["run.failed"], "secret": sec["secret_id"], "verbose": true}), 400),
    ] {
        let (s, v) = h.post("/v1/webhooks", &bad).await;
        assert_eq!(s, status, "{bad}: {v}");
    }
    let ro = h.ok("POST", "/v1/api-keys", &json!({"name": "viewer", "scopes": ["deployments:read"]}), 201).await;
    let (s, _) = h.request("POST", "/v1/webhooks", Some(ro["key"].as_str().unwrap()), Some(&ok)).await;
    assert_eq!(s, 403);
    let hook = h.ok("POST", "/v1/webhooks", &ok, 201).await;
    let id = hook["id"].as_str().unwrap();
    assert!(!hook.to_string().contains(HOOK_SECRET), "the webhook shows its secret's reference only");
    let list = h.ok("GET", "/v1/webhooks", &Value::Null, 200).await;
    assert_eq!(list["data"][0]["id"], id);
    h.ok("DELETE", &format!("/v1/webhooks/{id}"), &Value::Null, 204).await;
    let (s, v) = h.get(&format!("/v1/webhooks/{id}/deliveries")).await;
    assert_eq!((s, v["code"].as_str()), (404, Some("not_found")), "{v}");
}
