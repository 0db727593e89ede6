//! `herm bench --cma N`: what the Claude Managed Agents facade costs a client, against herm's
//! own API, over real HTTP and SSE to an in-process server (the instant model of
//! `herm bench`, SQLite with `synchronous=FULL`, no sandbox). Alternating rounds of one run
//! each: open the stream (live), send one message, time the first event on the stream and
//! the run's end (herm: `run_status completed`; CMA: `session.status_idle`). Reported per
//! side: time to first event and time per step (run time / model calls), p50 and p99, and
//! CMA/herm ratios from the same session.

use crate::bench::{BenchEngine, Instant0, bench_engine, ms, pct};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Sample {
    first: Duration,
    run: Duration,
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.key).json(&body).send().await?;
        let status = r.status();
        let v: Value = r.json().await?;
        anyhow::ensure!(status.is_success(), "{path}: {status} {v}");
        Ok(v)
    }

    /// Opens `stream`, sends `body` to `send`, and waits for an event `done` accepts.
    async fn turn(
        &self,
        stream: &str,
        send: &str,
        body: Value,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Sample> {
        let resp = self.http.get(format!("{}{stream}", self.base)).bearer_auth(&self.key).send().await?;
        anyhow::ensure!(resp.status().is_success(), "{stream}: {}", resp.status());
        let mut events = resp.bytes_stream().eventsource();
        let t0 = Instant::now();
        self.post(send, body).await?;
        let mut first = None;
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(30), events.next())
                .await?
                .ok_or_else(|| anyhow::anyhow!("the stream ended"))??;
            let Ok(v) = serde_json::from_str::<Value>(&ev.data) else { continue };
            if ev.event == "token" || ev.event == "event_delta" || ev.event == "event_start" {
                continue;
            }
            first.get_or_insert_with(|| t0.elapsed());
            if done(&v) {
                return Ok(Sample { first: first.unwrap_or_default(), run: t0.elapsed() });
            }
        }
    }
}

fn report(name: &str, samples: &mut [Sample], steps: u32) -> (Duration, Duration) {
    let mut first: Vec<Duration> = samples.iter().map(|s| s.first).collect();
    let mut step: Vec<Duration> = samples.iter().map(|s| s.run / steps).collect();
    first.sort();
    step.sort();
    println!(
        "{name:>5}: first event p50 {} p99 {} — per step p50 {} p99 {}",
        ms(pct(&first, 0.5)),
        ms(pct(&first, 0.99)),
        ms(pct(&step, 0.5)),
        ms(pct(&step, 0.99))
    );
    (pct(&first, 0.5), pct(&step, 0.5))
}

pub async fn run(rounds: u32, steps: u32) -> anyhow::Result<()> {
    let model = Arc::new(Instant0::new(steps));
    let spec = json!({
        "customer_id": "bench", "name": "bench", "system_prompt": "benchmark", "model": "bench/instant",
        "features": {"memory": false, "automations": false}, "busy_policy": "queue",
        "limits": {"max_run_steps": steps + 1}
    });
    let BenchEngine { opened, dep, dir } = bench_engine("bench-cma", model.clone(), spec).await?;
    let engine = opened.engine.clone();
    let (_, key) = engine.create_api_key("bench".into(), vec!["admin".into()]).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let state = herm_server::AppState {
        engine: engine.clone(),
        shutdown: shutdown.clone(),
        metrics: None,
        cma: herm_cma::Facade::new(engine.clone(), herm_cma::Options::default()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(herm_server::serve(listener, state));
    let c = Client { http: reqwest::Client::new(), base, key };

    let env = c.post("/anthropic/v1/environments", json!({"name": "bench"})).await?;
    let agent = c
        .post("/anthropic/v1/agents", json!({"name": "bench", "model": "bench/instant", "system": "benchmark"}))
        .await?;
    let session = c.post("/anthropic/v1/sessions", json!({"agent": agent["id"], "environment_id": env["id"]})).await?;
    let sid = session["id"].as_str().unwrap_or_default().to_owned();
    let thread = dep.default_thread_id.to_string();
    println!(
        "herm bench --cma — {rounds} alternating runs of {steps} model calls per side, over HTTP/SSE to an in-process server, data in {}",
        dir.display()
    );
    let (mut herm, mut cma) = (Vec::new(), Vec::new());
    for r in 0..rounds + 1 {
        let text = format!("round {r}");
        // herm's stream resumes after a cursor: live is after the thread's last event.
        let at = engine.thread(&dep.default_thread_id).await?.last_sequence;
        let h = c
            .turn(
                &format!("/v1/threads/{thread}/events/stream?after={at}"),
                &format!("/v1/deployments/{}/messages", dep.id),
                json!({"content": text}),
                |v| v["type"] == "run_status" && v["status"] == "completed",
            )
            .await?;
        let k = c
            .turn(
                &format!("/anthropic/v1/sessions/{sid}/events/stream"),
                &format!("/anthropic/v1/sessions/{sid}/events"),
                json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": text}]}]}),
                |v| v["type"] == "session.status_idle",
            )
            .await?;
        // The first round warms up.
        if r > 0 {
            herm.push(h);
            cma.push(k);
        }
    }
    let (hf, hs) = report("herm", &mut herm, steps);
    let (kf, ks) = report("cma", &mut cma, steps);
    println!(
        "cma / herm: first event {:.2}x, per step {:.2}x (p50, same session)",
        kf.as_secs_f64() / hf.as_secs_f64().max(1e-9),
        ks.as_secs_f64() / hs.as_secs_f64().max(1e-9)
    );
    shutdown.cancel();
    let _ = server.await;
    engine.shutdown().await;
    drop(opened);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
