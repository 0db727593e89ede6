//! Real MCP peers for tests, installed by `scripts/mcp-peers.sh`: the official reference
//! servers (`server-everything` over stdio or streamable HTTP, `server-filesystem`) and a
//! Python `mcp` server (`peers/bearer_mcp.py`) that requires a bearer token over HTTP.
//! Servers started here are killed when their handle drops.

use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Where the peers are installed: `$HERM_MCP_PEERS`, else `.mcp-peers` in the workspace.
pub fn peers_dir() -> PathBuf {
    let dir = std::env::var_os("HERM_MCP_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.mcp-peers"));
    assert!(
        dir.join("node_modules/@modelcontextprotocol/server-everything").exists()
            && dir.join("venv/bin/python").exists(),
        "the MCP peers are not installed in {}: run scripts/mcp-peers.sh",
        dir.display()
    );
    dir
}

/// `server-everything`'s entry point.
pub fn everything_js() -> String {
    peers_dir().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js").display().to_string()
}

/// `server-filesystem`'s entry point.
pub fn filesystem_js() -> String {
    peers_dir().join("node_modules/@modelcontextprotocol/server-filesystem/dist/index.js").display().to_string()
}

/// The Python with the `mcp` SDK installed.
pub fn python() -> String {
    peers_dir().join("venv/bin/python").display().to_string()
}

/// The Python test server's script.
pub fn bearer_script() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/bearer_mcp.py").display().to_string()
}

/// An `mcp_servers` entry running the Python test server over stdio; `marker` is an extra
/// argument that lets a test find (and kill) that one process.
pub fn python_stdio(name: &str, marker: &str) -> Value {
    json!({"name": name, "command": python(), "args": [bearer_script(), "stdio", marker]})
}

/// An `mcp_servers` entry running `server-everything` over stdio.
pub fn everything_stdio(name: &str) -> Value {
    json!({"name": name, "command": "node", "args": [everything_js(), "stdio"]})
}

/// A peer process serving streamable HTTP.
pub struct HttpPeer {
    pub url: String,
    _child: Child,
    /// The token file (0600: secrets travel in files, not argv); removed on drop.
    _token: Option<tempfile::NamedTempFile>,
}

impl HttpPeer {
    /// The Python test server, requiring `Authorization: Bearer <token>`.
    pub async fn python_bearer(token: &str) -> Self {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(token.as_bytes()).unwrap();
        let mut child = Command::new(python())
            .arg(bearer_script())
            .arg("http")
            .arg(file.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the Python MCP peer");
        let out = child.stdout.take().unwrap();
        let mut lines = BufReader::new(out).lines();
        let port = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(l) = lines.next_line().await.unwrap() {
                if let Some(p) = l.strip_prefix("PORT ") {
                    return p.trim().parse::<u16>().unwrap();
                }
            }
            panic!("the Python MCP peer exited before listening")
        })
        .await
        .expect("the Python MCP peer did not start");
        Self { url: format!("http://127.0.0.1:{port}/mcp"), _child: child, _token: Some(file) }
    }

    /// `server-everything` over streamable HTTP.
    pub async fn everything() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("node")
            .arg(everything_js())
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start server-everything");
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Self { url: format!("http://127.0.0.1:{port}/mcp"), _child: child, _token: None };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server-everything did not listen on {port}");
    }
}

/// Kills every process whose command line contains `marker` (a peer a test started through
/// herm); returns how many were killed.
pub fn kill_marked(marker: &str) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(marker) && !cmd.starts_with("bwrap") {
            let _ = std::process::Command::new("kill").arg("-9").arg(pid.to_string()).status();
            n += 1;
        }
    }
    n
}
