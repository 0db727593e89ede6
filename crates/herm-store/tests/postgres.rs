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

suite_tests!(
    sequences_are_contiguous_and_published_in_commit_order,
    conditions_refuse_atomically,
    projections_follow_the_log,
    leases_fence_stale_writers,
    idempotency_keys,
    deleting_a_deployment_stops_its_runs,
    secrets_keys_and_providers,
    spec_updates_are_conditional_on_the_revision,
    timers_fire_once_per_claim,
    memories_change_conditionally_and_purge_completely,
    run_kinds_and_costs,
    proactive_records_fire_once_and_change_conditionally,
    attachments_are_stored_once_and_leave_with_their_thread,
    webhooks_keep_an_outbox_and_record_attempts_once,
    documents_are_versioned_and_conditional,
);
