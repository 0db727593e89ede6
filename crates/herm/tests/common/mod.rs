//! Shared setup for the black-box tests: a fake model, a counting connector, and a real
//! herm process with a provider, a secret and a deployment.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub use herm_testkit::*;
pub use serde_json::{Value, json};
#[allow(unused_imports)]
pub use std::time::Duration;

pub const TOKEN: &str = "canary-token-7f3a9c1e5b";
pub const PROVIDER_KEY: &str = "canary-provider-key-2b8d4e6f";

pub struct Env {
    pub herm: Herm,
    pub model: FakeModel,
    pub connector: Connector,
    pub dep: String,
    pub thread: String,
    pub dir: tempfile::TempDir,
}

/// Fast settings for tests: short backoff and frequent scans.
pub const CONFIG: &str = r#"
[engine]
retry_base_delay_ms = 20
retry_max_delay_ms = 200
scan_interval_ms = 200
lease_ttl_secs = 10
model_idle_timeout_secs = 30

[sandbox]
backend = "none"
"#;

/// For the sandbox tests: the real Docker engine, small limits, and a pool of one ready
/// container (so deployments take the pool path that production takes by default).
pub fn sandbox_config() -> String {
    CONFIG.replace(
        "backend = \"none\"",
        "backend = \"docker\"\nmemory_mb = 256\npids_limit = 128\nshell_timeout_secs = 30\npool_size = 1",
    )
}

/// Writes the test clock (`engine.test_clock_file`).
pub fn set_clock(path: &std::path::Path, t: chrono::DateTime<chrono::Utc>) {
    std::fs::write(path, t.to_rfc3339()).unwrap();
}

pub async fn start_herm() -> (Herm, tempfile::TempDir) {
    start_herm_with(CONFIG).await
}

pub async fn start_herm_with(config: &str) -> (Herm, tempfile::TempDir) {
    start_herm_env(config, &[]).await
}

/// [`start_herm_with`] with extra environment variables for the process.
pub async fn start_herm_env(config: &str, env: &[(&str, &str)]) -> (Herm, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut o = HermOptions::new(env!("CARGO_BIN_EXE_herm"), dir.path().join("data"));
    o.config = Some(config.into());
    o.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    (Herm::start(o).await, dir)
}

/// A deployment whose `http_tools` reach the connector: `lookup` (GET, repeat-safe) and
/// `record` (POST, not repeat-safe). Both carry the secret in a header.
pub async fn setup(script: Vec<Reply>, wire: Wire, extra: Value) -> Env {
    setup_with(script, wire, extra, CONFIG).await
}

pub async fn setup_with(script: Vec<Reply>, wire: Wire, extra: Value, config: &str) -> Env {
    setup_model(FakeModel::start(script).await, wire, extra, config).await
}

/// [`setup_with`] for a fake model built by the caller (with side scripts, say).
pub async fn setup_model(model: FakeModel, wire: Wire, extra: Value, config: &str) -> Env {
    setup_env(model, wire, extra, config, &[]).await
}

