//! Threads, runs, the event log (appends in [`super::append`]) and leases in SQLite.

use super::append::{append_tx, serialize};
use super::rows::*;
use super::{SqliteStore, micros, now_micros};
use crate::*;
use herm_types::event::LiveFrame;
use rusqlite::{OptionalExtension, params};

#[async_trait::async_trait]
impl LogStore for SqliteStore {
    async fn create_thread(&self, t: NewThread) -> Result<()> {
        self.write(move |c| {
            let now = now_micros();
            let n = c.execute(
                "INSERT INTO threads (id, deployment_id, title, created_at, last_activity_at)
                 SELECT ?1, ?2, ?3, ?4, ?4 WHERE EXISTS (SELECT 1 FROM deployments WHERE id=?2 AND status != 'deleted')",
                params![t.id.as_str(), t.deployment_id.as_str(), t.title, now],
            )?;
            if n == 0 { Err(Error::NotFound) } else { Ok(()) }
        })
        .await
    }

    async fn get_thread(&self, id: &ThreadId) -> Result<Option<ThreadRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            one(
                c,
                &format!("SELECT {THREAD_COLS} FROM threads WHERE id=?1 AND deleted_at IS NULL"),
                [id],
                thread_row,
                thread_rec,
            )
        })
        .await
    }

    async fn list_threads(&self, q: ThreadQuery) -> Result<Vec<ThreadRecord>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {THREAD_COLS} FROM threads WHERE deployment_id=?1 AND deleted_at IS NULL
                 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3"
            );
            collect(
                c,
                &sql,
                params![q.deployment_id.as_str(), q.before.as_ref().map(|b| b.as_str()), q.limit as i64],
                thread_row,
                thread_rec,
            )
        })
        .await
    }

    async fn set_thread_title(&self, id: &ThreadId, title: &str) -> Result<bool> {
        let (id, title) = (id.to_string(), title.to_owned());
        self.write(move |c| {
            Ok(c.execute("UPDATE threads SET title=?2 WHERE id=?1 AND deleted_at IS NULL", params![id, title])? > 0)
        })
        .await
    }

    async fn delete_thread(&self, id: &ThreadId) -> Result<bool> {
        let thread = id.clone();
        let id = id.to_string();
        let deleted = self
            .write(move |c| {
                let now = now_micros();
                let n = c.execute(
                    "UPDATE threads SET deleted_at=?2, active_run=NULL WHERE id=?1 AND deleted_at IS NULL",
                    params![id, now],
                )?;
                c.execute(
                    "UPDATE runs SET status='interrupted', ended_at=?2 WHERE thread_id=?1
                 AND status IN ('queued','running','waiting_on_human')",
                    params![id, now],
                )?;
                Ok(n > 0)
            })
            .await?;
        self.inner.heads.forget(&thread);
        // Its attachments' bytes go with it.
        self.drop_thread_blobs(&thread).await?;
        Ok(deleted)
    }

    async fn get_run(&self, id: &RunId) -> Result<Option<RunRecord>> {
        let id = id.to_string();
        self.read(move |c| one(c, &format!("SELECT {RUN_COLS} FROM runs WHERE id=?1"), [id], run_row, run_rec)).await
    }

    async fn active_run(&self, thread: &ThreadId) -> Result<Option<RunRecord>> {
        let thread = thread.to_string();
        // The append that changes a run's status keeps the thread's active run on its row.
        let sql = format!("SELECT {RUN_COLS} FROM runs WHERE id=(SELECT active_run FROM threads WHERE id=?1)");
        self.read(move |c| one(c, &sql, [thread], run_row, run_rec)).await
    }

    async fn deployment_cost_since(&self, dep: &DeploymentId, since: chrono::DateTime<chrono::Utc>) -> Result<f64> {
        let dep = dep.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT COALESCE(SUM(cost_usd), 0) FROM runs WHERE deployment_id=?1 AND started_at >= ?2",
            )?
            .query_row(params![dep, micros(since)], |r| r.get(0))?)
        })
        .await
    }

    async fn customer_cost_since(&self, customer: &str, since: chrono::DateTime<chrono::Utc>) -> Result<f64> {
        let customer = customer.to_owned();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT COALESCE(SUM(r.cost_usd), 0) FROM deployments d JOIN runs r ON r.deployment_id = d.id
                 WHERE d.customer_id=?1 AND r.started_at >= ?2",
            )?
            .query_row(params![customer, micros(since)], |r| r.get(0))?)
        })
        .await
    }

    async fn active_run_counts(&self) -> Result<[u64; 3]> {
        self.read(move |c| {
            let mut out = [0u64; 3];
            let mut st = c.prepare_cached(
                "SELECT status, COUNT(*) FROM runs WHERE status IN ('queued','running','waiting_on_human') GROUP BY status",
            )?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (status, n) = row?;
                let i = match status.as_str() {
                    "queued" => 0,
                    "running" => 1,
                    _ => 2,
                };
                out[i] = n as u64;
            }
            Ok(out)
        })
        .await
    }

    async fn usage(
        &self,
        dep: &DeploymentId,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        by: herm_types::api::UsageGroup,
    ) -> Result<Vec<herm_types::api::UsageRow>> {
        let key = match by {
            herm_types::api::UsageGroup::Day => "strftime('%Y-%m-%d', created_at / 1000000, 'unixepoch')",
            herm_types::api::UsageGroup::Model => "COALESCE(json_extract(data, '$.model'), '')",
        };
        let sql = format!(
            "SELECT {key} AS k, SUM(COALESCE(json_extract(data, '$.input_tokens'), 0)),
                    SUM(COALESCE(json_extract(data, '$.output_tokens'), 0)),
                    SUM(COALESCE(json_extract(data, '$.cost_usd'), 0.0)),
                    MAX(COALESCE(json_extract(data, '$.estimated'), 0))
             FROM events WHERE deployment_id=?1 AND type IN ('model_call', 'compaction')
               AND created_at >= ?2 AND created_at < ?3
             GROUP BY k ORDER BY k"
        );
        let (dep, from, to) = (dep.to_string(), micros(from), micros(to));
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![dep, from, to], |r| {
                Ok(herm_types::api::UsageRow {
                    key: r.get(0)?,
                    input_tokens: r.get::<_, i64>(1)?.max(0) as u64,
                    output_tokens: r.get::<_, i64>(2)?.max(0) as u64,
                    cost_usd: r.get(3)?,
                    estimated: r.get::<_, i64>(4)? != 0,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn append(&self, a: Append) -> Result<Vec<Arc<Event>>> {
        let store = self.clone();
        let data = serialize(&a)?;
        // The append makes its checks before it writes: no savepoint (see `writer`).
        self.inner
            .writer
            .write_checked(
                move |c| Ok(append_tx(c, a, data)?.into_iter().map(Arc::new).collect::<Vec<_>>()),
                move |events: &Vec<Arc<Event>>| {
                    if let Some(last) = events.last() {
                        store.inner.heads.set(&last.thread_id, last.sequence.0);
                    }
                    for e in events {
                        store.bus().publish(&e.deployment_id, LiveFrame::Committed(e.clone()));
                    }
                },
            )
            .await
    }

    fn thread_head(&self, thread: &ThreadId) -> Option<i64> {
        self.inner.heads.get(thread)
    }

    async fn thread_events(&self, thread: &ThreadId, after: i64, limit: usize) -> Result<Vec<Event>> {
        let thread = thread.to_string();
        self.read(move |c| {
            collect(
                c,
                &format!("SELECT {EVENT_COLS} FROM events WHERE thread_id=?1 AND seq > ?2 ORDER BY seq LIMIT ?3"),
                params![thread, after, limit as i64],
                event_row,
                event_rec,
            )
        })
        .await
    }

    async fn deployment_events(
        &self,
        dep: &DeploymentId,
        after: i64,
        limit: usize,
        f: &EventFilter,
    ) -> Result<Vec<Event>> {
        let dep = dep.to_string();
        let (t, r) = (f.thread_id.as_ref().map(|x| x.to_string()), f.run_id.as_ref().map(|x| x.to_string()));
        self.read(move |c| {
            collect(
                c,
                &format!(
                    "SELECT {EVENT_COLS} FROM events WHERE deployment_id=?1 AND dseq > ?2
                     AND (?3 IS NULL OR thread_id=?3) AND (?4 IS NULL OR run_id=?4) ORDER BY dseq LIMIT ?5"
                ),
                params![dep, after, t, r, limit as i64],
                event_row,
                event_rec,
            )
        })
        .await
    }

    async fn run_log(&self, thread: &ThreadId) -> Result<Vec<Event>> {
        self.thread_events(thread, 0, usize::MAX >> 1).await
    }

    async fn acquire_lease(&self, thread: &ThreadId, owner: &str, ttl_ms: i64) -> Result<Option<Lease>> {
        let (tid, owner) = (thread.clone(), owner.to_owned());
        self.write(move |c| {
            let now = now_micros() / 1000;
            let epoch: Option<i64> = c
                .prepare_cached(
                    "UPDATE threads SET lease_owner=?2, lease_epoch=lease_epoch+1, lease_expires_at=?3
                     WHERE id=?1 AND deleted_at IS NULL AND (lease_owner IS NULL OR lease_expires_at < ?4 OR lease_owner=?2)
                     RETURNING lease_epoch",
                )?
                .query_row(params![tid.as_str(), owner, now + ttl_ms, now], |r| r.get(0))
                .optional()?;
            Ok(epoch.map(|epoch| Lease { thread_id: tid, owner, epoch }))
        })
        .await
    }

    async fn renew_lease(&self, l: &Lease, ttl_ms: i64) -> Result<bool> {
        let l = l.clone();
        self.write(move |c| {
            let now = now_micros() / 1000;
            Ok(c.prepare_cached(
                "UPDATE threads SET lease_expires_at=?4 WHERE id=?1 AND lease_owner=?2 AND lease_epoch=?3 AND lease_expires_at >= ?5",
            )?
            .execute(params![l.thread_id.as_str(), l.owner, l.epoch, now + ttl_ms, now])?
                > 0)
        })
        .await
    }

    async fn release_lease(&self, l: &Lease) -> Result<()> {
        let l = l.clone();
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE threads SET lease_owner=NULL, lease_expires_at=0 WHERE id=?1 AND lease_owner=?2 AND lease_epoch=?3",
            )?
            .execute(params![l.thread_id.as_str(), l.owner, l.epoch])?;
            Ok(())
        })
        .await
    }

    async fn release_leases_with_prefix(&self, prefix: &str) -> Result<u64> {
        let pat = format!("{}%", prefix.replace('%', "").replace('_', "\\_"));
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE threads SET lease_owner=NULL, lease_expires_at=0 WHERE lease_owner LIKE ?1 ESCAPE '\\'",
                [pat],
            )? as u64)
        })
        .await
    }

    async fn runnable_threads(&self, limit: usize) -> Result<Vec<ThreadId>> {
        self.read(move |c| {
            collect(
                c,
                "SELECT DISTINCT r.thread_id FROM runs r JOIN threads t ON t.id = r.thread_id
                 WHERE r.status IN ('queued','running') AND t.deleted_at IS NULL
                 AND (t.lease_owner IS NULL OR t.lease_expires_at < ?1) LIMIT ?2",
                params![now_micros() / 1000, limit as i64],
                |r| r.get::<_, String>(0),
                parse_id,
            )
        })
        .await
    }
}
