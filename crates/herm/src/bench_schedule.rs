//! `herm bench --schedules N`: the scheduler, in process, on SQLite with `synchronous=FULL`.
//!
//! 1. Trigger jitter: N automations (each on its own thread) all due at the same minute
//!    boundary; for each, the time from its slot to its run's start (the run row committed),
//!    p50/p99/max. The model answers instantly, so no model time is included.
//! 2. Idle cost: CPU time and memory of the engine doing nothing for a while, first with no
//!    automation, then with `--idle-automations` enabled automations not due (the same
//!    process, so the ratio holds on a noisy machine).

use crate::bench::{BenchEngine, Instant0, baseline, bench_engine, ms, pct};
use futures::StreamExt;
use herm_types::proactive::AutomationCreate;
use herm_types::*;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Creations in flight at once (their writes share group commits).
const PARALLEL: usize = 64;
/// How long each idle measurement lasts.
const IDLE: Duration = Duration::from_secs(10);

/// CPU used per second of wall time while idle, and RSS at the end.
async fn idle_cost() -> (f64, u64) {
    let (c0, t0) = (crate::bench::cpu_time(), Instant::now());
    tokio::time::sleep(IDLE).await;
    let cpu = (crate::bench::cpu_time() - c0).as_secs_f64() * 1000.0 / t0.elapsed().as_secs_f64();
    (cpu, crate::bench_waiting::rss().0)
}

pub async fn run(n: usize, idle: usize) -> anyhow::Result<()> {
    let spec = json!({"customer_id": "bench", "name": "bench", "system_prompt": "benchmark", "model": "bench/instant"});
    let BenchEngine { opened, dep, dir } = bench_engine("bench-schedule", Arc::new(Instant0::new(1)), spec).await?;
    let engine = opened.engine.clone();
    println!("herm bench --schedules {n}: SQLite synchronous=FULL, data in {}", dir.display());
    let base = baseline(&dir, 300)?;
    let commit = pct(&base, 0.5);
    println!("baseline: one durable SQLite commit p50 {} p99 {}", ms(commit), ms(pct(&base, 0.99)));

    // 1. Jitter.
    let mut threads = Vec::with_capacity(n);
    for _ in 0..n {
        threads.push(engine.create_thread(&dep.id, None).await?.id);
    }
    let created: Vec<_> = futures::stream::iter(threads)
        .map(|t| {
            let (engine, dep) = (engine.clone(), dep.id.clone());
            async move {
                let body = AutomationCreate {
                    name: "tick".into(),
                    schedule: Some("* * * * *".into()),
                    instructions: "Tick.".into(),
                    thread_id: Some(t.to_string()),
                    ..Default::default()
                };
                engine.create_automation(&dep, body).await
            }
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let autos = created.into_iter().collect::<Result<Vec<_>, _>>()?;
    let due = autos.iter().filter_map(|a| a.value.next_run_at).max().unwrap_or_else(now);
    println!("jitter: {n} automations due at {due} (waiting for it)");
    let until_due = (due - now()).to_std().unwrap_or_default();
    tokio::time::sleep(until_due + Duration::from_secs(2)).await;
    let mut jitter = Vec::with_capacity(n);
    let deadline = Instant::now() + Duration::from_secs(60);
    for a in &autos {
        let id = &a.value.automation_id;
        loop {
            let fired = engine.automation_firings(&dep.id, id, 1).await?;
            if let Some(run) = fired.first().and_then(|f| f.run_id.clone()) {
                let r = engine.run(&dep.id, &run).await?;
                jitter.push((r.started_at - due).to_std().unwrap_or_default());
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "automation {id} never fired");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    jitter.sort();
    let per_commit = |d: Duration| d.as_secs_f64() / commit.as_secs_f64().max(1e-9);
    println!(
        "jitter (run start − due time): p50 {} p99 {} max {} over {} slots ({:.1}x / {:.1}x the baseline commit)",
        ms(pct(&jitter, 0.5)),
        ms(pct(&jitter, 0.99)),
        ms(jitter.last().copied().unwrap_or_default()),
        jitter.len(),
        per_commit(pct(&jitter, 0.5)),
        per_commit(pct(&jitter, 0.99)),
    );
    for a in &autos {
        engine.delete_automation(&dep.id, &a.value.automation_id, None).await?;
    }

    // 2. Idle cost, without and then with `idle` enabled automations.
    let (base_cpu, base_rss) = idle_cost().await;
    println!("idle, no automation: CPU {base_cpu:.3} ms/s, RSS {} MiB", base_rss / 1024);
    let t = Instant::now();
    let made = futures::stream::iter(0..idle)
        .map(|i| {
            let (engine, dep) = (engine.clone(), dep.id.clone());
            async move {
                let body = AutomationCreate {
                    name: format!("weekly {i}"),
                    schedule: Some(format!("{} {} * * {}", i % 60, i % 24, i % 7)),
                    instructions: "Weekly report.".into(),
                    ..Default::default()
                };
                engine.create_automation(&dep, body).await.map(|_| ())
            }
        })
        .buffer_unordered(PARALLEL)
        .filter(|r| std::future::ready(r.is_ok()))
        .count()
        .await;
    println!("created {made} enabled automations in {:.1} s", t.elapsed().as_secs_f64());
    let (cpu, rss) = idle_cost().await;
    println!(
        "idle, {made} automations: CPU {cpu:.3} ms/s ({:+.2} ms/s over the idle baseline), RSS {} MiB (+{} MiB)",
        cpu - base_cpu,
        rss / 1024,
        rss.saturating_sub(base_rss) / 1024
    );
    let db = std::fs::metadata(dir.join("herm.db")).map(|m| m.len()).unwrap_or(0);
    println!("database: {} MiB", db / (1024 * 1024));
    engine.shutdown().await;
    drop(opened);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
