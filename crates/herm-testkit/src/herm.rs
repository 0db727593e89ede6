//! Runs the real `herm` binary on `127.0.0.1:0` with its own data directory, and talks to it
//! over HTTP. `kill9` is a real SIGKILL; `terminate` a SIGTERM, and so is dropping it.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Clone, Debug)]
pub struct HermOptions {
    pub bin: PathBuf,
    pub data_dir: PathBuf,
    /// TOML configuration, written next to the data directory.
    pub config: Option<String>,
    pub env: Vec<(String, String)>,
}

impl HermOptions {
    pub fn new(bin: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Self {
        Self { bin: bin.into(), data_dir: data_dir.into(), config: None, env: Vec::new() }
    }
}

pub struct Herm {
    child: Option<Child>,
    pub url: String,
    pub admin_key: String,
    pub opts: HermOptions,
    http: reqwest::Client,
}

/// Sends SIGTERM to a running herm; false if it could not be sent.
fn sigterm(child: &Child) -> bool {
    let Some(pid) = child.id() else { return false };
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().is_ok_and(|s| s.success())
}

impl Drop for Herm {
    /// Stops herm as an operator would (SIGTERM), so that it removes what it holds for no
    /// deployment (its pool of ready sandboxes); SIGKILL (on dropping the child) if it has
    /// not exited within 5 s.
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if !sigterm(&child) {
            return;
        }
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < until {
            match child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                _ => return,
            }
        }
    }
}

impl Herm {
    pub fn log_path(&self) -> PathBuf {
        self.opts.data_dir.with_extension("log")
    }

    pub async fn start(opts: HermOptions) -> Self {
        let mut h = Self {
            child: None,
            url: String::new(),
            admin_key: "test-admin-key-0123456789abcdef".into(),
            opts,
            http: reqwest::Client::new(),
        };
        h.spawn().await;
        h
    }

    async fn spawn(&mut self) {
        let mut cmd = Command::new(&self.opts.bin);
        cmd.arg("serve").arg("--addr").arg("127.0.0.1:0").arg("--data-dir").arg(&self.opts.data_dir);
        if let Some(c) = &self.opts.config {
            let p = self.opts.data_dir.with_extension("toml");
            std::fs::write(&p, c).unwrap();
            cmd.arg("--config").arg(p);
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        cmd.env("HERM_ADMIN_KEY", &self.admin_key)
            .env("HERM_LOG", "info,herm=debug")
            .envs(self.opts.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn herm");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(l) = lines.next_line().await.unwrap() {
                if let Some(u) = l.strip_prefix("herm listening on ") {
                    return u.trim().to_owned();
                }
            }
            panic!("herm exited before listening; see {}", self.log_path().display());
        })
        .await
        .expect("herm did not start in time");
        // Keep draining stdout so the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.url = url;
        self.child = Some(child);
    }

    /// SIGKILL, no shutdown path.
    pub async fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.start_kill().unwrap();
            c.wait().await.unwrap();
        }
    }

    /// Stops herm as an operator would (SIGTERM) and waits for it to exit; true if it exited
    /// cleanly within `within`.
    pub async fn terminate(&mut self, within: Duration) -> bool {
        let Some(mut c) = self.child.take() else { return false };
        assert!(sigterm(&c), "SIGTERM to herm");
        match tokio::time::timeout(within, c.wait()).await {
            Ok(status) => status.expect("wait for herm").success(),
            Err(_) => {
                c.start_kill().ok();
                c.wait().await.ok();
                false
            }
        }
    }

    pub async fn restart(&mut self) {
        self.kill9().await;
        self.spawn().await;
    }

    /// Process id, for inspection.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    pub async fn request(&self, method: &str, path: &str, key: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.http.request(m, format!("{}{path}", self.url));
        if let Some(k) = key {
            rb = rb.bearer_auth(k);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().await.expect("request");
        let status = resp.status().as_u16();
        let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let text = resp.text().await.unwrap_or_default();
        if status >= 400 {
            assert_eq!(ct, "application/problem+json", "error without problem+json: {status} {text}");
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A request as the admin with extra headers; returns the response headers too.
    pub async fn request_with_headers(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.http.request(m, format!("{}{path}", self.url)).bearer_auth(&self.admin_key);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().await.expect("request");
        let (status, h) = (resp.status().as_u16(), resp.headers().clone());
        let text = resp.text().await.unwrap_or_default();
        if status >= 400 {
            assert_eq!(h.get("content-type").unwrap(), "application/problem+json", "{status} {text}");
        }
        (status, h, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A request with exactly these headers (no API key unless given) and a raw body.
    pub async fn request_raw_body(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.http.request(m, format!("{}{path}", self.url)).body(body.to_owned());
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let resp = rb.send().await.expect("request");
        let (status, h) = (resp.status().as_u16(), resp.headers().clone());
        let text = resp.text().await.unwrap_or_default();
        if status >= 400 {
            assert_eq!(h.get("content-type").unwrap(), "application/problem+json", "{status} {text}");
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// [`Self::request_raw_body`] with a JSON body.
    pub async fn request_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut h = headers.to_vec();
        h.push(("content-type", "application/json"));
        let text = body.map(Value::to_string).unwrap_or_default();
        self.request_raw_body(method, path, &h, &text).await
    }

    /// A GET with the admin key whose answer is text (the metrics page): status, content
    /// type, body.
    pub async fn get_text(&self, path: &str) -> (u16, String, String) {
        let resp =
            self.http.get(format!("{}{path}", self.url)).bearer_auth(&self.admin_key).send().await.expect("request");
        let status = resp.status().as_u16();
        let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        (status, ct, resp.text().await.unwrap_or_default())
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, Some(&self.admin_key.clone()), None).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request("POST", path, Some(&self.admin_key.clone()), Some(body)).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request("PUT", path, Some(&self.admin_key.clone()), Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request("PATCH", path, Some(&self.admin_key.clone()), Some(body)).await
    }

    /// Posts and asserts the status.
    pub async fn ok(&self, method: &str, path: &str, body: &Value, want: u16) -> Value {
        let (s, v) = self.request(method, path, Some(&self.admin_key.clone()), Some(body)).await;
        assert_eq!(s, want, "{method} {path}: {v}");
        v
    }

    /// Creates a deployment and waits until it is ready; returns its JSON.
    pub async fn deploy(&self, spec: &Value) -> Value {
        let d = self.ok("POST", "/v1/deployments", spec, 201).await;
        let id = d["deployment_id"].as_str().unwrap().to_owned();
        let mut last = Value::Null;
        for _ in 0..1200 {
            let (_, v) = self.get(&format!("/v1/deployments/{id}")).await;
            if v["status"] == "ready" {
                return v;
            }
            assert_ne!(v["status"], "error", "deployment {id} failed to provision: {v}");
            last = v;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("deployment {id} never became ready: {last}");
    }

    /// Polls a run until it reaches a terminal status; returns the run JSON.
    pub async fn wait_run(&self, dep: &str, run: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (s, v) = self.get(&format!("/v1/deployments/{dep}/runs/{run}")).await;
            assert_eq!(s, 200, "{v}");
            if matches!(v["status"].as_str(), Some("completed" | "error" | "interrupted")) {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "run {run} did not finish: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every committed event of a thread.
    pub async fn thread_log(&self, thread: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let (s, v) = self.get(&format!("/v1/threads/{thread}/events?limit=100&cursor={cursor}")).await;
            assert_eq!(s, 200, "{v}");
            out.extend(v["data"].as_array().unwrap().iter().cloned());
            match v["next_cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => return out,
            }
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}
