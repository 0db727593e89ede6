//! The embedded SQLite store: one writer thread with group commit (see [`writer`]), a
//! checkpointer thread (see [`checkpointer`]) and a small pool of read connections used from
//! blocking tasks.

mod access;
mod append;
pub(crate) mod attachments;
mod checkpointer;
mod config;
pub(crate) mod documents;
mod heads;
mod log;
pub(crate) mod memory;
pub(crate) mod proactive;
pub(crate) mod rows;
mod schema;
pub(crate) mod timers;
pub(crate) mod webhooks;
mod writer;

use crate::bus::Bus;
use crate::{Error, Result};
use chrono::{DateTime, TimeZone, Utc};
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use writer::Writer;

/// The driver's errors stay inside this module: callers see backend-neutral ones. A busy
/// or locked database and a constraint violation keep their message, never a bound value.
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Database(e.to_string())
    }
}

/// Microseconds since the Unix epoch, the storage form of every timestamp.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

pub(crate) fn now_micros() -> i64 {
    micros(herm_types::now())
}

/// The SQLite implementation of [`crate::Store`].
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

/// Read connections kept open; reads beyond this wait for one instead of opening more.
const READERS: usize = 8;

struct Inner {
    path: PathBuf,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
    /// One permit per read connection.
    read_permits: tokio::sync::Semaphore,
    bus: Bus,
    /// Each thread's last sequence, set after every commit (see [`heads`]).
    heads: heads::Heads,
    /// Where attachments' bytes live: `blobs/` beside the database.
    blobs: PathBuf,
    /// Held while a deployment's bytes are written or removed (see `attachments`), one lock
    /// per stripe of deployments.
    blob_locks: Vec<tokio::sync::Mutex<()>>,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path, bus: Bus) -> Result<Self> {
        let mut conn = Connection::open(path)?;
        schema::configure(&conn)?;
        schema::migrate(&mut conn)?;
        let blobs = path.parent().unwrap_or(Path::new(".")).join("blobs");
        let swept = attachments::sweep_orphans(&conn, &blobs)?;
        if swept > 0 {
            tracing::info!(files = swept, "removed attachment files no record holds");
        }
        checkpointer::attach(&mut conn, path, Default::default())?;
        let writer = Writer::spawn(conn)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer,
                readers: Mutex::new(Vec::new()),
                read_permits: tokio::sync::Semaphore::new(READERS),
                bus,
                heads: Default::default(),
                blobs,
                blob_locks: (0..16).map(|_| tokio::sync::Mutex::new(())).collect(),
            }),
        })
    }

    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    /// Runs a read on a pooled connection in a blocking task.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        // Holding a permit means a pooled connection is free or may be opened: the pool never
        // grows past READERS, so a burst of reads queues instead of reopening the database.
        let _permit = self.inner.read_permits.acquire().await.map_err(|_| Error::Closed)?;
        tokio::task::spawn_blocking(move || {
            let conn = match inner.readers.lock().pop() {
                Some(c) => c,
                None => {
                    let c = Connection::open_with_flags(
                        &inner.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    c.execute_batch("PRAGMA busy_timeout=5000;")?;
                    schema::tune(&c)?;
                    c
                }
            };
            let out = f(&conn);
            inner.readers.lock().push(conn);
            out
        })
        .await
        .map_err(|_| Error::Closed)?
    }

    /// Copies the journal into the database and truncates it, so an older page image that
    /// held a purged memory's text is nowhere in the data directory afterwards (the writer
    /// runs with `secure_delete`, so the freed cells themselves are zeroed).
    pub(crate) async fn checkpoint(&self) -> Result<()> {
        let path = self.inner.path.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let c = Connection::open(&path)?;
            c.execute_batch("PRAGMA busy_timeout=5000;")?;
            let busy: i64 = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
            if busy != 0 {
                return Err(Error::Database("the journal could not be checkpointed (busy)".into()));
            }
            Ok(())
        })
        .await
        .map_err(|_| Error::Closed)?
    }

    /// Runs a write in the next group commit.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.inner.writer.write(f, |_| {}).await
    }
}
