//! Runs the store conformance suite against the PostgreSQL store, each test in a schema of
//! its own in the database `HERM_TEST_DATABASE_URL` names (`scripts/postgres.sh --test` makes
//! one and prints its URL; `scripts/test.sh` does this). Without it the tests say so and pass,
//! unless `HERM_REQUIRE_POSTGRES=1` (set by `scripts/test.sh`), where its absence fails them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
use herm_store::bus::Bus;
use herm_store::postgres::PostgresStore;
use std::sync::Arc;
use suite::Fixture;

/// A fresh schema in the test database, and its connection settings.
pub async fn schema() -> Option<tokio_postgres::Config> {
    let Ok(url) = std::env::var("HERM_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("HERM_REQUIRE_POSTGRES").is_err(),
            "HERM_TEST_DATABASE_URL is not set: run `scripts/postgres.sh --test` and export what it prints"
        );
        eprintln!("skipped: HERM_TEST_DATABASE_URL is not set");
        return None;
    };
    let mut cfg: tokio_postgres::Config = url.parse().unwrap();
    let name = format!("t_{:016x}", rand::random::<u64>());
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute(&format!("CREATE SCHEMA {name}")).await.unwrap();
    cfg.options(format!("-c search_path={name}"));
    Some(cfg)
}

async fn fixture() -> Option<Fixture> {
    let cfg = schema().await?;
    let bus = Bus::new();
    let store = PostgresStore::connect_with(cfg, bus.clone()).await.unwrap();
    Some(Fixture { store: Arc::new(store), bus })
}

macro_rules! suite_tests {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            if let Some(f) = fixture().await {
                suite::$name(f).await;
            }
        }
    )*};
}

every_suite_test!(suite_tests);

/// Live frames (token deltas) published on one node reach SSE readers of another through the
/// database, joined but complete and in order, and never come back to the node that sent them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_frames_reach_the_other_nodes_once() {
    use herm_types::event::{EphemeralFrame, EventKind, LiveFrame};
    use herm_types::{DeploymentId, EventId, RunId, ThreadId};
    let Some(cfg) = schema().await else { return };
    let (bus_a, bus_b) = (Bus::new(), Bus::new());
    let _a = PostgresStore::connect_with(cfg.clone(), bus_a.clone()).await.unwrap();
    let _b = PostgresStore::connect_with(cfg, bus_b.clone()).await.unwrap();
    let (dep, thread, run, msg) = (DeploymentId::new(), ThreadId::new(), RunId::new(), EventId::new());
    let (mut on_a, mut on_b) = (bus_a.subscribe(&dep), bus_b.subscribe(&dep));
    // Both listening connections are up once a probe frame crosses.
    let frame = |delta: &str| {
        LiveFrame::Ephemeral(Arc::new(EphemeralFrame {
            deployment_id: dep.clone(),
            thread_id: thread.clone(),
            run_id: Some(run.clone()),
            kind: EventKind::Token { delta: delta.into(), message_id: Some(msg.clone()) },
        }))
    };
    let text_of = |f: &LiveFrame| match f {
        LiveFrame::Ephemeral(e) => match &e.kind {
            EventKind::Token { delta, .. } => delta.clone(),
            other => panic!("{other:?}"),
        },
        LiveFrame::Committed(e) => panic!("{e:?}"),
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        bus_a.publish(&dep, frame("."));
        match tokio::time::timeout(std::time::Duration::from_millis(300), on_b.recv()).await {
            Ok(Ok(f)) => {
                assert_eq!(text_of(&f), ".");
                break;
            }
            _ => assert!(tokio::time::Instant::now() < deadline, "no live frame crossed"),
        }
    }
    // Probes still in flight land before the measured frames.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    while on_b.try_recv().is_ok() {}
    while on_a.try_recv().is_ok() {}
    let words: Vec<String> = (0..300).map(|i| format!("w{i} ")).collect();
    for w in &words {
        bus_a.publish(&dep, frame(w));
    }
    let want: String = words.concat();
    let mut got = String::new();
    while got.len() < want.len() {
        let f = tokio::time::timeout(std::time::Duration::from_secs(5), on_b.recv()).await.unwrap().unwrap();
        got.push_str(&text_of(&f));
    }
    assert_eq!(got, want);
    // Node a's own reader saw each frame once, as published: nothing came back.
    let mut own = Vec::new();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    while let Ok(f) = on_a.try_recv() {
        own.push(text_of(&f));
    }
    assert_eq!(own, words);
}

/// Readers on every node see every commit, but each node's tap (its metrics and spans) sees
/// only the commits it made, once each: a cluster's counts add up, no span is exported twice.
/// Appends race on two nodes into one deployment, so each node also publishes some of its own
/// events from the log before its append reports them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_taps_only_its_own_commits_while_readers_see_all() {
    use herm_store::*;
    use herm_types::event::LiveFrame;
    let Some(Nodes { a, b, bus_a, bus_b, tapped, threads }) = two_nodes().await else { return };
    let d = suite::deployment(a.as_ref()).await;
    let (mut on_a, mut on_b) = (bus_a.subscribe(&d.id), bus_b.subscribe(&d.id));
    for t in &threads {
        a.create_thread(NewThread { id: t.clone(), deployment_id: d.id.clone(), title: None }).await.unwrap();
    }
    let by_node = race(&[a.clone(), b.clone()], &threads, 0..120).await;
    for rx in [&mut on_a, &mut on_b] {
        let mut got = Vec::new();
        while got.len() < 120 {
            match tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await.unwrap().unwrap() {
                LiveFrame::Committed(e) => got.push(e.deployment_sequence.0),
                LiveFrame::Ephemeral(_) => {}
            }
        }
        assert_eq!(got, (1..=120).collect::<Vec<i64>>(), "every reader sees every commit once, in order");
    }
    for (node, seen) in tapped.iter().enumerate() {
        let seen = seen.lock();
        assert_eq!(seen.len(), 60, "node {node} taps its own 60 commits and no other");
        for id in &by_node[node] {
            assert_eq!(seen.get(id), Some(&1), "node {node} taps its commit {id} once");
        }
    }
}

