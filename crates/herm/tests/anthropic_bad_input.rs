//! Bad input on the Claude Managed Agents facade: every route, with real and made-up ids, gets
//! malformed bodies, wrong types in each field of a valid body, oversized and deeply nested
//! values, and bad query strings. Each answer is a 4xx in CMA's error shape (never a 5xx), and
//! herm keeps serving. The facade is outside herm's OpenAPI document, so the contract fuzzer
//! does not reach it: this sweep is its fuzzer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

const MODEL: &str = "claude-sonnet-4-5";

struct Facade<'a> {
    herm: &'a Herm,
    client: reqwest::Client,
}

impl Facade<'_> {
    /// Sends raw bytes; the status and the JSON body. A 5xx, or an error not in CMA's shape,
    /// fails the test on the spot.
    async fn send(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self
            .client
            .request(m, format!("{}/anthropic{path}", self.herm.url))
            .header("x-api-key", &self.herm.admin_key)
            .header("anthropic-beta", "managed-agents-2026-04-01")
            .header("content-type", "application/json");
        let sent = body.as_deref().map(|b| String::from_utf8_lossy(&b[..b.len().min(60)]).into_owned());
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let resp = rb.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(status < 500, "{method} {path} answered {status}: {text} (sent {sent:?})");
        if status >= 400 {
            assert_eq!(v["type"], "error", "{method} {path} {status}: {text} (sent {sent:?})");
            assert!(v["error"]["type"].is_string() && v["error"]["message"].is_string(), "{text}");
            assert!(v["request_id"].is_string(), "{text}");
        }
        (status, v)
    }

    async fn json(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        self.send(method, path, Some(serde_json::to_vec(&body).unwrap())).await
    }

    /// Creates something the sweep needs; its id.
    async fn make(&self, path: &str, body: Value) -> String {
        let (s, v) = self.json("POST", path, body).await;
        assert_eq!(s, 200, "{path}: {v}");
        v["id"].as_str().unwrap().to_owned()
    }
}

/// Values of every JSON type, and the awkward ones.
fn wrong_values() -> Vec<Value> {
    let deep = (0..200).fold(json!(1), |v, _| json!([v]));
    vec![
        Value::Null,
        json!(0),
        json!(-1),
        json!(1e300),
        json!(true),
        json!(""),
        json!("x".repeat(300_000)),
        json!("\u{0000}\u{202e}é"),
        json!([]),
        json!({}),
        json!({"type": "nonsense"}),
        json!([{"type": "nonsense"}]),
        deep,
    ]
}

