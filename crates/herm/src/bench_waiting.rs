//! `herm bench --waiting N`: sleeping is free. N threads each end up waiting on an approval;
//! the server's memory is read before and after (anonymous memory is what a waiting thread
//! could cost; file-backed pages are SQLite's mapped database and page cache), then a sample
//! of them is confirmed one at a time, timing `respond` → the `tool_call` record committed.

use crate::bench::{BenchEngine, bench_engine, ms, pct};
use async_trait::async_trait;
use futures::future::try_join_all;
use herm_engine::steering::{Reply, pending_requests};
use herm_llm::{DeltaSink, Message, ModelClient, ModelRequest, ModelResponse, TokenUsage};
use herm_types::event::{LiveFrame, RequestedToolCall};
use herm_types::*;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CHUNK: usize = 500;
const SAMPLE: usize = 500;

/// Asks for the gated tool once, then answers.
struct AskOnce {
    calls: AtomicUsize,
}

#[async_trait]
impl ModelClient for AskOnce {
    async fn stream(
        &self,
        req: &ModelRequest,
        _: Option<&str>,
        _: &mut DeltaSink<'_>,
    ) -> Result<ModelResponse, herm_llm::Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let usage = TokenUsage { input_tokens: 10, output_tokens: 5 };
        if req.messages.iter().any(|m| matches!(**m, Message::ToolResults(_))) {
            return Ok(ModelResponse { text: "done".into(), tool_calls: vec![], usage, stop_reason: None });
        }
        let call = RequestedToolCall { tool_use_id: "t0".into(), tool: "send".into(), arguments: json!({}) };
        Ok(ModelResponse { text: String::new(), tool_calls: vec![call], usage, stop_reason: None })
    }
}

/// (VmRSS, RssAnon) in KiB.
pub(crate) fn rss() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// Returns freed heap to the system so RSS shows what is still held.
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory held by the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

pub async fn run(n: usize) -> anyhow::Result<()> {
    let model = Arc::new(AskOnce { calls: AtomicUsize::new(0) });
    // The gated tool points at a closed local port: after approval it fails at once, which is
    // all the benchmark needs (its start is what is timed).
    let spec = json!({
        "customer_id": "bench", "name": "bench", "system_prompt": "benchmark", "model": "bench/instant",
        "http_tools": [{"name": "send", "description": "d", "method": "POST", "url": "http://127.0.0.1:9/send", "input_schema": {"type": "object"}}],
        "tool_policies": {"send": "always_ask"}
    });
    let BenchEngine { opened, dep, dir } = bench_engine("bench-waiting", model.clone(), spec).await?;
    let engine = opened.engine.clone();
    trim();
    let before = rss();
    println!("herm bench --waiting {n}: data in {}", dir.display());

    let started = Instant::now();
    let mut threads = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(CHUNK) {
        let ids: Vec<ThreadId> = try_join_all(chunk.iter().map(|_| engine.create_thread(&dep.id, None)))
            .await?
            .into_iter()
            .map(|t| t.id)
            .collect();
        try_join_all(ids.iter().map(|t| engine.submit_text(t, Default::default(), "send it".into()))).await?;
        threads.extend(ids);
        // Let this chunk reach its wait before starting the next, so memory is not a queue.
        while engine.active_workers() > CHUNK {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    while model.calls.load(Ordering::SeqCst) < n || engine.active_workers() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let parked = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    trim();
    let after = rss();
    let per = |a: u64, b: u64| (a.saturating_sub(b) as f64 * 1024.0) / n as f64;
    println!(
        "parked {n} threads waiting on an approval in {:.1} s; workers left: {}",
        parked.as_secs_f64(),
        engine.active_workers()
    );
    println!(
        "memory: VmRSS {} → {} KiB ({:.0} B per waiting thread), RssAnon {} → {} KiB ({:.0} B per waiting thread)",
        before.0,
        after.0,
        per(after.0, before.0),
        before.1,
        after.1,
        per(after.1, before.1)
    );

    // Confirmation → tool call started, one at a time on a sample.
    let mut lat = Vec::with_capacity(SAMPLE);
    for t in threads.iter().step_by((n / SAMPLE).max(1)).take(SAMPLE) {
        let log = engine.thread_log(t).await?;
        let Some(p) = pending_requests(&log).into_iter().next() else { anyhow::bail!("thread {t} is not waiting") };
        let mut sub = engine.subscribe(&dep.id);
        let t0 = Instant::now();
        engine.respond(t, &p.request_id, Reply::Allow { input: None }).await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), sub.recv()).await?? {
                LiveFrame::Committed(e) if &e.thread_id == t && matches!(e.kind, EventKind::ToolCall { .. }) => break,
                _ => {}
            }
        }
        lat.push(t0.elapsed());
    }
    lat.sort();
    println!(
        "confirmation → tool call started ({} samples): p50 {} p99 {}",
        lat.len(),
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99))
    );
    engine.shutdown().await;
    drop(opened);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
