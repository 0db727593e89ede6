//! `herm bench --store postgres [--nodes N]`: the step benchmark on PostgreSQL, in a fresh
//! database (dropped afterwards) shared by N in-process engines, each a node with its own
//! pool, node id and workers; the baseline is PostgreSQL's own single-row commit, measured in
//! the same run on the same server.

use crate::bench::{BenchArgs, Instant0, measure, ms, open_node, pct};
use anyhow::Context;
use herm_types::EventId;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The server `scripts/postgres.sh` sets up.
const DEFAULT_URL: &str = "postgres://herm:herm@127.0.0.1:5432/herm";

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.context("cannot connect to PostgreSQL")?;
    tokio::spawn(conn);
    Ok(client)
}

/// Baseline: one durable single-row commit (autocommit INSERT, `synchronous_commit` as the
/// server has it).
async fn baseline(url: &str, n: usize) -> anyhow::Result<Vec<Duration>> {
    let c = connect(url).await?;
    c.batch_execute("CREATE TABLE baseline (id BIGINT PRIMARY KEY, v TEXT)").await?;
    let st = c.prepare("INSERT INTO baseline (id, v) VALUES ($1, 'x')").await?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        c.execute(&st, &[&(i as i64)]).await?;
        out.push(t.elapsed());
    }
    out.sort();
    Ok(out)
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let server = args
        .database_url
        .clone()
        .or_else(|| std::env::var("HERM_BENCH_DATABASE_URL").ok())
        .unwrap_or_else(|| DEFAULT_URL.into());
    let name = format!("herm_bench_{}", EventId::new().as_str().trim_start_matches("evt_").to_lowercase());
    let admin = connect(&server).await?;
    admin.batch_execute(&format!("CREATE DATABASE {name}")).await.context("cannot create the benchmark database")?;
    let (head, _) = server.rsplit_once('/').context("the database URL names no database")?;
    let url = format!("{head}/{name}");
    let out = measure_nodes(args, &url).await;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    out
}

async fn measure_nodes(args: &BenchArgs, url: &str) -> anyhow::Result<()> {
    let nodes = args.nodes.max(1);
    let model = Arc::new(Instant0::new(args.steps_per_run));
    let key = std::env::temp_dir().join(format!("herm-bench-key-{}", EventId::new()));
    let mut opened = Vec::new();
    for i in 0..nodes {
        let (o, dir) = open_node("bench-pg", model.clone(), |cfg| {
            cfg.storage.database_url = Some(url.to_owned());
            cfg.storage.master_key_file = Some(key.clone());
            cfg.engine.node_id = format!("bench-{i}");
        })
        .await?;
        opened.push((o, dir));
    }
    let engines: Vec<_> = opened.iter().map(|(o, _)| o.engine.clone()).collect();
    let base = baseline(url, 300).await?;
    println!(
        "herm bench — steps of {} model calls per run, PostgreSQL shared by {nodes} node(s) in this process",
        args.steps_per_run
    );
    println!("baseline: one durable PostgreSQL commit p50 {} p99 {}", ms(pct(&base, 0.5)), ms(pct(&base, 0.99)));
    let out = measure(&engines, &model, args, &base).await;
    for e in &engines {
        e.shutdown().await;
    }
    for (o, dir) in opened {
        drop(o);
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::remove_file(&key);
    out
}
