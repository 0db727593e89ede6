//! The PostgreSQL store, for many herm nodes sharing one database: a pooled async client
//! (deadpool over tokio-postgres), migrations applied under an advisory lock (nodes may start
//! together), and the same records, positions and conditions as the SQLite store, which the
//! generic suite holds both to.
//!
//! Concurrency is PostgreSQL's: writes run at READ COMMITTED and take the row locks they need
//! (an append locks its thread, then its deployment's sequence row, so positions are gap-free
//! and commit order is sequence order); conditions are part of the statements that write.
//! Leases and their expiry are judged by the database's clock, so nodes' clocks need not
//! agree. Committed events reach this node's bus through [`fanout`], which also publishes
//! what other nodes commit.

mod access;
mod append;
mod attachments;
mod config;
mod documents;
pub mod fanout;
mod live;
mod log;
mod memory;
mod nodes;
mod proactive;
mod schema;
mod timers;
mod webhooks;

use crate::bus::Bus;
use crate::{Error, Result};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use std::sync::Arc;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// The driver's errors stay inside this module. Only the SQLSTATE and the server's message
/// are kept: a server's detail line can quote a row's values.
impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => Error::Database(format!("{} ({})", db.message(), db.code().code())),
            None => Error::Database(format!("postgres: {}", first_line(&e.to_string()))),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            e => Error::Database(format!("postgres pool: {}", first_line(&e.to_string()))),
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// Connections a node keeps open to the database.
const POOL_SIZE: usize = 16;

/// Reads a row's columns, in order, into the tuple the record conversion expects.
macro_rules! cols {
    ($r:expr; $($i:tt),+) => {( $( $r.try_get($i)?, )+ )};
}
pub(crate) use cols;

/// The PostgreSQL implementation of [`crate::Store`].
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    bus: Bus,
    fanout: fanout::Fanout,
    /// What marks this node's live frames (see [`live`]).
    origin: String,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`), migrates, and starts
    /// listening for other nodes' commits.
    pub async fn connect(url: &str, bus: Bus) -> Result<Self> {
        let cfg: tokio_postgres::Config =
            url.parse().map_err(|_| Error::Database("the database URL does not parse".into()))?;
        Self::connect_with(cfg, bus).await
    }

    /// Like [`Self::connect`], with a parsed configuration (a test's own schema, say).
    pub async fn connect_with(cfg: tokio_postgres::Config, bus: Bus) -> Result<Self> {
        let mgr = Manager::from_config(
            cfg.clone(),
            tokio_postgres::NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(mgr)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| Error::Database(format!("postgres pool: {e}")))?;
        {
            let mut c = pool.get().await?;
            schema::migrate(&mut c).await?;
        }
        let origin = live::origin();
        let store =
            Self { inner: Arc::new(Inner { pool, bus, fanout: fanout::Fanout::default(), origin: origin.clone() }) };
        live::start(&store, origin);
        fanout::listen(store.clone(), cfg);
        Ok(store)
    }

    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.inner.pool.get().await?)
    }
}

pub(crate) async fn rows<C: GenericClient, T>(
    c: &C,
    sql: &str,
    p: &[&(dyn ToSql + Sync)],
    f: impl Fn(&Row) -> Result<T>,
) -> Result<Vec<T>> {
    let st = c.prepare_cached(sql).await?;
    c.query(&st, p).await?.iter().map(f).collect()
}

pub(crate) async fn opt<C: GenericClient, T>(
    c: &C,
    sql: &str,
    p: &[&(dyn ToSql + Sync)],
    f: impl Fn(&Row) -> Result<T>,
) -> Result<Option<T>> {
    let st = c.prepare_cached(sql).await?;
    c.query_opt(&st, p).await?.as_ref().map(f).transpose()
}

/// One value of the first column of a query's single row.
pub(crate) async fn value<C: GenericClient, T: for<'a> tokio_postgres::types::FromSql<'a>>(
    c: &C,
    sql: &str,
    p: &[&(dyn ToSql + Sync)],
) -> Result<T> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query_one(&st, p).await?.try_get(0)?)
}

pub(crate) async fn exec<C: GenericClient>(c: &C, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<u64> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.execute(&st, p).await?)
}

/// The database's clock in milliseconds (leases are judged by it, never by a node's).
pub(crate) const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";
