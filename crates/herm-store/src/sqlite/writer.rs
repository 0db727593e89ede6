//! The single writer thread with group commit.
//!
//! Every write is a job sent to one thread that owns the write connection. The thread takes
//! all jobs waiting, runs each inside its own SAVEPOINT (a failing job rolls back alone),
//! commits once, and then completes the jobs in order. With `synchronous=FULL` one fsync thus
//! covers many concurrent runs' appends, and after-commit hooks (publishing to the bus) run
//! in commit order. A job alone in its batch (the usual case at low load) is the
//! transaction itself, without a savepoint.
//!
//! A *checked* job ([`Writer::write_checked`]) makes every check that can refuse it before
//! its first write, so it needs no savepoint (whose sub-journal copies each page the job
//! touches that the batch already changed). Should one fail after writing all the same (a
//! database fault), the batch so far is rolled back and its jobs fail with it; the jobs
//! after it run in a new transaction.

use crate::{Error, Result};
use rusqlite::Connection;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// What a job leaves for after the commit: called with the commit's outcome.
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A job runs against the connection, or with `None` when the transaction could not begin.
type Run = Box<dyn FnOnce(Option<&Connection>) -> (bool, Completion) + Send>;

struct Job {
    run: Run,
    /// Refuses before its first write (see the module's documentation): no savepoint.
    checked: bool,
}

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
        self.submit(f, after, false).await
    }

    /// [`Writer::write`] for an `f` that makes every check that can refuse it before it
    /// writes anything: it runs without a savepoint of its own.
    pub(crate) async fn write_checked<T, F, A>(&self, f: F, after: A) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        A: FnOnce(&T) + Send + 'static,
    {
        self.submit(f, after, true).await
    }

    async fn submit<T, F, A>(&self, f: F, after: A, checked: bool) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        A: FnOnce(&T) + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        // The caller may have gone away (request cancelled); the write stands.
        let job = Job::new(f, after, checked, move |out| drop(reply.send(out)));
        self.tx.send(job).map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

impl Job {
    /// A job running `f`; once its transaction ends, `after` runs if it committed and
    /// `reply` is given the outcome.
    fn new<T, F, A, R>(f: F, after: A, checked: bool, reply: R) -> Self
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        A: FnOnce(&T) + Send + 'static,
        R: FnOnce(Result<T>) + Send + 'static,
    {
        let run: Run = Box::new(move |conn| {
            let r = match conn {
                Some(c) => f(c),
                None => Err(Error::Closed),
            };
            let ok = r.is_ok();
            let done: Completion = Box::new(move |commit| {
                reply(match (r, commit) {
                    (Ok(v), Ok(())) => {
                        after(&v);
                        Ok(v)
                    }
                    (Ok(_), Err(e)) => Err(Error::Corrupt(format!("commit failed: {e}"))),
                    (Err(e), _) => Err(e),
                })
            });
            (ok, done)
        });
        Self { run, checked }
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
        transaction(&conn, batch);
    }
}

/// Runs `batch` in one transaction (and what a failed checked job left, in the next).
fn transaction(conn: &Connection, batch: Vec<Job>) {
    // A rollback that failed earlier would leave a transaction open and refuse every later
    // BEGIN: end it first.
    if !conn.is_autocommit()
        && let Err(e) = conn.execute_batch("ROLLBACK")
    {
        tracing::error!(error = %e, "a transaction left open could not be rolled back");
    }
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        tracing::error!(error = %e, "cannot begin a write transaction");
        for job in batch {
            let (_, done) = (job.run)(None);
            done(Err(e.to_string()));
        }
        return;
    }
    let (completions, rest) = match <[Job; 1]>::try_from(batch) {
        Ok([job]) => (vec![solo(conn, job)], Vec::new()),
        Err(batch) => grouped(conn, batch),
    };
    for (done, outcome) in completions {
        done(outcome);
    }
    if !rest.is_empty() {
        transaction(conn, rest);
    }
}

/// What a job left to do after the commit, and the outcome to give it.
type Finish = (Completion, Result<(), String>);

