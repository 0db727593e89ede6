//! `herm bench --mcp`: what herm's MCP layer adds to a tool call, over a bare SDK client
//! calling the same server in the same run. Both sides call `echo` of the official
//! `server-everything` (installed by scripts/mcp-peers.sh), over stdio and over streamable
//! HTTP, interleaved call by call (in alternating order) so machine noise hits both alike. herm's side is the
//! engine's own path: the tool as the model is offered it, schema check, secret check,
//! `_meta`, the call, result rendering (and, for stdio, the server in its process sandbox).

use crate::bench::{BenchEngine, bench_engine, ms, pct};
mod direct;

use direct::Direct;
use herm_engine::mcp::CallContext;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn everything_js() -> anyhow::Result<String> {
    let dir = std::env::var_os("HERM_MCP_PEERS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".mcp-peers"));
    let js = dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    anyhow::ensure!(js.exists(), "server-everything is not installed in {}: run scripts/mcp-peers.sh", dir.display());
    Ok(std::path::absolute(js)?.display().to_string())
}

/// Starts server-everything over streamable HTTP on a free port; killed on drop.
async fn http_server(js: &str) -> anyhow::Result<(tokio::process::Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let home = std::env::temp_dir().join(format!("herm-bench-peer-{}", std::process::id()));
    let env = [("PORT".to_owned(), zeroize::Zeroizing::new(port.to_string()))].into();
    let child = herm_sandbox::host::plain_child(&home, "node", &[js.to_owned(), "streamableHttp".into()], &env)
        .map_err(anyhow::Error::msg)?
        .spawn()?;
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok((child, format!("http://127.0.0.1:{port}/mcp")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("server-everything did not listen on {port}")
}

pub async fn run(rounds: usize) -> anyhow::Result<()> {
    let js = everything_js()?;
    let (_http, url) = http_server(&js).await?;
    let spec = json!({
        "customer_id": "bench", "name": "bench", "system_prompt": "benchmark", "model": "bench/none",
        "mcp_servers": [
            {"name": "stdio", "command": "node", "args": [js, "stdio"], "tools": ["echo"]},
            {"name": "http", "url": url, "tools": ["echo"]}
        ]
    });
    let model: Arc<dyn herm_llm::ModelClient> = Arc::new(crate::bench::NoModel);
    let BenchEngine { opened, dep, dir } = bench_engine("bench-mcp", model, spec).await?;
    let engine = opened.engine.clone();
    println!("herm bench --mcp — `echo` of server-everything, {rounds} calls per side, interleaved");
    println!("{:<8} {:>22} {:>22} {:>16}", "", "direct SDK p50 / p99", "through herm p50 / p99", "added at p50");
    for (server, direct) in [
        ("stdio", Direct::connect(None, "node", &[js.clone(), "stdio".into()]).await),
        ("http", Direct::connect(Some(&url), "", &[]).await),
    ] {
        let direct = direct.map_err(|e| anyhow::anyhow!("direct client for {server}: {e}"))?;
        let name = format!("{server}__echo");
        let listing = engine.mcp().list(&dep.id, &dep.spec).await;
        let Some(tool) = listing.tools.into_iter().find(|t| t.name == name) else {
            anyhow::bail!("herm did not list {name}");
        };
        let args = json!({"message": "ping"});
        let ctx = || CallContext { customer_id: "bench", deployment_id: &dep.id, thread_id: "thr_bench" };
        // Warm both paths (connections, JIT in the server).
        for _ in 0..20 {
            direct.call("echo", &args).await?;
            engine.mcp().call(&dep.spec, &tool, &args, ctx()).await;
        }
        let (mut a, mut b) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
        // Alternate which side goes first so neither always follows the other's traffic.
        for i in 0..rounds * 2 {
            if (i % 2 == 0) == (i / 2 % 2 == 0) {
                let t = Instant::now();
                direct.call("echo", &args).await?;
                a.push(t.elapsed());
            } else {
                let t = Instant::now();
                let out = engine.mcp().call(&dep.spec, &tool, &args, ctx()).await;
                b.push(t.elapsed());
                anyhow::ensure!(!out.output.is_error, "herm's call failed: {}", out.output.content);
            }
        }
        a.sort();
        b.sort();
        let added = pct(&b, 0.5).as_secs_f64() - pct(&a, 0.5).as_secs_f64();
        println!(
            "{server:<8} {:>22} {:>22} {:>13.3} ms",
            format!("{} / {}", ms(pct(&a, 0.5)), ms(pct(&a, 0.99))),
            format!("{} / {}", ms(pct(&b, 0.5)), ms(pct(&b, 0.99))),
            added * 1000.0
        );
    }
    engine.shutdown().await;
    drop(opened);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
