//! The single writer thread with group commit.
//!
//! Every write is a job sent to one thread that owns the write connection. The thread takes
//! all jobs waiting, runs each inside its own SAVEPOINT (a failing job rolls back alone),
//! commits once, and then completes the jobs in order. With `synchronous=FULL` one fsync thus
//! covers many concurrent runs' appends, and after-commit hooks (publishing to the bus) run
//! in commit order. A job alone in its batch (the usual case at low load) is the
//! transaction itself, without a savepoint.

use crate::{Error, Result};
use rusqlite::Connection;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// What a job leaves for after the commit: called with the commit's outcome.
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A job runs against the connection, or with `None` when the transaction could not begin.
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Completion) + Send>;

const MAX_BATCH: usize = 1024;

#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    pub(crate) fn spawn(conn: Connection) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new().name("herm-sqlite-writer".into()).spawn(move || run(conn, rx))?;
        Ok(Self { tx })
    }

    /// Runs `f` in the next group commit; `after` runs on the writer thread once committed.
    pub(crate) async fn write<T, F, A>(&self, f: F, after: A) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        A: FnOnce(&T) + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let r = match conn {
                Some(c) => f(c),
                None => Err(Error::Closed),
            };
            let ok = r.is_ok();
            let done: Completion = Box::new(move |commit| {
                let out = match (r, commit) {
                    (Ok(v), Ok(())) => {
                        after(&v);
                        Ok(v)
                    }
                    (Ok(_), Err(e)) => Err(Error::Corrupt(format!("commit failed: {e}"))),
                    (Err(e), _) => Err(e),
                };
                // The caller may have gone away (request cancelled); the write stands.
                let _ = reply.send(out);
            });
            (ok, done)
        });
        self.tx.send(job).map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        // A rollback that failed earlier would leave a transaction open and refuse every
        // later BEGIN: end it first.
        if !conn.is_autocommit()
            && let Err(e) = conn.execute_batch("ROLLBACK")
        {
            tracing::error!(error = %e, "a transaction left open could not be rolled back");
        }
        if let Err(e) = exec(&conn, "BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "cannot begin a write transaction");
            for job in batch {
                let (_, done) = job(None);
                done(Err(e.to_string()));
            }
            continue;
        }
        let completions = match <[Job; 1]>::try_from(batch) {
            Ok([job]) => vec![solo(&conn, job)],
            Err(batch) => grouped(&conn, batch),
        };
        for (done, outcome) in completions {
            done(outcome);
        }
    }
}

/// What a job left to do after the commit, and the outcome to give it.
type Finish = (Completion, Result<(), String>);

/// A lone job is the whole transaction: it commits, or (if it failed) rolls back, without
/// a savepoint's sub-journal.
fn solo(conn: &Connection, job: Job) -> Finish {
    let (ok, done) = job(Some(conn));
    let outcome = if ok {
        commit(conn)
    } else {
        // The job reports its own error; what it wrote before failing is undone.
        if let Err(e) = exec(conn, "ROLLBACK") {
            tracing::error!(error = %e, "rollback of a failed write failed");
        }
        Ok(())
    };
    (done, outcome)
}

/// Each job in its own savepoint (a failing one rolls back alone), then one commit.
fn grouped(conn: &Connection, batch: Vec<Job>) -> Vec<Finish> {
    let mut completions = Vec::with_capacity(batch.len());
    for job in batch {
        let sp = exec(conn, "SAVEPOINT job");
        let (ok, done) = job(Some(conn));
        let end = if ok && sp.is_ok() {
            exec(conn, "RELEASE job")
        } else {
            exec(conn, "ROLLBACK TO job").and_then(|_| exec(conn, "RELEASE job"))
        };
        if let Err(e) = end {
            tracing::error!(error = %e, "savepoint handling failed");
        }
        completions.push(done);
    }
    let outcome = commit(conn);
    completions.into_iter().map(|done| (done, outcome.clone())).collect()
}

/// Commits the open transaction; on failure rolls it back and says why.
fn commit(conn: &Connection) -> Result<(), String> {
    let commit = exec(conn, "COMMIT").map(|_| ()).map_err(|e| e.to_string());
    if let Err(e) = &commit {
        tracing::error!(error = %e, "group commit failed; its jobs report the failure");
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::error!(error = %e, "rollback after a failed commit failed");
        }
    }
    commit
}

/// Runs a fixed statement through the statement cache (no re-parse per job).
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute([])
}
