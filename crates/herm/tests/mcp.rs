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
    let s = env.herm.ok("POST", "/v1/secrets", &json!({"name": "MCP_TOKEN", "value": MCP_TOKEN}), 201).await;
    let (_, d) = env.herm.get(&format!("/v1/deployments/{}", env.dep)).await;
    let mut secrets = d["config"]["secrets"].clone();
    if secrets.is_null() {
        secrets = d["secrets"].clone();
    }
    secrets["MCP_TOKEN"] = s["secret_id"].clone();
    let (st, body) = env
        .herm
        .patch(&format!("/v1/deployments/{}", env.dep), &json!({"mcp_servers": servers, "secrets": secrets}))
        .await;
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
