//! Checkpoints off the writer thread.
//!
//! By default SQLite moves the journal (WAL) into the database on the connection that
//! commits, once the journal passes 1,000 pages: the writer thread, which every append waits
//! for, copied and synced megabytes in the middle of a commit. Here the writer connection's
//! journal hook only looks at the journal's length: past [`Checkpoints::wake_at`] pages it
//! wakes a checkpointer thread, whose own connection runs PASSIVE checkpoints (they never
//! block a writer or a reader); past [`Checkpoints::inline_at`] the writer checkpoints itself
//! as before, so the journal stays bounded even when the checkpointer falls behind.

use crate::Result;
use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc;

/// When checkpoints happen, in journal pages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Checkpoints {
    /// The checkpointer is woken once the journal holds this many pages.
    pub wake_at: i32,
    /// The writer checkpoints inline once the journal holds this many (the checkpointer is
    /// behind: a long read pins old pages, or the disk is slower than the writes).
    pub inline_at: i32,
}

impl Default for Checkpoints {
    /// 8 MiB and 128 MiB of 4 KiB pages: fewer, larger checkpoints copy a page written many
    /// times (a thread's row, an index's last page) once.
    fn default() -> Self {
        Self { wake_at: 2048, inline_at: 32768 }
    }
}

/// Starts the checkpointer thread for the database at `path` and hands the writer
/// connection's checkpoints to it. The thread ends when `writer` is closed.
pub(crate) fn attach(writer: &mut Connection, path: &Path, at: Checkpoints) -> Result<()> {
    let conn = Connection::open(path)?;
    // A checkpoint syncs the journal before copying it and the database after.
    conn.execute_batch("PRAGMA synchronous=FULL;")?;
    let (wake, woken) = mpsc::sync_channel::<()>(1);
    std::thread::Builder::new().name("herm-sqlite-checkpoint".into()).spawn(move || run(conn, woken))?;
    // The hook replaces SQLite's automatic checkpoint on this connection.
    writer.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: std::ffi::c_int| {
        if pages >= at.inline_at {
            if let Err(e) = wal.checkpoint() {
                tracing::warn!(error = %e, "inline checkpoint failed; the next commit tries again");
            }
        } else if pages >= at.wake_at {
            // Already woken when full: one checkpoint covers every commit before it.
            let _ = wake.try_send(());
        }
        Ok(())
    }))?;
    Ok(())
}

fn run(conn: Connection, woken: mpsc::Receiver<()>) {
    while woken.recv().is_ok() {
        let r: rusqlite::Result<(i64, i64, i64)> =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)));
        if let Err(e) = r {
            tracing::warn!(error = %e, "background checkpoint failed; the next wake tries again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn open(path: &Path) -> Connection {
        let c = Connection::open(path).unwrap();
        c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;").unwrap();
        c
    }

    /// A database of `rows` rows of 4 KB, written one commit each by a writer whose
    /// checkpoints are `at`; the writer stays open.
    fn written(dir: &Path, at: Checkpoints, rows: i64) -> (std::path::PathBuf, Connection) {
        let path = dir.join("db");
        let mut w = open(&path);
        w.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)").unwrap();
        attach(&mut w, &path, at).unwrap();
        for i in 0..rows {
            w.execute("INSERT INTO t (id, v) VALUES (?1, zeroblob(4000))", [i]).unwrap();
        }
        (path, w)
    }

    fn len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn the_checkpointer_moves_the_journal_into_the_database_while_the_writer_keeps_writing() {
        let dir = tempfile::tempdir().unwrap();
        // The writer never checkpoints (inline_at is out of reach): only the thread can copy
        // the rows into the database file.
        let (path, w) = written(dir.path(), Checkpoints { wake_at: 16, inline_at: i32::MAX }, 200);
        let deadline = Instant::now() + Duration::from_secs(10);
        while len(&path) < 100 * 4000 {
            assert!(Instant::now() < deadline, "no checkpoint moved the journal: {} bytes", len(&path));
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(w);
        let r = open(&path);
        assert_eq!(r.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)).unwrap(), 200);
    }

    #[test]
    fn past_the_inline_mark_the_writer_checkpoints_itself() {
        let dir = tempfile::tempdir().unwrap();
        // The thread is never woken; the writer checkpoints every 32 pages, and a journal
        // checkpointed whole starts again from its beginning at the next write.
        let (path, _w) = written(dir.path(), Checkpoints { wake_at: i32::MAX, inline_at: 32 }, 300);
        let wal = len(&path.with_file_name("db-wal"));
        assert!(wal < 64 * 4200, "the journal grew to {wal} bytes");
        assert!(len(&path) > 250 * 4000);
    }
}
