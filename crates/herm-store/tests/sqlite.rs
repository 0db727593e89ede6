//! Runs the store conformance suite against the SQLite store, plus SQLite-specific checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
use herm_store::bus::Bus;
use herm_store::sqlite::SqliteStore;
use std::sync::Arc;
use suite::Fixture;

fn fixture(dir: &tempfile::TempDir) -> Fixture {
    let bus = Bus::new();
    let store = SqliteStore::open(&dir.path().join("herm.db"), bus.clone()).unwrap();
    Fixture { store: Arc::new(store), bus }
}

macro_rules! suite_tests {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let dir = tempfile::tempdir().unwrap();
            suite::$name(fixture(&dir)).await;
        }
    )*};
}

suite_tests!(
    sequences_are_contiguous_and_published_in_commit_order,
    conditions_refuse_atomically,
    projections_follow_the_log,
    leases_fence_stale_writers,
    idempotency_keys,
    deleting_a_deployment_stops_its_runs,
    secrets_keys_and_providers,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopen_and_wal_full_sync_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let (d, run) = {
        let f = fixture(&dir);
        let d = suite::deployment(f.store.as_ref()).await;
        let run = suite::start_run(f.store.as_ref(), &d.default_thread_id).await;
        (d, run)
    };
    let f = fixture(&dir);
    let log = f.store.thread_events(&d.default_thread_id, 0, 10).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(f.store.get_run(&run).await.unwrap().unwrap().status, herm_types::RunStatus::Running);
    let c = rusqlite::Connection::open(dir.path().join("herm.db")).unwrap();
    let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}