/// [`setup_model`] with extra environment variables for herm.
pub async fn setup_env(model: FakeModel, wire: Wire, extra: Value, config: &str, env: &[(&str, &str)]) -> Env {
    let connector = Connector::start().await;
    let (herm, dir) = start_herm_env(config, env).await;
    let tok = herm.ok("POST", "/v1/secrets", &json!({"name": "API_TOKEN", "value": TOKEN}), 201).await;
    let pk = herm.ok("POST", "/v1/secrets", &json!({"name": "PROVIDER_KEY", "value": PROVIDER_KEY}), 201).await;
    let prices = json!({"models": {"m1": {"input_per_mtok": 3.0, "output_per_mtok": 15.0}}});
    herm.ok("PUT", "/v1/providers/fake", &provider(&model, wire, &pk["secret_id"], prices), 200).await;
    let mut spec = json!({
        "customer_id": "cust-1",
        "name": "test agent",
        "system_prompt": "You are a test agent.",
        "model": "fake/m1",
        "secrets": {"API_TOKEN": tok["secret_id"]},
        "http_tools": [
            {"name": "lookup", "description": "Look something up", "method": "GET", "repeat_safe": true,
             "url": connector.url("/lookup?q={{input.q}}"),
             "headers": {"Authorization": "Bearer {{secrets.API_TOKEN}}"},
             "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}},
            {"name": "record", "description": "Record an entry (has effects)", "method": "POST",
             "url": connector.url("/record?n={{input.n}}&delay_ms={{input.delay_ms}}"),
             "headers": {"Authorization": "Bearer {{secrets.API_TOKEN}}"},
             "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}, "delay_ms": {"type": "integer"}}}}
        ]
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    let d = herm.deploy(&spec).await;
    Env {
        dep: d["deployment_id"].as_str().unwrap().into(),
        thread: d["thread_id"].as_str().unwrap().into(),
        herm,
        model,
        connector,
        dir,
    }
}

/// The provider `fake` on the fake model's endpoint for `wire`, its key the stored secret
/// `key`, with `extra` fields (`models`, `forward_urls`).
pub fn provider(model: &FakeModel, wire: Wire, key: &Value, extra: Value) -> Value {
    let (kind, url) = match wire {
        Wire::Anthropic => ("anthropic", model.anthropic_url()),
        Wire::OpenAi => ("openai-compatible", model.openai_url()),
    };
    let mut spec = json!({"kind": kind, "base_url": url, "api_key_secret": key});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    spec
}

impl Env {
    /// Replaces the provider `fake` (same endpoint and key) with `extra`'s settings (`models`,
    /// `forward_urls`).
    pub async fn put_provider(&self, wire: Wire, extra: Value) {
        let secrets = self.herm.ok("GET", "/v1/secrets", &Value::Null, 200).await;
        let key =
            secrets["data"].as_array().unwrap().iter().find(|s| s["name"] == "PROVIDER_KEY").unwrap()["secret_id"]
                .clone();
        self.herm.ok("PUT", "/v1/providers/fake", &provider(&self.model, wire, &key, extra), 200).await;
    }

    /// Stores a secret and references it from the deployment under the same name
    /// (`secrets` merges per key on PATCH).
    pub async fn add_secret(&self, name: &str, value: &str) {
        let sec = self.herm.ok("POST", "/v1/secrets", &json!({"name": name, "value": value}), 201).await;
        let body = json!({"secrets": {name: sec["secret_id"]}});
        let (s, v) = self.herm.patch(&format!("/v1/deployments/{}", self.dep), &body).await;
        assert_eq!(s, 200, "{v}");
    }

    /// Deletes the stored secret called `name`.
    pub async fn delete_secret(&self, name: &str) {
        let (_, list) = self.herm.get("/v1/secrets").await;
        let id = list["data"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()["secret_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (s, _) =
            self.herm.request("DELETE", &format!("/v1/secrets/{id}"), Some(&self.herm.admin_key.clone()), None).await;
        assert_eq!(s, 204);
    }

    /// A workspace file through the Files API: status and raw bytes.
    pub async fn file(&self, path: &str) -> (u16, Vec<u8>) {
        let resp = reqwest::Client::new()
            .get(format!("{}/v1/deployments/{}/files/content?path={path}", self.herm.url, self.dep))
            .bearer_auth(&self.herm.admin_key)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
    }

    /// Writes a workspace file through the Files API; asserts 200 and returns the response.
    pub async fn put_file(&self, path: &str, body: impl Into<reqwest::Body>) -> Value {
        let resp = reqwest::Client::new()
            .put(format!("{}/v1/deployments/{}/files?path={path}", self.herm.url, self.dep))
            .bearer_auth(&self.herm.admin_key)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "PUT {path}");
        resp.json().await.unwrap()
    }

    /// Every request the connector received carried the API token, in the header meant for it.
    pub fn connector_got_token(&self) -> bool {
        self.connector
            .recorded()
            .iter()
            .all(|c| c.headers.iter().any(|(k, v)| k == "authorization" && v.contains(TOKEN)))
    }

    pub async fn send(&self, content: &str) -> Value {
        self.herm.ok("POST", &format!("/v1/deployments/{}/messages", self.dep), &json!({"content": content}), 202).await
    }

    pub async fn thread_stream(&self, last: Option<&str>) -> SseReader {
        SseReader::connect(
            &format!("{}/v1/threads/{}/events/stream", self.herm.url, self.thread),
            &self.herm.admin_key,
            last,
        )
        .await
    }

    pub async fn deployment_stream(&self, last: Option<&str>) -> SseReader {
        SseReader::connect(&format!("{}/v1/deployments/{}/events", self.herm.url, self.dep), &self.herm.admin_key, last)
            .await
    }
}

/// `record` tool call arguments.
pub fn record(n: u64, delay_ms: u64) -> Value {
    json!({"n": n, "delay_ms": delay_ms})
}

/// A `shell` tool call.
pub fn shell(cmd: &str) -> Reply {
    Reply::tool("shell", json!({"command": cmd}))
}

/// The results of every tool call of a thread, in order.
pub async fn results(env: &Env, thread: &str) -> Vec<Value> {
    env.herm.thread_log(thread).await.into_iter().filter(|e| e["type"] == "tool_result").collect()
}

/// Sends a message and waits for its run to complete; returns the run id.
/// Polls a run until it has `want` as its status.
pub async fn wait_status(env: &Env, run: &str, want: &str) -> Value {
    for _ in 0..400 {
        let (_, r) = env.herm.get(&format!("/v1/deployments/{}/runs/{run}", env.dep)).await;
        if r["status"] == want {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("run {run} never reached {want}");
}

pub async fn run_to_end(env: &Env, content: &str) -> String {
    let run = env.send(content).await["run_id"].as_str().unwrap().to_owned();
    let r = env.herm.wait_run(&env.dep, &run, Duration::from_secs(120)).await;
    assert_eq!(r["status"], "completed", "{r}");
    run
}

/// The text between the marker lines `name` and `next` of a probe's output.
pub fn section(out: &str, name: &str, next: &str) -> String {
    let Some(after) = out.split(&format!("{name}\n")).nth(1) else {
        panic!("no `{name}` section in the output: {out}")
    };
    after.split(&format!("{next}\n")).next().unwrap_or_default().to_owned()
}

/// Every file under `dir` (not following symlinks) that contains one of `needles`.
pub fn scan_dir(dir: &std::path::Path, needles: &[String]) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return hits };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
        if meta.is_dir() {
            hits.extend(scan_dir(&p, needles));
        } else if meta.is_file()
            && let Ok(bytes) = std::fs::read(&p)
        {
            for n in needles {
                if bytes.windows(n.len()).any(|w| w == n.as_bytes()) {
                    hits.push(format!("{} contains {n}", p.display()));
                }
            }
        }
    }
    hits
}
