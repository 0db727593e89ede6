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
