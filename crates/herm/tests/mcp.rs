//! MCP servers as tools, against real peers: the official reference server over stdio and
//! streamable HTTP, and a Python `mcp` server that requires a bearer token. Allowlists,
//! namespacing, schema checks before the call, `_meta`, `tools/list_changed`, large results
//! spilled to the workspace, a server killed mid-call, and the stdio server's own sandbox.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use herm_testkit::mcp_peers::{self, HttpPeer};

const MCP_TOKEN: &str = "canary-mcp-token-5c1e9a7d3f";

/// A deployment with `servers` (and the MCP token as secret `MCP_TOKEN`).
async fn setup_mcp(script: Vec<Reply>, servers: Value, config: &str) -> Env {
    let env = setup_with(script, Wire::Anthropic, json!({}), config).await;
    env.add_secret("MCP_TOKEN", MCP_TOKEN).await;
    let (st, body) = env.herm.patch(&format!("/v1/deployments/{}", env.dep), &json!({"mcp_servers": servers})).await;
    assert_eq!(st, 200, "{body}");
    env
}

fn result_of<'a>(results: &'a [Value], tool: &str) -> Vec<&'a Value> {
    results.iter().filter(|r| r["tool"] == tool).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_servers_over_stdio_and_http() {
    let everything_http = HttpPeer::everything().await;
    let py = HttpPeer::python_bearer(MCP_TOKEN).await;
    let script = vec![
        Reply::tool("everything__get-sum", json!({"a": 2, "b": 3})),
        Reply::tool("web__echo", json!({"message": "hello over http"})),
        Reply::tool("peer__whoami", json!({})),
        Reply::tool("peer__add", json!({"a": "two", "b": 3})),
        Reply::tool("peer__add", json!({"a": 2, "b": 3})),
        Reply::tool("peer__call_counts", json!({})),
        Reply::tool("peer__echo_headers", json!({})),
        Reply::text(&["done"]),
    ];
    let mut everything = mcp_peers::everything_stdio("everything");
    everything["tools"] = json!(["echo", "get-sum"]);
    let servers = json!([
        everything,
        {"name": "web", "url": everything_http.url, "tools": ["echo"]},
        {"name": "peer", "url": py.url, "headers": {"Authorization": "Bearer {{secrets.MCP_TOKEN}}"}},
    ]);
    let env = setup_mcp(script, servers, CONFIG).await;

    // Discovery: namespaced names, origins, the allowlists honoured.
    let (s, tools) = env.herm.get(&format!("/v1/deployments/{}/tools", env.dep)).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = tools["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for want in ["everything__echo", "everything__get-sum", "web__echo", "peer__whoami", "peer__add"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("everything__") && !matches!(*n, "everything__echo" | "everything__get-sum"))
    );
    assert!(!names.contains(&"web__get-sum"), "{names:?}");
    let origin = |n: &str| tools["data"].as_array().unwrap().iter().find(|t| t["name"] == n).unwrap()["origin"].clone();
    assert_eq!(origin("everything__echo"), "mcp:everything");
    assert_eq!(origin("peer__add"), "mcp:peer");

    run_to_end(&env, "use your tools").await;
    let results = results(&env, &env.thread).await;
    let sum = result_of(&results, "everything__get-sum")[0];
    assert_eq!(sum["is_error"], false, "{sum}");
    assert!(sum["result"].as_str().unwrap().contains('5'), "{sum}");
    let echo = result_of(&results, "web__echo")[0];
    assert!(echo["result"].as_str().unwrap().contains("hello over http"), "{echo}");
    // customer_id (and the deployment) travel in `_meta` on every call.
    let who = result_of(&results, "peer__whoami")[0]["result"].as_str().unwrap().to_owned();
    assert!(who.contains("\"customer_id\": \"cust-1\"") || who.contains("\"customer_id\":\"cust-1\""), "{who}");
    assert!(who.contains(&env.dep), "{who}");
    // A schema violation is refused before the call: the server counted one `add`, not two.
    let adds = result_of(&results, "peer__add");
    assert_eq!(adds[0]["is_error"], true);
    assert!(adds[0]["result"].as_str().unwrap().contains("invalid arguments"), "{}", adds[0]);
    assert_eq!(adds[1]["result"], "5");
    let counts: Value =
        serde_json::from_str(result_of(&results, "peer__call_counts")[0]["result"].as_str().unwrap()).unwrap();
    assert_eq!(counts["add"], 1, "{counts}");
    // The bearer token reached the server (it answers nothing without it) and is redacted in
    // the echo of the headers.
    let headers = result_of(&results, "peer__echo_headers")[0]["result"].as_str().unwrap().to_owned();
    assert!(headers.contains("[REDACTED:MCP_TOKEN]"), "{headers}");
    assert!(!headers.contains(MCP_TOKEN));
    let log = env.herm.thread_log(&env.thread).await;
    let call = log.iter().find(|e| e["type"] == "tool_call" && e["tool"] == "web__echo").unwrap();
    assert_eq!(call["origin"], "mcp:web");
    for a in env.model.attempts() {
        assert!(!a.body.to_string().contains(MCP_TOKEN));
    }
}

