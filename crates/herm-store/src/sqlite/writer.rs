//! The write connection with group commit, led by an idle caller or the writer thread.
//!
//! Every write is a job queued for the one write connection. Whoever leads takes all jobs
//! waiting, runs each inside its own SAVEPOINT (a failing job rolls back alone), commits
//! once, and then completes the jobs in order. With `synchronous=FULL` one fsync thus covers
//! many concurrent runs' appends, and after-commit hooks (publishing to the bus) run in
//! commit order, one leader at a time. A job alone in its batch (the usual case at low load)
//! is the transaction itself, without a savepoint.
//!
//! A caller whose job finds the connection idle and nothing queued, at low load (the last
//! transaction had one job, or the connection has been idle at least as long as it took:
//! there was nobody to batch with), leads that transaction on its own thread (as a blocking
//! section of a multi-threaded runtime): a write then costs no hand-off to another thread
//! and back, each of which cost about half a commit's time. Jobs that arrive while anyone
//! leads wait for the writer thread, which leads every batch after that until the queue is
//! empty, so under load (batches of several jobs) writes are batched as before and no
//! caller's thread is held for others' work.
//!
//! A *checked* job ([`Writer::write_checked`]) makes every check that can refuse it before
//! its first write, so it needs no savepoint (whose sub-journal copies each page the job
//! touches that the batch already changed). Should one fail after writing all the same (a
//! database fault), the batch so far is rolled back and its jobs fail with it; the jobs
//! after it run in a new transaction.

use crate::{Error, Result};
use parking_lot::{Condvar, Mutex};
use rusqlite::Connection;
use std::sync::Arc;
use std::time::{Duration, Instant};
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

/// The connection and the queue of jobs for it.
struct Shared {
    conn: Mutex<Connection>,
    queue: Mutex<Queue>,
    /// Wakes the writer thread: jobs wait and nobody leads, or the writer is closed.
    wake: Condvar,
}

struct Queue {
    jobs: Vec<Job>,
    /// Someone (a caller or the writer thread) is running a transaction.
    leading: bool,
    /// Every handle is gone: the writer thread ends once the queue is empty.
    closed: bool,
    /// When the last transaction ended, how long it took and how many jobs it had.
    idle_since: Instant,
    last_took: Duration,
    last_jobs: usize,
}

impl Queue {
    /// Whether writes come slower than they commit, so there is nobody to batch with: the
    /// last transaction had one job (nothing arrived while an earlier one committed), or
    /// the connection has been idle for at least as long as that transaction took.
    fn quiet(&self) -> bool {
        self.last_jobs <= 1 || self.idle_since.elapsed() >= self.last_took
    }
}

#[derive(Clone)]
pub(crate) struct Writer {
    shared: Arc<Shared>,
    /// Closes the writer when the last handle goes.
    _open: Arc<Open>,
}

struct Open(Arc<Shared>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.queue.lock().closed = true;
        self.0.wake.notify_one();
    }
}

impl Writer {
    pub(crate) fn spawn(conn: Connection) -> std::io::Result<Self> {
        let queue = Queue {
            jobs: Vec::new(),
            leading: false,
            closed: false,
            idle_since: Instant::now(),
            last_took: Duration::ZERO,
            last_jobs: 0,
        };
        let shared = Arc::new(Shared { conn: Mutex::new(conn), queue: Mutex::new(queue), wake: Condvar::new() });
        let thread = shared.clone();
        std::thread::Builder::new().name("herm-sqlite-writer".into()).spawn(move || run(&thread))?;
        Ok(Self { _open: Arc::new(Open(shared.clone())), shared })
    }

    /// Runs `f` in the next group commit; `after` runs once committed, in commit order.
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
        if let Some(job) = self.queue(job, may_block_here()) {
            tokio::task::block_in_place(|| self.shared.lead(vec![job]));
        }
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Queues `job`, or gives it back when the caller is to lead its transaction: the
    /// connection is idle and quiet (see [`Queue::quiet`]), nothing else waits, and the
    /// caller's thread may block.
    fn queue(&self, job: Job, may_block: bool) -> Option<Job> {
        let mut q = self.shared.queue.lock();
        if may_block && !q.leading && q.jobs.is_empty() && q.quiet() {
            q.leading = true;
            return Some(job);
        }
        q.jobs.push(job);
        if q.leading {
            // The leader hands what waits to the writer thread when it is done.
            return None;
        }
        drop(q);
        self.shared.wake.notify_one();
        None
    }
}

impl Shared {
    /// Runs `batch` (its taker set `leading`), then lets the next leader in. A job that
    /// panicked fails (its caller sees the writer closed) without ending the writer: the
    /// next transaction first rolls back what it left open.
    fn lead(&self, batch: Vec<Job>) {
        let (started, jobs) = (Instant::now(), batch.len());
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| transaction(&self.conn.lock(), batch)));
        if ran.is_err() {
            tracing::error!("a write panicked; its transaction is rolled back");
        }
        let mut q = self.queue.lock();
        q.leading = false;
        q.idle_since = Instant::now();
        q.last_took = q.idle_since - started;
        q.last_jobs = jobs;
        if !q.jobs.is_empty() {
            drop(q);
            self.wake.notify_one();
        }
    }
}

