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
