//! `herm bench --memories 1000,10000`: what memory costs, in process, on SQLite with
//! `synchronous=FULL`, with an instant model.
//!
//! 1. Run start: the time from submitting a message to the model call arriving, for a
//!    deployment with memory off (the plain run start) and one holding N memories (read,
//!    ranked against the message and packed into the system prompt). Runs of the two
//!    alternate, each on a fresh thread, so the ratio holds on a noisy machine.
//! 2. Compaction without the model call: deciding whether a request passes the threshold
//!    (done before every model call), and planning one compaction (turns, cut, stages) of a
//!    long conversation, as ratios to building that conversation's history (what every model
//!    call does anyway).

use crate::bench::{BenchEngine, Instant0, bench_engine, ms, pct, round};
use futures::StreamExt;
use herm_engine::{compaction, history};
use herm_types::event::{RequestedToolCall, Role, ToolOutcome};
use herm_types::memory::MemoryCreate;
use herm_types::*;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs measured per deployment and memory count.
const RUNS: usize = 200;
/// Memory creations in flight at once.
const PARALLEL: usize = 64;
/// Words memories and messages are made of (so ranking has real work: shared and rare terms).
const WORDS: &[&str] = &[
    "invoice",
    "launch",
    "brand",
    "voice",
    "playful",
    "exclamation",
    "date",
    "format",
    "customer",
    "anvil",
    "shipping",
    "europe",
    "refund",
    "policy",
    "weekly",
    "report",
    "monday",
    "budget",
    "legal",
    "approval",
    "newsletter",
    "tone",
    "formal",
    "emoji",
    "spreadsheet",
    "quarter",
    "pricing",
    "discount",
    "partner",
    "deadline",
];

fn text(seed: usize, words: usize) -> String {
    (0..words).map(|i| WORDS[(seed * 7 + i * 13 + i * i) % WORDS.len()]).collect::<Vec<_>>().join(" ")
}