/// Whether this task runs on a multi-threaded runtime's worker, which may block in place
/// (another thread takes its other tasks meanwhile).
fn may_block_here() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
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

/// The writer thread: leads every batch that waits while no caller leads, until closed.
fn run(shared: &Shared) {
    loop {
        let batch = {
            let mut q = shared.queue.lock();
            while q.leading || q.jobs.is_empty() {
                if q.closed && !q.leading && q.jobs.is_empty() {
                    return;
                }
                shared.wake.wait(&mut q);
            }
            q.leading = true;
            let n = q.jobs.len().min(MAX_BATCH);
            q.jobs.drain(..n).collect::<Vec<_>>()
        };
        shared.lead(batch);
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

    #[test]
    fn the_connection_is_quiet_after_a_lone_job_or_an_idle_spell_as_long_as_the_last_transaction() {
        let ms = Duration::from_millis;
        // (jobs of the last transaction, how long it took, idle since, quiet)
        let table = [(0, 100, 0, true), (1, 100, 0, true), (5, 100, 0, false), (5, 100, 200, true), (2, 0, 0, true)];
        for (jobs, took, idle, quiet) in table {
            let q = Queue {
                jobs: Vec::new(),
                leading: false,
                closed: false,
                idle_since: Instant::now().checked_sub(ms(idle)).unwrap(),
                last_took: ms(took),
                last_jobs: jobs,
            };
            assert_eq!(q.quiet(), quiet, "{jobs} jobs that took {took} ms, idle {idle} ms");
        }
    }

    /// A writer on a fresh table; each write inserts a row and returns its id and the name
    /// of the thread that ran it.
    fn writer() -> (tempfile::TempDir, Writer) {
        let (dir, conn, _) = setup();
        (dir, Writer::spawn(conn).unwrap())
    }

    async fn insert_one(w: &Writer, hold: std::time::Duration, hooks: &Arc<Mutex<Vec<i64>>>) -> (i64, String) {
        let hooks = hooks.clone();
        let f = move |c: &Connection| -> Result<(i64, String)> {
            std::thread::sleep(hold);
            c.execute("INSERT INTO t DEFAULT VALUES", [])?;
            Ok((c.last_insert_rowid(), std::thread::current().name().unwrap_or_default().to_owned()))
        };
        w.write(f, move |(id, _)| hooks.lock().push(*id)).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_caller_leads_its_write_and_writes_that_queue_meanwhile_go_to_the_writer_thread() {
        let (_dir, w) = writer();
        let hooks: Arc<Mutex<Vec<i64>>> = Default::default();
        // Nothing queued: the caller's own thread runs it.
        let (_, by) = insert_one(&w, std::time::Duration::ZERO, &hooks).await;
        assert_ne!(by, "herm-sqlite-writer");
        // Quiet again (idle longer than the last write took): a slow write leads; the writes
        // sent meanwhile wait for the writer thread.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let slow = tokio::spawn({
            let (w, hooks) = (w.clone(), hooks.clone());
            async move { insert_one(&w, std::time::Duration::from_millis(200), &hooks).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let rest: Vec<_> = (0..50)
            .map(|_| {
                let (w, hooks) = (w.clone(), hooks.clone());
                tokio::spawn(async move { insert_one(&w, std::time::Duration::ZERO, &hooks).await })
            })
            .collect();
        assert_ne!(slow.await.unwrap().1, "herm-sqlite-writer");
        let mut by_writer = 0;
        for r in rest {
            by_writer += usize::from(r.await.unwrap().1 == "herm-sqlite-writer");
        }
        assert!(by_writer > 0, "the writes queued behind a leading caller went to the writer thread");
        // Every write committed once, and the after-commit hooks ran in commit order.
        let hooks = hooks.lock().clone();
        assert_eq!(hooks, (1..=52).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_caller_that_may_not_block_leaves_its_write_to_the_writer_thread() {
        let (_dir, w) = writer();
        let hooks: Arc<Mutex<Vec<i64>>> = Default::default();
        let (id, by) = insert_one(&w, std::time::Duration::ZERO, &hooks).await;
        assert_eq!((id, by.as_str()), (1, "herm-sqlite-writer"));
        assert_eq!(*hooks.lock(), vec![1]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_panics_fails_alone_and_the_writer_goes_on() {
        let (_dir, w) = writer();
        let boom = w.write(|_: &Connection| -> Result<()> { panic!("a faulty write") }, |_| {}).await;
        assert!(matches!(boom, Err(Error::Closed)), "{boom:?}");
        let hooks: Arc<Mutex<Vec<i64>>> = Default::default();
        assert_eq!(insert_one(&w, std::time::Duration::ZERO, &hooks).await.0, 1);
    }
}