/// Bodies that are not a JSON object at all.
fn malformed() -> Vec<Vec<u8>> {
    vec![
        b"{not json".to_vec(),
        Vec::new(),
        b"[]".to_vec(),
        b"\"text\"".to_vec(),
        b"null".to_vec(),
        b"42".to_vec(),
        vec![0xff, 0xfe, 0x00],
        format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        serde_json::to_vec(&json!({"name": "x".repeat(11 * 1024 * 1024)})).unwrap(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_facade_route_refuses_bad_input_with_a_4xx_in_cma_shape() {
    let model = FakeModel::start(vec![Reply::text(&["fine"]); 200]).await;
    let (herm, _dir) = start_herm_with(CONFIG).await;
    let pk = herm.ok("POST", "/v1/secrets", &json!({"name": "PROVIDER_KEY", "value": PROVIDER_KEY}), 201).await;
    let provider = json!({
        "kind": "anthropic", "base_url": model.anthropic_url(), "api_key_secret": pk["secret_id"],
        "models": {MODEL: {"input_per_mtok": 3.0, "output_per_mtok": 15.0}},
    });
    herm.ok("PUT", "/v1/providers/anthropic", &provider, 200).await;
    let f = Facade { herm: &herm, client: reqwest::Client::new() };

    // Real objects, so the sweep reaches past the id lookups.
    let agent = f.make("/v1/agents", json!({"name": "a", "model": MODEL})).await;
    let env = f.make("/v1/environments", json!({"name": "e"})).await;
    let vault = f.make("/v1/vaults", json!({"display_name": "v"})).await;
    let bearer = json!({"type": "static_bearer", "mcp_server_url": "https://mcp.example/mcp", "token": "t0k"});
    let cred = f.make(&format!("/v1/vaults/{vault}/credentials"), json!({"auth": bearer})).await;
    let store = f.make("/v1/memory_stores", json!({"name": "notes"})).await;
    let (s, memory) =
        f.json("POST", &format!("/v1/memory_stores/{store}/memories"), json!({"path": "/a.md", "content": "x"})).await;
    assert_eq!(s, 200, "{memory}");
    let (mem, mver) = (memory["id"].as_str().unwrap().to_owned(), memory["memory_version_id"].as_str().unwrap());
    let message = json!({"type": "user.message", "content": [{"type": "text", "text": "hi"}]});
    let session = f.make("/v1/sessions", json!({"agent": agent, "environment_id": env})).await;
    let deployment = f
        .make(
            "/v1/deployments",
            json!({"name": "d", "agent": agent, "environment_id": env, "initial_events": [message]}),
        )
        .await;
    let dream_inputs = json!([
        {"type": "memory_store", "memory_store_id": store},
        {"type": "sessions", "session_ids": [session]},
    ]);

    // (path, a valid body): each field of the body is then replaced by each wrong value.
    let writes: Vec<(String, Value)> = vec![
        ("/v1/agents".into(), json!({"name": "a2", "model": MODEL, "system": "s", "metadata": {"k": "v"}})),
        (format!("/v1/agents/{agent}"), json!({"name": "b", "description": "d", "metadata": {"k": "v"}})),
        ("/v1/environments".into(), json!({"name": "e2", "config": {"type": "cloud"}, "metadata": {}})),
        (format!("/v1/environments/{env}"), json!({"name": "e3", "description": "d"})),
        ("/v1/vaults".into(), json!({"display_name": "v2", "metadata": {}})),
        (format!("/v1/vaults/{vault}"), json!({"display_name": "v3"})),
        (format!("/v1/vaults/{vault}/credentials"), json!({"auth": bearer, "display_name": "c"})),
        (format!("/v1/vaults/{vault}/credentials/{cred}"), json!({"display_name": "c2", "metadata": {}})),
        ("/v1/sessions".into(), json!({"agent": agent, "environment_id": env, "title": "t", "metadata": {}})),
        (format!("/v1/sessions/{session}"), json!({"title": "t2", "metadata": {"k": "v"}})),
        (format!("/v1/sessions/{session}/events"), json!({"events": [message]})),
        (format!("/v1/sessions/{session}/resources"), json!({"type": "file", "file_id": "file_nope"})),
        ("/v1/memory_stores".into(), json!({"name": "n2", "description": "d", "metadata": {}})),
        (format!("/v1/memory_stores/{store}"), json!({"name": "n3"})),
        (format!("/v1/memory_stores/{store}/memories"), json!({"path": "/b.md", "content": "y"})),
        (format!("/v1/memory_stores/{store}/memories/{mem}"), json!({"content": "z", "path": "/c.md"})),
        (
            "/v1/deployments".into(),
            json!({"name": "d2", "agent": agent, "environment_id": env, "initial_events": [message]}),
        ),
        (format!("/v1/deployments/{deployment}"), json!({"name": "d3", "description": "d"})),
        ("/v1/dreams".into(), json!({"inputs": dream_inputs, "model": MODEL, "instructions": "tidy"})),
    ];
    for (path, valid) in &writes {
        for body in malformed() {
            let (s, v) = f.send("POST", path, Some(body)).await;
            assert!((400..500).contains(&s), "POST {path} took a malformed body: {s} {v}");
        }
        let (s, v) = f.json("POST", path, json!({"no_such_field": 1})).await;
        assert!((400..500).contains(&s), "POST {path} took an unknown field: {s} {v}");
        for field in valid.as_object().unwrap().keys() {
            for wrong in wrong_values() {
                let mut body = valid.clone();
                body[field] = wrong;
                f.json("POST", path, body).await;
            }
        }
    }

    // Made-up and malformed ids on every route with an id.
    let ids = ["agent_nope", "x", "%00", "..", &"z".repeat(2000)];
    for id in ids {
        for (method, path) in [
            ("GET", format!("/v1/agents/{id}")),
            ("GET", format!("/v1/agents/{id}/versions")),
            ("GET", format!("/v1/agents/{agent}?version={id}")),
            ("GET", format!("/v1/environments/{id}")),
            ("DELETE", format!("/v1/environments/{id}")),
            ("GET", format!("/v1/vaults/{id}/credentials")),
            ("GET", format!("/v1/vaults/{vault}/credentials/{id}")),
            ("DELETE", format!("/v1/vaults/{vault}/credentials/{id}")),
            ("GET", format!("/v1/sessions/{id}")),
            ("GET", format!("/v1/sessions/{id}/events")),
            ("GET", format!("/v1/sessions/{id}/events/stream")),
            ("GET", format!("/v1/sessions/{session}/resources/{id}")),
            ("DELETE", format!("/v1/sessions/{session}/resources/{id}")),
            ("GET", format!("/v1/memory_stores/{store}/memories/{id}")),
            ("DELETE", format!("/v1/memory_stores/{store}/memories/{id}")),
            ("GET", format!("/v1/memory_stores/{store}/memory_versions/{id}")),
            ("POST", format!("/v1/memory_stores/{store}/memory_versions/{id}/redact")),
            ("GET", format!("/v1/deployments/{id}")),
            ("POST", format!("/v1/deployments/{id}/run")),
            ("GET", format!("/v1/deployment_runs/{id}")),
            ("GET", format!("/v1/dreams/{id}")),
            ("POST", format!("/v1/dreams/{id}/cancel")),
            ("GET", format!("/v1/files/{id}")),
            ("GET", format!("/v1/files/{id}/content")),
            ("DELETE", format!("/v1/files/{id}")),
            ("GET", format!("/v1/skills/{id}")),
            ("GET", format!("/v1/skills/{id}/versions/{id}/content")),
            ("DELETE", format!("/v1/skills/{id}/versions/{id}")),
        ] {
            let (s, v) = f.send(method, &path, None).await;
            assert!((400..500).contains(&s), "{method} {path}: {s} {v}");
        }
    }

    // Bad query strings on every list.
    let lists = [
        "/v1/agents".to_owned(),
        "/v1/environments".into(),
        "/v1/vaults".into(),
        format!("/v1/vaults/{vault}/credentials"),
        "/v1/sessions".into(),
        format!("/v1/sessions/{session}/events"),
        format!("/v1/sessions/{session}/resources"),
        "/v1/memory_stores".into(),
        format!("/v1/memory_stores/{store}/memories"),
        format!("/v1/memory_stores/{store}/memory_versions"),
        "/v1/deployments".into(),
        "/v1/deployment_runs".into(),
        "/v1/dreams".into(),
        "/v1/files".into(),
        "/v1/skills".into(),
    ];
    let queries = [
        "limit=0",
        "limit=-1",
        "limit=abc",
        "limit=99999999999999999999",
        "page=not-a-page",
        "page=%FF%FE",
        "order=sideways",
        "include_archived=maybe",
        "created_at[gte]=yesterday",
        "statuses[]=dancing",
        "depth=9",
        "view=everything",
        "path_prefix=no-slash",
        "types[]=not.a.type",
    ];
    for list in &lists {
        for q in queries {
            f.send("GET", &format!("{list}?{q}"), None).await;
        }
    }

    // Uploads that are not multipart, or are broken multipart.
    for path in ["/v1/files".to_owned(), "/v1/skills".into(), "/v1/skills/skill_nope/versions".into()] {
        let (s, v) = f.json("POST", &path, json!({"file": "x"})).await;
        assert!((400..500).contains(&s), "POST {path}: {s} {v}");
        let resp = f
            .client
            .post(format!("{}/anthropic{path}", herm.url))
            .header("x-api-key", &herm.admin_key)
            .header("content-type", "multipart/form-data; boundary=XYZ")
            .body("--XYZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nunterminated")
            .send()
            .await
            .unwrap();
        let s = resp.status().as_u16();
        assert!((400..500).contains(&s), "POST {path} with broken multipart: {s} {}", resp.text().await.unwrap());
    }

    // Actions last, since they retire what the sweep used.
    for (method, path) in [
        ("POST", format!("/v1/memory_stores/{store}/memory_versions/{mver}/redact")),
        ("POST", format!("/v1/deployments/{deployment}/pause")),
        ("POST", format!("/v1/deployments/{deployment}/unpause")),
        ("POST", format!("/v1/deployments/{deployment}/archive")),
        ("POST", format!("/v1/vaults/{vault}/credentials/{cred}/archive")),
        ("POST", format!("/v1/sessions/{session}/archive")),
        ("POST", format!("/v1/agents/{agent}/archive")),
        ("POST", format!("/v1/environments/{env}/archive")),
        ("POST", format!("/v1/memory_stores/{store}/archive")),
        ("POST", format!("/v1/vaults/{vault}/archive")),
    ] {
        f.send(method, &path, Some(b"{not json".to_vec())).await;
        f.send(method, &path, None).await;
    }

    // Still serving, and nothing panicked on the way.
    assert_eq!(f.send("GET", "/v1/agents", None).await.0, 200);
    assert!(!herm.log_text().contains("panicked"), "herm's log shows a panic");
}