pub async fn run(counts: &[usize]) -> anyhow::Result<()> {
    let model = Arc::new(Instant0::new(1));
    let plain_spec = json!({"customer_id": "bench", "name": "plain", "system_prompt": "benchmark",
        "model": "bench/instant", "features": {"memory": false}});
    let BenchEngine { opened, dep: plain, dir } = bench_engine("bench-memory", model.clone(), plain_spec).await?;
    let engine = opened.engine.clone();
    println!("herm bench --memories: SQLite synchronous=FULL, instant model, data in {}", dir.display());
    let spec = serde_json::from_value(json!({"customer_id": "bench", "name": "memory", "system_prompt": "benchmark",
        "model": "bench/instant"}))?;
    let mem = engine.create_deployment(spec).await?;
    let mut have = 0;
    for &n in counts {
        let t = Instant::now();
        let made = futures::stream::iter(have..n)
            .map(|i| {
                let (engine, dep) = (engine.clone(), mem.id.clone());
                async move {
                    let body = MemoryCreate {
                        content: format!("Observation {i}: {}.", text(i, 30)),
                        path: Some(format!(
                            "{}/{}-{i}.md",
                            ["preferences", "facts", "corrections"][i % 3],
                            WORDS[i % WORDS.len()]
                        )),
                    };
                    engine.create_memory(&dep, body).await.map(|_| ())
                }
            })
            .buffer_unordered(PARALLEL)
            .collect::<Vec<_>>()
            .await;
        made.into_iter().collect::<Result<Vec<_>, _>>()?;
        have = n;
        println!("{n} memories in the deployment (created in {:.1} s)", t.elapsed().as_secs_f64());
        let (mut base, mut with) = (Vec::with_capacity(RUNS), Vec::with_capacity(RUNS));
        for r in 0..RUNS {
            let msg = format!("n{n} r{r}: {}", text(r, 12));
            base.push(run_start(&engine, &plain.id, &model, &format!("plain {msg}")).await?);
            with.push(run_start(&engine, &mem.id, &model, &format!("memory {msg}")).await?);
        }
        base.sort();
        with.sort();
        // Where it goes: reading every memory, and the whole section (read, rank, pack).
        let mut read = Vec::with_capacity(20);
        let mut section = Vec::with_capacity(20);
        let d = engine.deployment(&mem.id).await?;
        for r in 0..20 {
            let t = Instant::now();
            let q = herm_engine::memory::MemoryQuery { limit: usize::MAX >> 1, ..Default::default() };
            std::hint::black_box(engine.list_memories(&mem.id, q).await?);
            read.push(t.elapsed());
            let t = Instant::now();
            std::hint::black_box(engine.memory_prompt(&d, &text(r, 12)).await?);
            section.push(t.elapsed());
        }
        read.sort();
        section.sort();
        println!(
            "  for scale: listing all {n} memories (full records) p50 {}; building a run's memory section (read texts, rank, pack) p50 {}",
            ms(pct(&read, 0.5)),
            ms(pct(&section, 0.5))
        );
        let ratio = |p: f64| pct(&with, p).as_secs_f64() / pct(&base, p).as_secs_f64().max(1e-9);
        println!(
            "run start, memory off: p50 {} p99 {} | {n} memories: p50 {} p99 {} ({:.2}x / {:.2}x the plain run start)",
            ms(pct(&base, 0.5)),
            ms(pct(&base, 0.99)),
            ms(pct(&with, 0.5)),
            ms(pct(&with, 0.99)),
            ratio(0.5),
            ratio(0.99),
        );
    }
    let loaded = engine.memory_prompt(&engine.deployment(&mem.id).await?, &text(3, 12)).await?;
    println!("a run's memory section: {} of {} memories, {} bytes", loaded.shown, loaded.total, loaded.section.len());
    compaction_overhead();
    engine.shutdown().await;
    drop(opened);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// One run on a fresh thread: submit to the model call's arrival.
async fn run_start(
    engine: &herm_engine::Engine,
    dep: &DeploymentId,
    model: &Instant0,
    tag: &str,
) -> anyhow::Result<Duration> {
    let thread = engine.create_thread(dep, None).await?.id;
    let t0 = Instant::now();
    round(engine, dep, model, &[thread], tag).await?;
    let at = model.first_call(&format!("{tag} 0")).ok_or_else(|| anyhow::anyhow!("no model call for {tag}"))?;
    Ok(at - t0)
}

/// Times `f` `n` times; sorted.
fn time(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    let mut out: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    out.sort();
    out
}

/// A thread of `turns` exchanges: a message, a tool call with its result, an answer.
fn long_log(turns: usize) -> (Vec<Event>, RunId) {
    let (dep, thread, run) = (DeploymentId::new(), ThreadId::new(), RunId::new());
    let mut log = Vec::new();
    let mut push = |kind: EventKind| {
        let seq = log.len() as i64 + 1;
        log.push(Event {
            id: EventId::new(),
            deployment_id: dep.clone(),
            thread_id: thread.clone(),
            run_id: Some(run.clone()),
            sequence: Sequence(seq),
            deployment_sequence: DeploymentSeq(seq),
            created_at: now(),
            kind,
        });
    };
    let call = |tool_calls| EventKind::ModelCall {
        model: "m".into(),
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: 0.0,
        duration_ms: 0,
        tool_calls,
        stop_reason: None,
        context_sequence: None,
        estimated: false,
    };
    push(EventKind::RunStatus {
        status: RunStatus::Running,
        kind: RunKind::User,
        trigger: None,
        error: None,
        usage: None,
    });
    for i in 0..turns {
        push(EventKind::Message {
            role: Role::User,
            content: format!("turn {i}: {}", text(i, 60)),
            attachments: vec![],
        });
        let c = RequestedToolCall {
            tool_use_id: format!("t{i}"),
            tool: "lookup".into(),
            arguments: json!({"q": text(i, 3)}),
        };
        push(call(vec![c]));
        push(EventKind::ToolCall {
            tool_use_id: format!("t{i}"),
            tool: "lookup".into(),
            origin: "http".into(),
            arguments: json!({}),
        });
        push(EventKind::ToolResult {
            tool_use_id: format!("t{i}"),
            tool: "lookup".into(),
            result: text(i + 1, 80),
            is_error: false,
            duration_ms: 1,
            attachments: Vec::new(),
            outcome: ToolOutcome::Ok,
        });
        push(EventKind::AgentMessage { content: text(i + 2, 40) });
        push(call(vec![]));
    }
    (log, run)
}

fn compaction_overhead() {
    for turns in [100, 500] {
        let (log, run) = long_log(turns);
        let n = 200;
        let build = time(n, || {
            std::hint::black_box(history::build(&log, &run));
        });
        let messages = history::build(&log, &run);
        let estimate = time(n, || {
            std::hint::black_box(compaction::messages_tokens(&messages));
        });
        let plan = time(n, || {
            let turns = history::compacted(history::turns(&log, &run), history::latest_compaction(&log));
            if let Some((cut, _)) = compaction::choose_cut(&turns, 30_000) {
                std::hint::black_box(compaction::stages(&turns, cut, 100_000));
            }
        });
        let per = |d: &[Duration]| pct(d, 0.5).as_secs_f64() / pct(&build, 0.5).as_secs_f64().max(1e-12);
        println!(
            "compaction, {turns} exchanges ({} events): history build p50 {} | threshold check p50 {} ({:.2}x) | \
             planning one compaction p50 {} p99 {} ({:.2}x)",
            log.len(),
            ms(pct(&build, 0.5)),
            ms(pct(&estimate, 0.5)),
            per(&estimate),
            ms(pct(&plan, 0.5)),
            ms(pct(&plan, 0.99)),
            per(&plan),
        );
    }
}