/// A lone job is the whole transaction: it commits, or (if it failed) rolls back, without
/// a savepoint's sub-journal.
fn solo(conn: &Connection, job: Job) -> Finish {
    let (ok, done) = (job.run)(Some(conn));
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

/// Each job in its own savepoint (a failing one rolls back alone) unless it is checked, then
/// one commit. A checked job that fails after writing ends the transaction there: it is
/// rolled back, and the jobs not yet run are returned for the next one.
fn grouped(conn: &Connection, batch: Vec<Job>) -> (Vec<Finish>, Vec<Job>) {
    let mut completions = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    while let Some(job) = jobs.next() {
        if job.checked {
            let before = conn.total_changes();
            let (ok, done) = (job.run)(Some(conn));
            completions.push(done);
            if !ok && conn.total_changes() != before {
                return (rolled_back(conn, completions), jobs.collect());
            }
            continue;
        }
        let sp = exec(conn, "SAVEPOINT job");
        let (ok, done) = (job.run)(Some(conn));
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
    (completions.into_iter().map(|done| (done, outcome.clone())).collect(), Vec::new())
}

/// Rolls back a group a checked job left half-written; every job run so far fails with it.
fn rolled_back(conn: &Connection, completions: Vec<Completion>) -> Vec<Finish> {
    let why = "a write of the same group commit failed part-way; the group was rolled back";
    tracing::error!("{why}");
    if let Err(e) = exec(conn, "ROLLBACK") {
        tracing::error!(error = %e, "rollback of a failed group failed");
    }
    completions.into_iter().map(|done| (done, Err(why.to_owned()))).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use std::sync::Arc;

    type Outcomes = Arc<Mutex<Vec<(&'static str, bool)>>>;

    /// A job named `name` inserting `ids` in order (the table refuses a repeated id).
    fn insert(name: &'static str, ids: &'static [i64], checked: bool, seen: &Outcomes) -> Job {
        let seen = seen.clone();
        let f = move |c: &Connection| -> Result<()> {
            for id in ids {
                c.execute("INSERT INTO t (id) VALUES (?1)", [id])?;
            }
            Ok(())
        };
        Job::new(f, |_| {}, checked, move |out| seen.lock().push((name, out.is_ok())))
    }

    fn setup() -> (tempfile::TempDir, Connection, Outcomes) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY);").unwrap();
        (dir, conn, Default::default())
    }

    fn rows(c: &Connection) -> Vec<i64> {
        let mut s = c.prepare("SELECT id FROM t ORDER BY id").unwrap();
        s.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    }

    #[test]
    fn jobs_of_a_group_fail_alone_when_they_fail_before_writing_or_in_a_savepoint() {
        let (_dir, c, seen) = setup();
        let batch = vec![
            insert("a", &[1], true, &seen),
            // Refused at its first statement: it wrote nothing.
            insert("b", &[1], true, &seen),
            // Unchecked, it wrote 2 before failing: its savepoint takes 2 back.
            insert("c", &[2, 1], false, &seen),
            insert("d", &[3], true, &seen),
        ];
        transaction(&c, batch);
        assert_eq!(rows(&c), vec![1, 3]);
        assert_eq!(*seen.lock(), vec![("a", true), ("b", false), ("c", false), ("d", true)]);
        assert!(c.is_autocommit());
    }

    #[test]
    fn a_checked_job_failing_after_it_wrote_rolls_its_group_back_and_the_rest_commit() {
        let (_dir, c, seen) = setup();
        let batch = vec![
            insert("a", &[1], true, &seen),
            insert("b", &[2, 1], true, &seen),
            insert("c", &[3], true, &seen),
            insert("d", &[4], false, &seen),
        ];
        transaction(&c, batch);
        // Nothing of a or b stands (a said so: it failed too); c and d committed after.
        assert_eq!(rows(&c), vec![3, 4]);
        assert_eq!(*seen.lock(), vec![("a", false), ("b", false), ("c", true), ("d", true)]);
        assert!(c.is_autocommit());
    }
}
