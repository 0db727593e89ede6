//! `herm bench --tracing N`: what tracing costs per agent step. One in-process engine (the
//! instant model of `herm bench`) runs rounds of N runs at one thread and N runs across 100
//! threads, alternating tracing off and on; on, every span is exported over OTLP/HTTP to a
//! local sink that reads and acknowledges each request. Reported: step p50/p99 and
//! throughput per setting, and on/off ratios from the same session.

use crate::bench::{BenchEngine, Instant0, bench_engine, ms, pct, round};
use herm_types::*;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A minimal HTTP endpoint (an OTLP sink here, the HTTP tool's server in `herm bench`): reads
/// each request (headers, `content-length` body) and answers `200` with an empty body,
/// counting requests and bytes.
pub(crate) struct Sink {
    requests: AtomicU64,
    bytes: AtomicU64,
}

impl Sink {
    /// Requests answered so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// A sink serving on a loopback port of its own (returned), until the process ends.
    pub(crate) async fn start() -> anyhow::Result<(Arc<Sink>, u16)> {
        let sink = Arc::new(Sink { requests: AtomicU64::new(0), bytes: AtomicU64::new(0) });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        tokio::spawn(serve_sink(listener, sink.clone()));
        Ok((sink, port))
    }
}

async fn serve_sink(listener: tokio::net::TcpListener, sink: Arc<Sink>) {
    while let Ok((mut sock, _)) = listener.accept().await {
        let sink = sink.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 16384];
            loop {
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < end + 4 + len {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                buf.drain(..end + 4 + len);
                sink.requests.fetch_add(1, Ordering::Relaxed);
                sink.bytes.fetch_add(len as u64, Ordering::Relaxed);
                let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                if sock.write_all(ok).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Rounds per concurrency, each one off and one on; the first warms up and is not counted.
const ROUNDS: u32 = 5;

struct Figures {
    steps: Vec<Duration>,
    steps_per_sec: f64,
}

async fn measure(
    engine: &herm_engine::Engine,
    dep: &DeploymentId,
    model: &Instant0,
    threads: &[ThreadId],
    runs: u32,
    steps_per_run: u32,
    tag: &str,
) -> anyhow::Result<Figures> {
    model.take_steps();
    let mut elapsed = Duration::ZERO;
    let rounds = if threads.len() == 1 { runs } else { 1 };
    for r in 0..rounds {
        elapsed += round(engine, dep, model, threads, &format!("{tag} {r}")).await?;
    }
    let total = threads.len() as f64 * rounds as f64 * steps_per_run as f64;
    Ok(Figures { steps: model.take_steps(), steps_per_sec: total / elapsed.as_secs_f64() })
}

pub async fn run(runs: u32, steps_per_run: u32) -> anyhow::Result<()> {
    let (sink, port) = Sink::start().await?;
    let export = crate::telemetry::TraceExport {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        protocol: Some("http/protobuf".into()),
        service_name: "herm-bench".into(),
        node_id: "bench".into(),
    };
    let provider = crate::telemetry::install_tracing(&export)?
        .ok_or_else(|| anyhow::anyhow!("tracing could not be installed (is OTEL_SDK_DISABLED set?)"))?;

    let model = Arc::new(Instant0::new(steps_per_run));
    let spec = json!({
        "customer_id": "bench", "name": "bench", "system_prompt": "benchmark", "model": "bench/instant",
        "limits": {"max_run_steps": steps_per_run + 1}
    });
    let BenchEngine { opened, dep, dir } = bench_engine("bench-tracing", model.clone(), spec).await?;
    let engine = opened.engine.clone();
    println!(
        "herm bench --tracing — {steps_per_run} model calls per run, {runs} runs per setting at one thread, \
         spans exported over OTLP/HTTP to a local sink"
    );
    for n in [1usize, 100] {
        let mut threads = Vec::with_capacity(n);
        for _ in 0..n {
            threads.push(engine.create_thread(&dep.id, None).await?.id);
        }
        let (mut off, mut on) = (Vec::new(), Vec::new());
        let (mut off_rate, mut on_rate) = (0.0, 0.0);
        // Alternate, so both settings see the same machine; the first round warms up.
        for r in 0..ROUNDS {
            for tracing in [false, true] {
                herm_engine::spans::enable(tracing);
                let f = measure(&engine, &dep.id, &model, &threads, runs, steps_per_run, &format!("t{n} {r}")).await?;
                if r == 0 {
                    continue;
                }
                if tracing {
                    on.extend(f.steps);
                    on_rate += f.steps_per_sec / (ROUNDS - 1) as f64;
                } else {
                    off.extend(f.steps);
                    off_rate += f.steps_per_sec / (ROUNDS - 1) as f64;
                }
            }
        }
        off.sort();
        on.sort();
        println!(
            "threads {n:>3}: off p50 {} p99 {} {off_rate:.0} steps/s | on p50 {} p99 {} {on_rate:.0} steps/s | \
             on/off p50 {:.2}x, throughput {:.2}x",
            ms(pct(&off, 0.5)),
            ms(pct(&off, 0.99)),
            ms(pct(&on, 0.5)),
            ms(pct(&on, 0.99)),
            pct(&on, 0.5).as_secs_f64() / pct(&off, 0.5).as_secs_f64().max(1e-9),
            on_rate / off_rate.max(1e-9),
        );
    }
    herm_engine::spans::enable(false);
    engine.shutdown().await;
    provider.force_flush().ok();
    println!(
        "exported: {} OTLP requests, {} KB of spans",
        sink.requests.load(Ordering::Relaxed),
        sink.bytes.load(Ordering::Relaxed) / 1024
    );
    drop(opened);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
