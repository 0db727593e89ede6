//! Bad input gets a 4xx `application/problem+json` with the right `code`, never a 500 or a
//! panic: malformed JSON, wrong types, unknown fields, 10 MB bodies, unknown ids, wrong
//! scopes, revoked keys, bad secret references, bad cursors and limits, idempotency misuse.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

async fn raw(h: &Herm, method: &str, path: &str, key: Option<&str>, body: Option<Vec<u8>>) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb =
        reqwest::Client::new().request(m, format!("{}{path}", h.url)).header("content-type", "application/json");
    if let Some(k) = key {
        rb = rb.bearer_auth(k);
    }
    if let Some(b) = body {
        rb = rb.body(b);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if status >= 400 {
        assert_eq!(ct, "application/problem+json", "{method} {path}");
        assert_eq!(v["status"], status, "{v}");
        assert!(v["detail"].is_string() && v["title"].is_string(), "{v}");
    }
    (status, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_4xx() {
    let env = setup(vec![Reply::text(&["x"])], Wire::OpenAi, json!({})).await;
    let h = &env.herm;
    let admin = h.admin_key.clone();
    let k = Some(admin.as_str());
    let dep = env.dep.clone();
    let valid = json!({"customer_id": "c", "name": "n", "system_prompt": "s"});

    let read_key = h.ok("POST", "/v1/api-keys", &json!({"name": "reader", "scopes": ["deployments:read"]}), 201).await;
    let read = read_key["key"].as_str().unwrap().to_owned();
    let revoked = h.ok("POST", "/v1/api-keys", &json!({"name": "gone", "scopes": ["admin"]}), 201).await;
    let (s, _) = h.request("DELETE", &format!("/v1/api-keys/{}", revoked["key_id"].as_str().unwrap()), k, None).await;
    assert_eq!(s, 204);
    let revoked = revoked["key"].as_str().unwrap().to_owned();

    let big = {
        let mut v = valid.clone();
        v["system_prompt"] = json!("x".repeat(10 * 1024 * 1024));
        serde_json::to_vec(&v).unwrap()
    };
    let j = |v: Value| Some(serde_json::to_vec(&v).unwrap());
    // (method, path, key, body, status, code)
    type Case<'a> = (&'a str, String, Option<&'a str>, Option<Vec<u8>>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("POST", "/v1/deployments".into(), k, Some(b"{not json".to_vec()), 400, "validation_error"),
        ("POST", "/v1/deployments".into(), k, Some(Vec::new()), 400, "validation_error"),
        (
            "POST",
            "/v1/deployments".into(),
            k,
            j(json!({"customer_id": 5, "name": "n", "system_prompt": "s"})),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/v1/deployments".into(),
            k,
            j(json!({"customer_id": "c", "name": "n", "system_prompt": "s", "surprise": 1})),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/v1/deployments".into(),
            k,
            j(json!({"customer_id": "c", "name": "", "system_prompt": "s"})),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/v1/deployments".into(),
            k,
            j(json!({"customer_id": "c", "name": "n", "system_prompt": "s", "model": "nope/m"})),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/v1/deployments".into(),
            k,
            j(json!({"customer_id": "c", "name": "n", "system_prompt": "s", "sandbox": {"network": "maybe"}})),
            400,
            "validation_error",
        ),
        ("POST", "/v1/deployments".into(), k, Some(big), 413, "payload_too_large"),
        (
            "POST",
            "/v1/deployments".into(),
            k,
            j(
                json!({"customer_id": "c", "name": "n", "system_prompt": "s", "secrets": {"X": "sec_0000000000000000000000"}}),
            ),
            422,
            "invalid_secret_ref",
        ),
        (
            "POST",
            "/v1/deployments".into(),
            k,
            j(json!({"customer_id": "c", "name": "n", "system_prompt": "s", "secrets": {"X": "not-a-ref"}})),
            422,
            "invalid_secret_ref",
        ),
        (
            "POST",
            "/v1/deployments".into(),
            k,
            j(json!({"customer_id": "c", "name": "n", "system_prompt": "s", "http_tools": [
            {"name": "t", "description": "d", "method": "GET", "url": "http://127.0.0.1:1/x", "headers": {"A": "{{secrets.MISSING}}"}, "input_schema": {"type": "object"}}]})),
            422,
            "invalid_secret_ref",
        ),
        (
            "PATCH",
            format!("/v1/deployments/{dep}"),
            k,
            j(json!({"secrets": {"API_TOKEN": "sec_0000000000000000000000"}})),
            422,
            "invalid_secret_ref",
        ),
        ("PATCH", format!("/v1/deployments/{dep}"), k, j(json!({"customer_id": "other"})), 400, "validation_error"),
        ("POST", "/v1/deployments".into(), None, j(valid.clone()), 401, "unauthorized"),
        ("POST", "/v1/deployments".into(), Some("herm_wrong"), j(valid.clone()), 401, "unauthorized"),
        ("POST", "/v1/deployments".into(), Some(revoked.as_str()), j(valid.clone()), 401, "unauthorized"),
        ("POST", "/v1/deployments".into(), Some(read.as_str()), j(valid.clone()), 403, "forbidden"),
        ("POST", "/v1/secrets".into(), Some(read.as_str()), j(json!({"name": "A", "value": "v"})), 403, "forbidden"),
        ("GET", "/v1/api-keys".into(), Some(read.as_str()), None, 403, "forbidden"),
        ("GET", "/v1/deployments/dep_0000000000000000000000".into(), k, None, 404, "not_found"),
        ("GET", "/v1/deployments/garbage".into(), k, None, 404, "not_found"),
        ("GET", format!("/v1/deployments/{dep}/runs/run_0000000000000000000000"), k, None, 404, "not_found"),
        ("GET", format!("/v1/deployments/{dep}/threads/thr_0000000000000000000000"), k, None, 404, "not_found"),
        ("GET", "/v1/threads/thr_0000000000000000000000/events".into(), k, None, 404, "not_found"),
        ("GET", "/v1/nothing-here".into(), k, None, 404, "not_found"),
        ("PUT", "/v1/deployments".into(), k, None, 405, "method_not_allowed"),
        ("GET", "/v1/deployments?limit=1000".into(), k, None, 400, "validation_error"),
        ("GET", "/v1/deployments?limit=abc".into(), k, None, 400, "validation_error"),
        ("GET", "/v1/deployments?bogus=1".into(), k, None, 400, "validation_error"),
        ("POST", format!("/v1/deployments/{dep}/messages"), k, j(json!({"content": ""})), 400, "validation_error"),
        (
            "POST",
            format!("/v1/deployments/{dep}/messages"),
            k,
            j(json!({"content": "x", "thread_id": "thr_0000000000000000000000"})),
            404,
            "not_found",
        ),
        (
            "POST",
            format!("/v1/deployments/{dep}/messages"),
            k,
            j(json!({"content": "x", "attachments": [{"type": "pdf", "url": "http://x"}]})),
            400,
            "validation_error",
        ),
        ("POST", format!("/v1/threads/{}/events", env.thread), k, j(json!({"events": []})), 400, "validation_error"),
        (
            "POST",
            format!("/v1/threads/{}/events", env.thread),
            k,
            j(json!({"events": [{"type": "user.message", "content": "a"}, {"type": "user.message", "content": "b"}]})),
            400,
            "validation_error",
        ),
        (
            "POST",
            format!("/v1/threads/{}/events", env.thread),
            k,
            j(json!({"events": [{"type": "user.dance"}]})),
            400,
            "validation_error",
        ),
        (
            "POST",
            format!("/v1/threads/{}/events", env.thread),
            k,
            j(json!({"events": [{"type": "user.steer", "message": "x"}]})),
            409,
            "conflict",
        ),
        (
            "POST",
            format!("/v1/threads/{}/events", env.thread),
            k,
            j(
                json!({"events": [{"type": "user.tool_confirmation", "request_id": "req_0000000000000000000000", "result": "allow"}]}),
            ),
            409,
            "conflict",
        ),
        ("POST", "/v1/secrets".into(), k, j(json!({"name": "1BAD", "value": "v"})), 400, "validation_error"),
        ("POST", "/v1/secrets".into(), k, j(json!({"name": "OK", "value": ""})), 400, "validation_error"),
        ("POST", "/v1/api-keys".into(), k, j(json!({"name": "x", "scopes": ["root"]})), 400, "validation_error"),
        ("PUT", "/v1/providers/p".into(), k, j(json!({"kind": "mystery"})), 400, "validation_error"),
        (
            "PUT",
            "/v1/providers/p".into(),
            k,
            j(json!({"kind": "anthropic", "api_key_secret": "sec_0000000000000000000000"})),
            422,
            "invalid_secret_ref",
        ),
        ("DELETE", "/v1/secrets/sec_0000000000000000000000".into(), k, None, 404, "not_found"),
    ];
    for (method, path, key, body, want, code) in cases {
        let (s, v) = raw(h, method, &path, key, body).await;
        assert_eq!((s, v["code"].as_str().unwrap_or("")), (want, code), "{method} {path}: {v}");
    }
    // Field errors say where.
    let (_, v) = raw(h, "POST", "/v1/deployments", k, j(json!({"customer_id": "c", "name": "n", "system_prompt": "s", "secrets": {"META": "sec_0000000000000000000000"}}))).await;
    assert_eq!(v["errors"][0]["path"], "secrets.META");
    // A read-only key can read.
    let (s, _) = raw(h, "GET", &format!("/v1/deployments/{dep}"), Some(read.as_str()), None).await;
    assert_eq!(s, 200);
    // The server is healthy and never panicked.
    let (s, _) = raw(h, "GET", "/healthz", None, None).await;
    assert_eq!(s, 200);
    assert!(!h.log_text().contains("panicked"), "{}", h.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_replays_or_conflicts() {
    let (h, _dir) = start_herm().await;
    let post = |body: Value, key: &'static str| {
        let h = &h;
        async move {
            let r = reqwest::Client::new()
                .post(format!("{}/v1/deployments", h.url))
                .bearer_auth(&h.admin_key)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let body = json!({"customer_id": "c", "name": "n", "system_prompt": "s"});
    let (s1, a) = post(body.clone(), "k1").await;
    let (s2, b) = post(body.clone(), "k1").await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(a["deployment_id"], b["deployment_id"], "a repeat returns the first response");
    let (s3, c) = post(json!({"customer_id": "c", "name": "other", "system_prompt": "s"}), "k1").await;
    assert_eq!((s3, c["code"].as_str()), (409, Some("conflict")));
    let (_, list) = h.get("/v1/deployments").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "only one deployment was created");
    // A failed request does not burn the key.
    let (s4, _) = post(json!({"customer_id": "c", "name": "", "system_prompt": "s"}), "k2").await;
    let (s5, _) = post(json!({"customer_id": "c", "name": "n2", "system_prompt": "s"}), "k2").await;
    assert_eq!((s4, s5), (400, 201));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_lifecycle_and_patch_merge() {
    let env = setup(vec![Reply::text(&["x"])], Wire::OpenAi, json!({})).await;
    let h = &env.herm;
    let s2 = h.ok("POST", "/v1/secrets", &json!({"name": "OTHER", "value": "other-value-123"}), 201).await;
    let p = h
        .ok(
            "PATCH",
            &format!("/v1/deployments/{}", env.dep),
            &json!({"secrets": {"NEW": s2["secret_id"]}, "name": "renamed"}),
            200,
        )
        .await;
    assert_eq!(p["name"], "renamed");
    assert_eq!(p["secrets"].as_object().unwrap().len(), 2, "merged per key: {}", p["secrets"]);
    // Removing a secret that a tool template uses is refused; removing with the tools is fine.
    let (s, v) = h.patch(&format!("/v1/deployments/{}", env.dep), &json!({"secrets": {"API_TOKEN": null}})).await;
    assert_eq!((s, v["code"].as_str()), (422, Some("invalid_secret_ref")));
    let p = h
        .ok(
            "PATCH",
            &format!("/v1/deployments/{}", env.dep),
            &json!({"secrets": {"API_TOKEN": null}, "http_tools": []}),
            200,
        )
        .await;
    assert_eq!(p["secrets"].as_object().unwrap().len(), 1);
    // Lists filter by customer and page with a cursor.
    for i in 0..3 {
        h.deploy(&json!({"customer_id": "pager", "name": format!("d{i}"), "system_prompt": "s"})).await;
    }
    let (_, page) = h.get("/v1/deployments?customer_id=pager&limit=2").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page2) = h.get(&format!("/v1/deployments?customer_id=pager&limit=2&cursor={cursor}")).await;
    assert_eq!(page2["data"].as_array().unwrap().len(), 1);
    // Delete, then it is gone.
    let (s, v) = h.request("DELETE", &format!("/v1/deployments/{}", env.dep), Some(&h.admin_key.clone()), None).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("deleted")));
    let (s, _) = h.get(&format!("/v1/deployments/{}", env.dep)).await;
    assert_eq!(s, 404);
}
