//! The Claude Managed Agents API under `/anthropic`, driven as apps drive it: with
//! Anthropic's official Python SDK (pinned; installed by scripts/mcp-peers.sh) running
//! `tests/anthropic/cma_sdk.py` scenarios against the real binary, and with plain HTTP for
//! the wire details. The fake model stands in for Anthropic's Messages API, as the provider
//! named `anthropic` that bare model ids resolve through.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;
use common::*;

/// One side script per scenario, chosen by the scenario's message.
fn sides() -> Vec<(String, Vec<Reply>)> {
    let many = |r: Reply| (0..20).map(|_| r.clone()).collect::<Vec<_>>();
    vec![
        // First: a judge's request also names the outcome it grades.
        (
            "strict, fair judge".into(),
            vec![Reply::text(&[r#"{"result": "pass", "feedback": "The summary is there."}"#])],
        ),
        (
            "DREAM-ONE".into(),
            vec![
                Reply::tool(
                    "memory_write",
                    json!({"path": "people/ada.md", "content": "Ada likes coffee.", "expected_version": 1}),
                ),
                Reply::text(&["Ada now likes coffee."]),
            ],
        ),
        ("DREAM-TWO".into(), vec![Reply::text(&["slowly "; 100]).delayed(Duration::from_millis(100)); 3]),
        ("scenario dream-source".into(), vec![Reply::text(&["Noted."])]),
        ("scenario media".into(), vec![Reply::text(&["A pixel and your notes."])]),
        (
            "scenario files".into(),
            vec![Reply::tool("shell", json!({"command": "cat /workspace/data/in.csv"})), Reply::text(&["3"])],
        ),
        (
            "scenario outcome".into(),
            vec![Reply::tool("goal_done", json!({"summary": "Wrote the summary."})), Reply::text(&["Claimed."])],
        ),
        (
            "scenario approve".into(),
            vec![
                Reply::tool("shell", json!({"command": "echo approved-output"})).with_text(&["I will ", "run it."]),
                Reply::text(&["Done: ", "approved."]),
            ],
        ),
        (
            "scenario deny".into(),
            vec![Reply::tool("shell", json!({"command": "echo denied-output"})), Reply::text(&["Understood."])],
        ),
        (
            "scenario interrupt".into(),
            vec![Reply::text(&["word "; 60]).delayed(Duration::from_millis(200)), Reply::text(&["again"])],
        ),
        (
            "scenario question".into(),
            vec![
                Reply::tool("ask_user", json!({"question": "Which color?", "options": ["red", "blue"]})),
                Reply::text(&["Blue it is."]),
            ],
        ),
        ("scenario error".into(), many(Reply::text(&["never"]).fail_first(500, 1))),
        ("scenario reconnect".into(), vec![Reply::text(&["a ", "b ", "c"]).delayed(Duration::from_millis(300))]),
        ("scenario pin-latest".into(), vec![Reply::text(&["latest"])]),
        ("scenario pin-old".into(), vec![Reply::text(&["old"])]),
        ("scenario pages".into(), vec![Reply::text(&["one ", "two"])]),
        ("scenario budget".into(), vec![Reply::tool("shell", json!({"command": "true"})), Reply::text(&["never"])]),
        ("scenario updated".into(), vec![Reply::tool("shell", json!({"command": "true"})), Reply::text(&["ran"])]),
        ("scenario deployment".into(), vec![Reply::text(&["Nightly report done."]); 20]),
        ("scenario mcp".into(), vec![Reply::tool("docs__add", json!({"a": 2, "b": 3})), Reply::text(&["It is 5."])]),
        ("scenario stores-gone".into(), vec![Reply::text(&["No store now."])]),
        (
            "scenario stores-rw".into(),
            vec![
                Reply::tool(
                    "store_write",
                    json!({"store": "team-notes", "path": "style/tabs.md", "content": "Use tabs."}),
                ),
                Reply::text(&["Saved."]),
            ],
        ),
        ("scenario stores-ro".into(), vec![Reply::text(&["Read it."])]),
        (
            "scenario skills".into(),
            vec![
                Reply::tool("load_skill", json!({"name": "csv-report"})),
                Reply::tool("shell", json!({"command": "cat /workspace/skills/csv-report/scripts/report.py"})),
                Reply::text(&["Reported."]),
            ],
        ),
    ]
}

struct Cma {
    herm: Herm,
    model: FakeModel,
    dir: tempfile::TempDir,
}

async fn start(config: &str) -> Cma {
    let model = FakeModel::start_with_sides(vec![Reply::text(&["(main script)"])], sides()).await;
    let (herm, dir) = start_herm_with(config).await;
    let pk = herm.ok("POST", "/v1/secrets", &json!({"name": "PROVIDER_KEY", "value": PROVIDER_KEY}), 201).await;
    let provider = json!({
        "kind": "anthropic", "base_url": model.anthropic_url(), "api_key_secret": pk["secret_id"],
        "models": {"claude-sonnet-4-5": {"input_per_mtok": 3.0, "output_per_mtok": 15.0}},
    });
    herm.ok("PUT", "/v1/providers/anthropic", &provider, 200).await;
    Cma { herm, model, dir }
}

impl Cma {
    /// Runs one SDK scenario; its JSON facts.
    async fn sdk(&self, scenario: &str, env: &[(&str, &str)]) -> Value {
        let mut cmd = tokio::process::Command::new(herm_testkit::mcp_peers::python());
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/anthropic/cma_sdk.py"))
            .arg(scenario)
            .env("HERM_BASE", format!("{}/anthropic", self.herm.url))
            .env("HERM_KEY", &self.herm.admin_key)
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out =
            tokio::time::timeout(Duration::from_secs(240), cmd.output()).await.expect("the scenario hung").unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "scenario {scenario} failed:\n{}\n{stdout}\nherm's log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.herm.log_text().lines().rev().take(40).collect::<Vec<_>>().join("\n")
        );
        serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap()
    }

    /// The fake model's requests for one scenario.
    fn requests(&self, marker: &str) -> Vec<Attempt> {
        self.model.attempts().into_iter().filter(|a| a.body.to_string().contains(marker)).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_approval_and_denial_run_bash_in_the_sandbox() {
    let cma = start(&sandbox_config()).await;
    let facts = cma.sdk("approve", &[]).await;
    assert!(facts["events"].as_u64().unwrap() >= 14, "{facts}");
    let reqs = cma.requests("scenario approve");
    assert_eq!(reqs.iter().filter(|a| a.is_completed()).count(), 2, "one model call per step, none repeated");
    assert!(reqs[1].body.to_string().contains("approved-output"), "the model saw the command's output");
    cma.sdk("deny", &[]).await;
    let reqs = cma.requests("scenario deny");
    assert_eq!(reqs.len(), 2);
    let second = reqs[1].body.to_string();
    assert!(second.contains("The user denied this tool call. Their message: not today"), "the model is told: {second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_interrupt_question_error_and_reconnect() {
    let cma = start(CONFIG).await;
    cma.sdk("interrupt", &[]).await;
    assert_eq!(cma.requests("scenario interrupt").len(), 1, "the interrupted call was not made again");
    cma.sdk("question", &[]).await;
    let reqs = cma.requests("scenario question");
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].body.to_string().contains("blue"), "the model was given the answer");
    cma.sdk("error", &[]).await;
    let failed = cma.requests("scenario error");
    assert!(failed.len() >= 2 && failed.iter().all(|a| a.status == 500), "retried, then gave up: {}", failed.len());
    cma.sdk("reconnect", &[]).await;
    cma.sdk("outcome", &[]).await;
    assert_eq!(cma.requests("strict, fair judge").len(), 1, "the claim was judged once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_versions_pages_and_refusals() {
    let cma = start(CONFIG).await;
    cma.sdk("pin", &[]).await;
    let system = |marker: &str| cma.requests(marker)[0].body["system"].to_string();
    assert!(system("scenario pin-latest").contains("You are version two."), "{}", system("scenario pin-latest"));
    assert!(system("scenario pin-old").contains("You are version one."), "{}", system("scenario pin-old"));
    cma.sdk("pages", &[]).await;
    cma.sdk("update_agent", &[]).await;
    cma.sdk("budget", &[]).await;
    assert_eq!(cma.requests("scenario budget").len(), 1, "the call that would pass the budget was not made");
    cma.sdk("refusals", &[]).await;
    cma.sdk("memory", &[]).await;
    cma.sdk("deployments", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_uploaded_skills_and_files_reach_the_session_and_its_sandbox() {
    let cma = start(&sandbox_config()).await;
    cma.sdk("skills", &[]).await;
    cma.sdk("files", &[]).await;
    let reqs = cma.requests("scenario files");
    assert_eq!(reqs.len(), 2);
    let first = reqs[0].body["messages"][0]["content"].to_string();
    assert!(
        first.contains("\"type\":\"image\"") && first.contains("iVBORw0KGgo"),
        "the uploaded image reached the model: {first}"
    );
    let reqs = cma.requests("scenario skills");
    assert_eq!(reqs.len(), 3, "one call per step");
    let system = reqs[0].body["system"].to_string();
    assert!(
        system.contains("csv-report") && system.contains("Make a CSV report"),
        "the pinned version's skill: {system}"
    );
    assert!(!system.contains("tidy"), "not the later version: {system}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_dreams_consolidate_a_store_with_what_sessions_taught() {
    let cma = start(CONFIG).await;
    cma.sdk("dreams", &[]).await;
    let first = cma.requests("DREAM-ONE");
    assert_eq!(first.len(), 2, "the dream's two steps");
    let asked = first[0].body.to_string();
    assert!(
        asked.contains("Ada likes tea.") && asked.contains("Ada switched to coffee"),
        "memories and the session: {asked}"
    );
    assert!(cma.requests("DREAM-TWO").len() <= 2, "the canceled dream stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_messages_carry_images_and_documents_to_the_model_and_back() {
    let cma = start(CONFIG).await;
    let facts = cma.sdk("media", &[]).await;
    let reqs = cma.requests("scenario media");
    assert_eq!(reqs.len(), 2, "one run per message");
    let alone = reqs[1].body["messages"].as_array().unwrap().last().unwrap()["content"].clone();
    assert_eq!(alone.as_array().unwrap().len(), 1, "an image alone, with no empty text block: {alone}");
    assert_eq!(alone[0]["type"], "image");
    let blocks = &reqs[0].body["messages"][0]["content"];
    let image = blocks.as_array().unwrap().iter().find(|b| b["type"] == "image").expect("the model got the image");
    assert_eq!(image["source"]["media_type"], "image/png", "{blocks}");
    assert!(image["source"]["data"].as_str().unwrap().starts_with("iVBORw0KGgo"), "{blocks}");
    assert!(blocks.to_string().contains("Q3 revenue: 12"), "and the text document: {blocks}");
    assert!(facts["session"].as_str().unwrap().starts_with("sesn_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_sessions_mount_memory_stores_with_their_access() {
    let cma = start(CONFIG).await;
    cma.sdk("stores", &[]).await;
    let tools = |a: &Attempt| -> Vec<String> {
        a.body["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
    };
    let gone = cma.requests("scenario stores-gone");
    assert_eq!(gone.len(), 1);
    assert!(
        !tools(&gone[0]).iter().any(|t| t.starts_with("store_")),
        "the removed store is gone: {:?}",
        tools(&gone[0])
    );
    let rw: Vec<Attempt> = cma
        .requests("scenario stores-rw")
        .into_iter()
        .filter(|a| !a.body.to_string().contains("stores-gone"))
        .collect();
    assert_eq!(rw.len(), 2, "one call for the write, one after it");
    let system = rw[0].body["system"].to_string();
    for want in [
        "Memory store `team-notes` (read-write",
        "Team Notes",
        "how the team works",
        "Keep style notes",
        "Ada likes tea.",
    ] {
        assert!(system.contains(want), "the prompt names the store and shows its memories: {want} in {system}");
    }
    assert!(tools(&rw[0]).contains(&"store_write".to_owned()), "{:?}", tools(&rw[0]));
    let ro = cma.requests("scenario stores-ro");
    let system = ro[0].body["system"].to_string();
    assert!(
        system.contains("(read-only)") && system.contains("Use tabs."),
        "the other session's write is seen: {system}"
    );
    let offered = tools(&ro[0]);
    assert!(
        offered.contains(&"store_read".to_owned())
            && !offered.iter().any(|t| t == "store_write" || t == "store_delete"),
        "{offered:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_vault_credentials_reach_mcp_servers_and_nothing_else() {
    let token = "canary-cma-bearer-5e1d9a";
    let peer = herm_testkit::mcp_peers::HttpPeer::python_bearer(token).await;
    let cma = start(CONFIG).await;
    cma.sdk("vault_mcp", &[("MCP_URL", &peer.url), ("MCP_TOKEN", token)]).await;
    let reqs = cma.requests("scenario mcp");
    assert_eq!(reqs.len(), 2);
    assert!(!reqs.iter().any(|a| a.body.to_string().contains(token)), "the token never reaches the model");
    assert!(!cma.herm.log_text().contains(token), "nor the log");
    let found = scan_dir(cma.dir.path(), &[token.to_owned()]);
    assert!(found.is_empty(), "the token is stored sealed only: {found:?}");
}

/// A request with CMA's headers; status, headers and the JSON body.
async fn call(
    herm: &Herm,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = reqwest::Client::new()
        .request(m, format!("{}/anthropic{path}", herm.url))
        .header("x-api-key", key)
        .header("anthropic-version", "2026-10-21")
        .header("anthropic-beta", "managed-agents-2026-04-01");
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let v = resp.json().await.unwrap_or(Value::Null);
    (status, headers, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_errors_pages_and_stream_resumption() {
    let cma = start(CONFIG).await;
    let (herm, key) = (&cma.herm, cma.herm.admin_key.clone());
    // x-api-key authenticates; errors have CMA's shape, a request id and the right type.
    let (s, h, v) = call(herm, "GET", "/v1/agents/agent_nope", &key, None).await;
    assert_eq!(s, 404);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "not_found_error");
    assert_eq!(v["error"]["details"]["error_code"], "agent_not_found");
    assert!(v["request_id"].as_str().unwrap().starts_with("req_"));
    assert_eq!(h["request-id"].to_str().unwrap(), v["request_id"].as_str().unwrap());
    let (s, _, v) = call(herm, "GET", "/v1/agents", "wrong", None).await;
    assert_eq!((s, v["error"]["type"].as_str()), (401, Some("authentication_error")));
    let (s, _, v) = call(herm, "GET", "/v1/agents?colour=red", &key, None).await;
    assert_eq!((s, v["error"]["type"].as_str()), (400, Some("invalid_request_error")), "{v}");
    let (s, _, v) = call(herm, "POST", "/v1/agents", &key, Some(json!({"name": "a", "model": "m", "colour": 1}))).await;
    assert_eq!(s, 400, "{v}");
    // A read-only key reads but does not write.
    let ro = herm.ok("POST", "/v1/api-keys", &json!({"name": "ro", "scopes": ["deployments:read"]}), 201).await;
    let ro = ro["key"].as_str().unwrap();
    let (s, _, v) = call(herm, "POST", "/v1/agents", ro, Some(json!({"name": "a", "model": "m"}))).await;
    assert_eq!((s, v["error"]["type"].as_str()), (403, Some("permission_error")));
    assert_eq!(call(herm, "GET", "/v1/agents", ro, None).await.0, 200);
    // A stale version is a conflict the SDK must not retry.
    let (_, _, a) = call(herm, "POST", "/v1/agents", &key, Some(json!({"name": "a", "model": "m"}))).await;
    let id = a["id"].as_str().unwrap();
    assert_eq!(
        call(herm, "POST", &format!("/v1/agents/{id}"), &key, Some(json!({"version": 1, "name": "b"}))).await.0,
        200
    );
    let (s, h, v) =
        call(herm, "POST", &format!("/v1/agents/{id}"), &key, Some(json!({"version": 1, "name": "c"}))).await;
    assert_eq!((s, v["error"]["type"].as_str()), (409, Some("conflict_error")));
    assert_eq!(h["x-should-retry"], "false");
    // Unlocked updates that race are all applied: none is lost.
    let path = format!("/v1/agents/{id}");
    let updates = (0..8).map(|i| {
        let (path, key) = (path.clone(), key.clone());
        async move { call(herm, "POST", &path, &key, Some(json!({"metadata": {format!("k{i}"): "v"}}))).await.0 }
    });
    assert!(futures::future::join_all(updates).await.iter().all(|s| *s == 200));
    let (_, _, a) = call(herm, "GET", &path, &key, None).await;
    assert_eq!((a["version"].as_i64(), a["metadata"].as_object().unwrap().len()), (Some(10), 8), "{a}");
    // Lists are pages: `data` and `next_page`.
    let (_, _, p) = call(herm, "GET", "/v1/agents?limit=1", &key, None).await;
    assert_eq!(p["data"].as_array().unwrap().len(), 1);
    assert!(p["next_page"].is_string() || p["next_page"].is_null());
    // Unsupported resources say so by name.
    let (s, _, v) = call(herm, "GET", "/v1/environments/env_x/work", &key, None).await;
    assert_eq!(s, 422);
    assert!(v["error"]["message"].as_str().unwrap().contains("work queue"), "{v}");

    // The stream: frames named by their type, a resumable id on each event's last frame.
    let (_, _, env) = call(herm, "POST", "/v1/environments", &key, Some(json!({"name": "e"}))).await;
    let (_, _, s) = call(
        herm,
        "POST",
        "/v1/sessions",
        &key,
        Some(json!({"agent": id, "environment_id": env["id"], "initial_events": [
            {"type": "user.message", "content": [{"type": "text", "text": "scenario pages"}]}]})),
    )
    .await;
    let sid = s["id"].as_str().unwrap().to_owned();
    let url = format!("{}/anthropic/v1/sessions/{sid}/events/stream", herm.url);
    // Live only by default: wait for the turn to end, then resume from the start.
    for _ in 0..100 {
        let (_, _, s) = call(herm, "GET", &format!("/v1/sessions/{sid}"), &key, None).await;
        let (_, _, l) = call(herm, "GET", &format!("/v1/sessions/{sid}/events"), &key, None).await;
        if s["status"] == "idle" && l["data"].as_array().unwrap().iter().any(|e| e["type"] == "session.status_idle") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, _, listed) = call(herm, "GET", &format!("/v1/sessions/{sid}/events"), &key, None).await;
    let listed: Vec<Value> = listed["data"].as_array().unwrap().clone();
    let mut sse = SseReader::connect(&url, &key, Some("0")).await;
    let frames = sse.until(Duration::from_secs(10), |f| f.event == "session.status_idle").await;
    assert_eq!(
        frames.iter().map(|f| f.data["id"].clone()).collect::<Vec<_>>(),
        listed.iter().map(|e| e["id"].clone()).collect::<Vec<_>>()
    );
    assert!(frames.iter().all(|f| f.event == f.data["type"].as_str().unwrap()));
    // Resuming from an id the stream gave skips exactly the frames had before it was set
    // (only the last frame of each herm event carries an id).
    let resume = frames[2].last_event_id.clone();
    assert!(!resume.is_empty());
    let had = frames.iter().position(|f| f.last_event_id == resume).unwrap() + 1;
    let mut again = SseReader::connect(&url, &key, Some(&resume)).await;
    let rest = again.until(Duration::from_secs(10), |f| f.event == "session.status_idle").await;
    let ids = |fs: &[Frame]| fs.iter().map(|f| f.data["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&rest), ids(&frames[had..]));
    assert!(had > 1 && had < frames.len());
    // Deleting the session deletes its deployment.
    let (s, _, v) = call(herm, "DELETE", &format!("/v1/sessions/{sid}"), &key, None).await;
    assert_eq!((s, v["type"].as_str()), (200, Some("session_deleted")));
    assert_eq!(call(herm, "GET", &format!("/v1/sessions/{sid}"), &key, None).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_share_a_deployment_per_customer_only_when_configured() {
    let config = format!("{CONFIG}\n[anthropic]\nshare_by_metadata_key = \"customer_id\"\n");
    let cma = start(&config).await;
    let (herm, key) = (&cma.herm, cma.herm.admin_key.clone());
    let deployments =
        || async { herm.ok("GET", "/v1/deployments", &Value::Null, 200).await["data"].as_array().unwrap().len() };
    let (_, _, env) = call(herm, "POST", "/v1/environments", &key, Some(json!({"name": "e"}))).await;
    let (_, _, agent) = call(herm, "POST", "/v1/agents", &key, Some(json!({"name": "a", "model": "m"}))).await;
    let (agent_id, env_id) = (agent["id"].clone(), env["id"].clone());
    let session = |meta: Value| {
        let body = json!({"agent": agent_id, "environment_id": env_id, "metadata": meta});
        let key = key.clone();
        async move {
            let (s, _, v) = call(herm, "POST", "/v1/sessions", &key, Some(body)).await;
            assert_eq!(s, 200, "{v}");
            v["id"].as_str().unwrap().to_owned()
        }
    };
    let a1 = session(json!({"customer_id": "acme"})).await;
    let a2 = session(json!({"customer_id": "acme"})).await;
    assert_eq!(deployments().await, 1, "acme's sessions share one deployment");
    let b = session(json!({"customer_id": "bolt"})).await;
    let own = session(json!({})).await;
    assert_eq!(deployments().await, 3, "another customer, and a session without the key, get their own");
    assert_ne!(a1, a2);
    // Each session is its own conversation: a message to one is not in the other.
    let msg = json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": "scenario pages"}]}]});
    assert_eq!(call(herm, "POST", &format!("/v1/sessions/{a1}/events"), &key, Some(msg)).await.0, 200);
    let (_, _, other) = call(herm, "GET", &format!("/v1/sessions/{a2}/events"), &key, None).await;
    assert!(other["data"].as_array().unwrap().is_empty(), "{other}");
    // Deleting a shared session keeps the deployment for the other one.
    assert_eq!(call(herm, "DELETE", &format!("/v1/sessions/{a1}"), &key, None).await.0, 200);
    assert_eq!(deployments().await, 3);
    assert_eq!(call(herm, "GET", &format!("/v1/sessions/{a2}"), &key, None).await.0, 200);
    for s in [b, own] {
        assert_eq!(call(herm, "DELETE", &format!("/v1/sessions/{s}"), &key, None).await.0, 200);
    }
    // bolt's deployment stays with its files for bolt's next session; the unkeyed one is gone.
    assert_eq!(deployments().await, 2);
}

async fn runs_of(herm: &Herm, key: &str, id: &str) -> Vec<Value> {
    let (_, _, p) = call(herm, "GET", &format!("/v1/deployment_runs?deployment_id={id}&limit=100"), key, None).await;
    p["data"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_deployment_makes_one_session_per_slot_across_kill_9() {
    let clock_dir = tempfile::tempdir().unwrap();
    let clock = clock_dir.path().join("clock");
    let t0 = chrono::DateTime::parse_from_rfc3339("2030-01-07T08:00:30Z").unwrap().with_timezone(&chrono::Utc);
    set_clock(&clock, t0);
    let config = CONFIG
        .replace("[engine]\n", &format!("[engine]\ntest_clock_file = {:?}\n", clock.display().to_string()))
        + "\n[memory]\nobserve_after_secs = 86400\n";
    let mut cma = start(&config).await;
    let key = cma.herm.admin_key.clone();
    let (_, _, env) = call(&cma.herm, "POST", "/v1/environments", &key, Some(json!({"name": "e"}))).await;
    let (_, _, agent) = call(&cma.herm, "POST", "/v1/agents", &key, Some(json!({"name": "a", "model": "m"}))).await;
    let body = json!({
        "name": "every minute", "agent": agent["id"], "environment_id": env["id"],
        "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "scenario deployment"}]}],
        "schedule": {"type": "cron", "expression": "* * * * *", "timezone": "UTC"},
    });
    let (s, _, d) = call(&cma.herm, "POST", "/v1/deployments", &key, Some(body)).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["schedule"]["upcoming_runs_at"][0], "2030-01-07T08:01:00.000000Z");
    let id = d["id"].as_str().unwrap().to_owned();
    // Slot after slot, herm is killed at a different moment around each firing.
    for (i, wait) in [0u64, 150, 400].iter().enumerate() {
        let minute = i as i64 + 1;
        set_clock(&clock, t0 + chrono::Duration::seconds(minute * 60 - 30) + chrono::Duration::milliseconds(100));
        tokio::time::sleep(Duration::from_millis(*wait)).await;
        cma.herm.kill9().await;
        cma.herm.restart().await;
        let mut got = Vec::new();
        for _ in 0..200 {
            got = runs_of(&cma.herm, &key, &id).await;
            if got.len() == minute as usize && got.iter().all(|r| r["session_id"].is_string()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log: Vec<String> = cma.herm.log_text().lines().rev().take(30).map(str::to_owned).collect();
        assert_eq!(got.len(), minute as usize, "slot {minute}: {got:?}\nherm's log:\n{}", log.join("\n"));
    }
    let got = runs_of(&cma.herm, &key, &id).await;
    let mut slots: Vec<&str> = got.iter().map(|r| r["trigger_context"]["scheduled_at"].as_str().unwrap()).collect();
    slots.sort();
    assert_eq!(slots, ["2030-01-07T08:01:00.000000Z", "2030-01-07T08:02:00.000000Z", "2030-01-07T08:03:00.000000Z"]);
    // Each run made its own session, which ran the initial message.
    let mut sessions: Vec<&str> = got.iter().map(|r| r["session_id"].as_str().unwrap()).collect();
    sessions.sort();
    sessions.dedup();
    assert_eq!(sessions.len(), 3);
    for s in sessions {
        let (_, _, v) = call(&cma.herm, "GET", &format!("/v1/sessions/{s}"), &key, None).await;
        assert_eq!(v["deployment_id"], id.as_str());
        // Its initial message was sent once, whenever the kill fell.
        let (_, _, l) = call(&cma.herm, "GET", &format!("/v1/sessions/{s}/events"), &key, None).await;
        let sent = l["data"].as_array().unwrap().iter().filter(|e| e["type"] == "user.message").count();
        assert_eq!(sent, 1, "{l}");
    }
}