/// A node where nobody reads a deployment passes other nodes' commits without reading them,
/// yet taps its own, once each; a reader that comes then sees every later commit, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_nobody_reads_on_taps_its_own_commits_and_a_later_reader_misses_nothing() {
    use herm_store::*;
    use std::time::Duration;
    let Some(Nodes { a, b, bus_a, bus_b, tapped, threads }) = two_nodes().await else { return };
    let d = suite::deployment(a.as_ref()).await;
    for t in &threads {
        a.create_thread(NewThread { id: t.clone(), deployment_id: d.id.clone(), title: None }).await.unwrap();
    }
    let nodes = [a.clone(), b.clone()];
    // Only node a has a reader.
    let mut on_a = bus_a.subscribe(&d.id);
    let first = race(&nodes, &threads, 0..60).await;
    for want in 1..=60 {
        assert_eq!(next_commit(&mut on_a).await, want);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tapped[1].lock().len() < 30 {
        assert!(tokio::time::Instant::now() < deadline, "node b's own commits never reached its tap");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Now b has a reader too: it sees every later commit, in order (and perhaps a few of the
    // first ones, from notifications it had not handled yet, which a reader skips by position).
    let mut on_b = bus_b.subscribe(&d.id);
    let second = race(&nodes, &threads, 60..120).await;
    for want in 61..=120 {
        assert_eq!(next_commit(&mut on_a).await, want);
    }
    let mut seen = vec![next_commit(&mut on_b).await];
    while *seen.last().unwrap() < 120 {
        seen.push(next_commit(&mut on_b).await);
    }
    assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
    assert!(seen[0] <= 61, "{seen:?}");
    for (node, seen) in tapped.iter().enumerate() {
        let seen = seen.lock();
        assert_eq!(seen.len(), 60, "node {node} taps its own 60 commits and no other");
        for id in first[node].iter().chain(&second[node]) {
            assert_eq!(seen.get(id), Some(&1), "node {node} taps its commit {id} once");
        }
    }
}

/// The deployment position of the next committed event `rx` receives.
async fn next_commit(rx: &mut tokio::sync::broadcast::Receiver<herm_types::event::LiveFrame>) -> i64 {
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await.unwrap().unwrap() {
            herm_types::event::LiveFrame::Committed(e) => return e.deployment_sequence.0,
            herm_types::event::LiveFrame::Ephemeral(_) => {}
        }
    }
}

/// Two nodes on one fresh schema, each counting the committed events its tap sees, and four
/// thread ids (not yet made).
struct Nodes {
    a: Arc<PostgresStore>,
    b: Arc<PostgresStore>,
    bus_a: Bus,
    bus_b: Bus,
    tapped: Vec<Arc<parking_lot::Mutex<std::collections::HashMap<herm_types::EventId, usize>>>>,
    threads: Vec<herm_types::ThreadId>,
}

async fn two_nodes() -> Option<Nodes> {
    let cfg = schema().await?;
    let (bus_a, bus_b) = (Bus::new(), Bus::new());
    let a = Arc::new(PostgresStore::connect_with(cfg.clone(), bus_a.clone()).await.unwrap());
    let b = Arc::new(PostgresStore::connect_with(cfg, bus_b.clone()).await.unwrap());
    let tapped: Vec<Arc<parking_lot::Mutex<std::collections::HashMap<herm_types::EventId, usize>>>> =
        vec![Default::default(), Default::default()];
    for (bus, seen) in [(&bus_a, &tapped[0]), (&bus_b, &tapped[1])] {
        let seen = seen.clone();
        bus.set_tap(Arc::new(move |_, f| {
            if let herm_types::event::LiveFrame::Committed(e) = f {
                *seen.lock().entry(e.id.clone()).or_default() += 1;
            }
        }));
    }
    let threads = (0..4).map(|_| herm_types::ThreadId::new()).collect();
    Some(Nodes { a, b, bus_a, bus_b, tapped, threads })
}

/// Appends numbered `range`, racing: even ones on the first node, odd ones on the second,
/// round the threads; the event ids each node committed.
async fn race(
    nodes: &[Arc<PostgresStore>; 2],
    threads: &[herm_types::ThreadId],
    range: std::ops::Range<usize>,
) -> [Vec<herm_types::EventId>; 2] {
    use herm_store::{Append, LogStore};
    use herm_types::{EventKind, NewEvent};
    let mut tasks = Vec::new();
    for i in range {
        let store = nodes[i % 2].clone();
        let t = threads[i % threads.len()].clone();
        tasks.push(tokio::spawn(async move {
            let ev = NewEvent::new(None, EventKind::Steer { message: format!("m{i}") });
            (i % 2, store.append(Append::new(t, vec![ev])).await.unwrap()[0].id.clone())
        }));
    }
    let mut by_node: [Vec<herm_types::EventId>; 2] = [vec![], vec![]];
    for t in tasks {
        let (node, id) = t.await.unwrap();
        by_node[node].push(id);
    }
    by_node
}