/// An image an MCP tool returns reaches a model that takes images as an image; the log keeps
/// its reference only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_from_an_mcp_tool_reaches_the_model() {
    let script = vec![Reply::tool("everything__get-tiny-image", json!({})), Reply::text(&["a logo"])];
    let mut everything = mcp_peers::everything_stdio("everything");
    everything["tools"] = json!(["get-tiny-image"]);
    // Traced too: the MCP call is a span under its tool call's span.
    let receiver = OtlpReceiver::start().await;
    let config = format!("{CONFIG}\n[telemetry]\notlp_endpoint = \"{}\"\n", receiver.url());
    let env = setup_mcp(script, json!([everything]), &config).await;
    env.put_provider(Wire::Anthropic, json!({"models": {"m1": {"attachments": ["image"]}}})).await;
    run_to_end(&env, "show me the logo").await;
    let spans = receiver
        .wait_for("MCP and tool spans", |s| {
            s.iter().any(|s| s.name == "tools/call get-tiny-image")
                && s.iter().any(|s| s.name.starts_with("execute_tool"))
        })
        .await;
    let call = spans.iter().find(|s| s.name == "tools/call get-tiny-image").expect("an MCP span");
    let tool = spans.iter().find(|s| s.name == "execute_tool everything__get-tiny-image").expect("a tool span");
    assert_eq!((call.parent_span_id.as_str(), call.trace_id.as_str()), (tool.span_id.as_str(), tool.trace_id.as_str()));
    assert_eq!(
        (call.kind, call.attr("mcp.method.name"), call.attr("herm.mcp.server")),
        (3, Some("tools/call"), Some("everything"))
    );
    let attempts = env.model.attempts();
    let last = &attempts.last().unwrap().body;
    let result = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .find(|b| b["type"] == "tool_result")
        .expect("no tool result");
    let image = result["content"].as_array().unwrap().iter().find(|b| b["type"] == "image").cloned();
    let image = image.unwrap_or_else(|| panic!("no image in {result}"));
    assert_eq!(image["source"]["media_type"], "image/png");
    assert!(image["source"]["data"].as_str().unwrap().starts_with("iVBORw0KGgo"), "{image}");
    let logged = result_of(&results(&env, &env.thread).await, "everything__get-tiny-image")[0].clone();
    assert_eq!(logged["attachments"][0]["media_type"], "image/png", "{logged}");
    assert!(!logged.to_string().contains("iVBORw0KGgo"), "bytes in the log: {logged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_call_fails_the_call_and_the_run_goes_on() {
    let marker = format!("kill-me-{}", std::process::id());
    let script = vec![
        Reply::tool("peer__slow", json!({"seconds": 60})),
        Reply::text(&["the tool failed; carrying on"]),
        Reply::tool("peer__add", json!({"a": 1, "b": 2})),
        Reply::text(&["3"]),
    ];
    let env = setup_mcp(script, json!([mcp_peers::python_stdio("peer", &marker)]), CONFIG).await;
    let mut sse = env.deployment_stream(None).await;
    let run = env.send("be slow").await["run_id"].as_str().unwrap().to_owned();
    sse.until(Duration::from_secs(30), |f| f.event == "tool_call").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(mcp_peers::kill_marked(&marker) >= 1, "the server process was not found");
    let r = env.herm.wait_run(&env.dep, &run, Duration::from_secs(30)).await;
    assert_eq!(r["status"], "completed", "{r}");
    let log = env.herm.thread_log(&env.thread).await;
    let failed = log.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert_eq!(failed["is_error"], true);
    assert!(failed["result"].as_str().unwrap().contains("MCP server `peer` is unavailable"), "{failed}");
    let status = log.iter().find(|e| e["type"] == "mcp_status").expect("an mcp_status event");
    assert_eq!((status["server"].as_str(), status["status"].as_str()), (Some("peer"), Some("unavailable")));
    // The next call reconnects (a new server process).
    tokio::time::sleep(Duration::from_secs(1)).await;
    run_to_end(&env, "add").await;
    let results = results(&env, &env.thread).await;
    assert_eq!(results.last().unwrap()["result"], "3", "{:?}", results.last());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_never_sticks_a_run() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = vec![Reply::tool("lookup", json!({"q": "x"})), Reply::text(&["done without it"])];
    let env = setup_mcp(script, json!([{"name": "gone", "url": format!("http://127.0.0.1:{port}/mcp")}]), CONFIG).await;
    let run = env.send("go").await["run_id"].as_str().unwrap().to_owned();
    let r = env.herm.wait_run(&env.dep, &run, Duration::from_secs(30)).await;
    assert_eq!(r["status"], "completed", "{r}");
    let log = env.herm.thread_log(&env.thread).await;
    let statuses: Vec<&Value> = log.iter().filter(|e| e["type"] == "mcp_status").collect();
    assert_eq!(statuses.len(), 1, "one event per run and server: {statuses:?}");
    assert_eq!(statuses[0]["server"], "gone");
    assert!(statuses[0]["message"].as_str().unwrap().contains("connect"), "{}", statuses[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_changes_and_large_results() {
    let config = sandbox_config().replace("backend = \"docker\"", "backend = \"namespaces\"");
    let script = vec![
        Reply::tool("peer__enable_extra", json!({})),
        Reply::tool("peer__extra", json!({})),
        Reply::tool("peer__big", json!({"n": 100_000})),
        Reply::text(&["done"]),
    ];
    let env = setup_mcp(script, json!([mcp_peers::python_stdio("peer", "list-changes")]), &config).await;
    run_to_end(&env, "go").await;
    let attempts = env.model.attempts();
    let offered = |i: usize| -> Vec<String> {
        attempts[i].body["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
    };
    assert!(!offered(0).contains(&"peer__extra".to_owned()));
    assert!(offered(1).contains(&"peer__extra".to_owned()), "{:?}", offered(1));
    let results = results(&env, &env.thread).await;
    assert_eq!(result_of(&results, "peer__extra")[0]["result"], "extra ran");
    let big = result_of(&results, "peer__big")[0]["result"].as_str().unwrap().to_owned();
    assert!(big.len() < 20_000, "the model gets a preview, not 100 kB");
    let path = big.split("the full output is in /workspace/").nth(1).unwrap().trim_end_matches(']').to_owned();
    let (status, full) = env.file(&path).await;
    assert_eq!(status, 200);
    assert_eq!(full.len(), 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_server_runs_in_its_own_sandbox() {
    let mut server = mcp_peers::python_stdio("peer", "own-sandbox");
    server["env"] = json!({"SERVICE_TOKEN": "{{secrets.MCP_TOKEN}}"});
    let script = vec![
        Reply::tool("peer__environment", json!({})),
        // Its home is <data>/mcp/<deployment>/peer: reach up into herm's data directory.
        Reply::tool("peer__read_path", json!({"path": "../../../master.key"})),
        Reply::tool("peer__read_path", json!({"path": "../../../herm.db"})),
        Reply::tool("peer__read_path", json!({"path": "/etc/os-release"})),
        Reply::text(&["done"]),
        Reply::tool("peer__environment", json!({})),
        Reply::text(&["done again"]),
    ];
    let env = setup_mcp(script, json!([server]), CONFIG).await;
    assert!(env.dir.path().join("data/master.key").exists() && env.dir.path().join("data/herm.db").exists());
    run_to_end(&env, "look around").await;
    let results = results(&env, &env.thread).await;
    let environ: Value =
        serde_json::from_str(result_of(&results, "peer__environment")[0]["result"].as_str().unwrap()).unwrap();
    // It got the variable it was configured with (redacted on the way back), and nothing of herm's.
    assert_eq!(environ["SERVICE_TOKEN"], "[REDACTED:MCP_TOKEN]", "{environ}");
    assert!(
        environ.as_object().unwrap().keys().all(|k| !k.starts_with("HERM") && !k.starts_with("CARGO")),
        "{environ}"
    );
    // herm's data directory is hidden from it; the rest of the host is readable.
    let reads = result_of(&results, "peer__read_path");
    assert!(reads[0]["result"].as_str().unwrap().starts_with("cannot read"), "{}", reads[0]);
    assert!(reads[1]["result"].as_str().unwrap().starts_with("cannot read"), "{}", reads[1]);
    assert!(!reads[2]["result"].as_str().unwrap().starts_with("cannot read"), "{}", reads[2]);
    // No command line on the host carries the secret (it travels in the environment).
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            assert!(!String::from_utf8_lossy(&cmd).contains(MCP_TOKEN));
        }
    }
    // Deleting the secret fails the next call, clearly, even though the server still runs.
    env.delete_secret("MCP_TOKEN").await;
    run_to_end(&env, "again").await;
    let last = common::results(&env, &env.thread).await.pop().unwrap();
    assert_eq!(last["is_error"], true, "{last}");
    assert!(last["result"].as_str().unwrap().contains("secret `MCP_TOKEN` is not available"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_reference_server_sees_the_host_read_only() {
    let files = tempfile::tempdir().unwrap();
    let dir = files.path().canonicalize().unwrap().display().to_string();
    std::fs::write(files.path().join("a.txt"), "alpha").unwrap();
    let script = vec![
        Reply::tool("fs__list_directory", json!({"path": dir})),
        Reply::tool("fs__read_text_file", json!({"path": format!("{dir}/a.txt")})),
        Reply::tool("fs__write_file", json!({"path": format!("{dir}/b.txt"), "content": "beta"})),
        Reply::text(&["done"]),
    ];
    let fs = json!({"name": "fs", "command": "node", "args": [mcp_peers::filesystem_js(), dir],
                    "tools": ["list_directory", "read_text_file", "write_file"]});
    let env = setup_mcp(script, json!([fs]), CONFIG).await;
    run_to_end(&env, "files").await;
    let results = results(&env, &env.thread).await;
    assert!(result_of(&results, "fs__list_directory")[0]["result"].as_str().unwrap().contains("a.txt"));
    assert_eq!(result_of(&results, "fs__read_text_file")[0]["result"], "alpha");
    // Its sandbox shows the host read-only: the write fails and nothing was written.
    assert_eq!(result_of(&results, "fs__write_file")[0]["is_error"], true, "{:?}", results);
    assert!(!files.path().join("b.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tools_wait_for_approval_and_edits_follow_their_schema() {
    let script = vec![Reply::tool("peer__add", json!({"a": 1, "b": 1})), Reply::text(&["added"])];
    let env = setup_mcp(script, json!([mcp_peers::python_stdio("peer", "approvals")]), CONFIG).await;
    let (s, _) = env
        .herm
        .patch(&format!("/v1/deployments/{}", env.dep), &json!({"tool_policies": {"peer__*": "always_ask"}}))
        .await;
    assert_eq!(s, 200);
    let run = env.send("add").await["run_id"].as_str().unwrap().to_owned();
    let mut request = Value::Null;
    for _ in 0..400 {
        let (_, t) = env.herm.get(&format!("/v1/deployments/{}/threads/{}", env.dep, env.thread)).await;
        if let Some(p) = t["pending"].as_array().and_then(|p| p.first()) {
            request = p.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(request["tool"], "peer__add", "{request}");
    let rid = request["request_id"].as_str().unwrap().to_owned();
    let confirm = |input: Value| json!({"events": [{"type": "user.tool_confirmation", "request_id": rid, "result": "allow", "input": input}]});
    // The edit is checked against the schema the MCP server published.
    let (s, v) =
        env.herm.post(&format!("/v1/threads/{}/events", env.thread), &confirm(json!({"a": "ten", "b": 5}))).await;
    assert_eq!((s, v["code"].as_str()), (422, Some("validation_error")), "{v}");
    let (s, _) = env.herm.post(&format!("/v1/threads/{}/events", env.thread), &confirm(json!({"a": 10, "b": 5}))).await;
    assert_eq!(s, 200);
    let r = env.herm.wait_run(&env.dep, &run, Duration::from_secs(20)).await;
    assert_eq!(r["status"], "completed", "{r}");
    let results = results(&env, &env.thread).await;
    assert_eq!(result_of(&results, "peer__add")[0]["result"], "15");
}
