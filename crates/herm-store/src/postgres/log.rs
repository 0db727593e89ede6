//! Threads, runs, the event log (appends in [`super::append`]) and leases on PostgreSQL.

use super::append::{ACTIVE, active_run_id, append_tx};
use super::{DB_NOW_MS, PostgresStore, cols, exec, opt, rows, value};
use crate::sqlite::rows::*;
use crate::sqlite::{micros, now_micros};
use crate::*;

pub(super) fn owner_pattern(prefix: &str) -> String {
    format!("{}%", crate::sqlite::memory::like_escape(prefix))
}

pub(super) fn event_of(r: &tokio_postgres::Row) -> Result<Event> {
    event_rec(cols!(r; 0, 1, 2, 3, 4, 5, 6, 7))
}

pub(super) fn run_of(r: &tokio_postgres::Row) -> Result<RunRecord> {
    run_rec(cols!(r; 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12))
}

#[async_trait::async_trait]
impl LogStore for PostgresStore {
    async fn create_thread(&self, t: NewThread) -> Result<()> {
        let c = self.client().await?;
        let n = exec(
            &c,
            "INSERT INTO threads (id, deployment_id, title, created_at, last_activity_at)
             SELECT $1, $2, $3, $4, $4 WHERE EXISTS (SELECT 1 FROM deployments WHERE id=$2 AND status != 'deleted')",
            &[&t.id.as_str(), &t.deployment_id.as_str(), &t.title, &now_micros()],
        )
        .await?;
        if n == 0 { Err(Error::NotFound) } else { Ok(()) }
    }

    async fn get_thread(&self, id: &ThreadId) -> Result<Option<ThreadRecord>> {
        let c = self.client().await?;
        opt(
            &c,
            &format!("SELECT {THREAD_COLS} FROM threads WHERE id=$1 AND deleted_at IS NULL"),
            &[&id.as_str()],
            |r| thread_rec(cols!(r; 0, 1, 2, 3, 4, 5, 6, 7)),
        )
        .await
    }

    async fn list_threads(&self, q: ThreadQuery) -> Result<Vec<ThreadRecord>> {
        let c = self.client().await?;
        rows(
            &c,
            &format!(
                "SELECT {THREAD_COLS} FROM threads WHERE deployment_id=$1 AND deleted_at IS NULL
                 AND ($2::text IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
            ),
            &[&q.deployment_id.as_str(), &q.before.as_ref().map(|b| b.as_str()), &(q.limit as i64)],
            |r| thread_rec(cols!(r; 0, 1, 2, 3, 4, 5, 6, 7)),
        )
        .await
    }

    async fn set_thread_title(&self, id: &ThreadId, title: &str) -> Result<bool> {
        let c = self.client().await?;
        Ok(exec(&c, "UPDATE threads SET title=$2 WHERE id=$1 AND deleted_at IS NULL", &[&id.as_str(), &title]).await?
            > 0)
    }

    async fn delete_thread(&self, id: &ThreadId) -> Result<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let now = now_micros();
        let n = exec(&tx, "UPDATE threads SET deleted_at=$2 WHERE id=$1 AND deleted_at IS NULL", &[&id.as_str(), &now])
            .await?;
        exec(
            &tx,
            &format!("UPDATE runs SET status='interrupted', ended_at=$2 WHERE thread_id=$1 AND status IN {ACTIVE}"),
            &[&id.as_str(), &now],
        )
        .await?;
        // Its attachments' bytes go with it.
        let gone: Vec<(String, String)> = rows(
            &tx,
            "DELETE FROM attachments WHERE thread_id=$1 RETURNING deployment_id, sha256",
            &[&id.as_str()],
            |r| Ok(cols!(r; 0, 1)),
        )
        .await?;
        for (dep, sha) in gone {
            super::attachments::sweep(&tx, &dep, &[sha]).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn get_run(&self, id: &RunId) -> Result<Option<RunRecord>> {
        let c = self.client().await?;
        opt(&c, &format!("SELECT {RUN_COLS} FROM runs WHERE id=$1"), &[&id.as_str()], run_of).await
    }

    async fn active_run(&self, thread: &ThreadId) -> Result<Option<RunRecord>> {
        let c = self.client().await?;
        let Some(id) = active_run_id(&c, thread.as_str()).await? else { return Ok(None) };
        opt(&c, &format!("SELECT {RUN_COLS} FROM runs WHERE id=$1"), &[&id], run_of).await
    }

    async fn deployment_cost_since(&self, dep: &DeploymentId, since: chrono::DateTime<chrono::Utc>) -> Result<f64> {
        let c = self.client().await?;
        value(
            &c,
            "SELECT COALESCE(SUM(cost_usd), 0)::float8 FROM runs WHERE deployment_id=$1 AND started_at >= $2",
            &[&dep.as_str(), &micros(since)],
        )
        .await
    }

    async fn customer_cost_since(&self, customer: &str, since: chrono::DateTime<chrono::Utc>) -> Result<f64> {
        let c = self.client().await?;
        value(
            &c,
            "SELECT COALESCE(SUM(r.cost_usd), 0)::float8 FROM deployments d JOIN runs r ON r.deployment_id = d.id
             WHERE d.customer_id=$1 AND r.started_at >= $2",
            &[&customer, &micros(since)],
        )
        .await
    }

    async fn active_run_counts(&self) -> Result<[u64; 3]> {
        let c = self.client().await?;
        let counts: Vec<(String, i64)> = rows(
            &c,
            &format!("SELECT status, COUNT(*) FROM runs WHERE status IN {ACTIVE} GROUP BY status"),
            &[],
            |r| Ok(cols!(r; 0, 1)),
        )
        .await?;
        let mut out = [0u64; 3];
        for (status, n) in counts {
            let i = match status.as_str() {
                "queued" => 0,
                "running" => 1,
                _ => 2,
            };
            out[i] = n.max(0) as u64;
        }
        Ok(out)
    }

    async fn usage(
        &self,
        dep: &DeploymentId,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        by: herm_types::api::UsageGroup,
    ) -> Result<Vec<herm_types::api::UsageRow>> {
        let key = match by {
            herm_types::api::UsageGroup::Day => {
                "to_char(to_timestamp(created_at / 1000000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
            }
            herm_types::api::UsageGroup::Model => "COALESCE(data::jsonb->>'model', '')",
        };
        let sql = format!(
            "SELECT {key} AS k, SUM(COALESCE((data::jsonb->>'input_tokens')::bigint, 0))::bigint,
                    SUM(COALESCE((data::jsonb->>'output_tokens')::bigint, 0))::bigint,
                    SUM(COALESCE((data::jsonb->>'cost_usd')::float8, 0))::float8,
                    BOOL_OR(COALESCE((data::jsonb->>'estimated')::boolean, false))
             FROM events WHERE deployment_id=$1 AND type IN ('model_call', 'compaction')
               AND created_at >= $2 AND created_at < $3
             GROUP BY k ORDER BY k"
        );
        let c = self.client().await?;
        rows(&c, &sql, &[&dep.as_str(), &micros(from), &micros(to)], |r| {
            Ok(herm_types::api::UsageRow {
                key: r.try_get(0)?,
                input_tokens: r.try_get::<_, i64>(1)?.max(0) as u64,
                output_tokens: r.try_get::<_, i64>(2)?.max(0) as u64,
                cost_usd: r.try_get(3)?,
                estimated: r.try_get(4)?,
            })
        })
        .await
    }

    async fn append(&self, a: Append) -> Result<Vec<Arc<Event>>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let events = append_tx(&tx, &a, &self.inner.fanout).await?;
        tx.commit().await?;
        // The connection goes back first: publishing may read a gap from the log.
        drop(c);
        let events: Vec<Arc<Event>> = events.into_iter().map(Arc::new).collect();
        self.inner.fanout.committed(self, &events).await;
        Ok(events)
    }

    async fn thread_events(&self, thread: &ThreadId, after: i64, limit: usize) -> Result<Vec<Event>> {
        let c = self.client().await?;
        rows(
            &c,
            &format!("SELECT {EVENT_COLS} FROM events WHERE thread_id=$1 AND seq > $2 ORDER BY seq LIMIT $3"),
            &[&thread.as_str(), &after, &(limit.min(i64::MAX as usize) as i64)],
            event_of,
        )
        .await
    }

    async fn deployment_events(
        &self,
        dep: &DeploymentId,
        after: i64,
        limit: usize,
        f: &EventFilter,
    ) -> Result<Vec<Event>> {
        let (t, r) = (f.thread_id.as_ref().map(|x| x.as_str()), f.run_id.as_ref().map(|x| x.as_str()));
        let c = self.client().await?;
        rows(
            &c,
            &format!(
                "SELECT {EVENT_COLS} FROM events WHERE deployment_id=$1 AND dseq > $2
                 AND ($3::text IS NULL OR thread_id=$3) AND ($4::text IS NULL OR run_id=$4) ORDER BY dseq LIMIT $5"
            ),
            &[&dep.as_str(), &after, &t, &r, &(limit.min(i64::MAX as usize) as i64)],
            event_of,
        )
        .await
    }

    async fn run_log(&self, thread: &ThreadId) -> Result<Vec<Event>> {
        self.thread_events(thread, 0, usize::MAX >> 1).await
    }

    async fn acquire_lease(&self, thread: &ThreadId, owner: &str, ttl_ms: i64) -> Result<Option<Lease>> {
        let c = self.client().await?;
        let epoch: Option<i64> = opt(
            &c,
            &format!(
                "UPDATE threads SET lease_owner=$2, lease_epoch=lease_epoch+1, lease_expires_at={DB_NOW_MS} + $3
                 WHERE id=$1 AND deleted_at IS NULL
                   AND (lease_owner IS NULL OR lease_expires_at < {DB_NOW_MS} OR lease_owner=$2)
                 RETURNING lease_epoch"
            ),
            &[&thread.as_str(), &owner, &ttl_ms],
            |r| Ok(r.try_get(0)?),
        )
        .await?;
        Ok(epoch.map(|epoch| Lease { thread_id: thread.clone(), owner: owner.to_owned(), epoch }))
    }

    async fn renew_lease(&self, l: &Lease, ttl_ms: i64) -> Result<bool> {
        let c = self.client().await?;
        Ok(exec(
            &c,
            &format!(
                "UPDATE threads SET lease_expires_at={DB_NOW_MS} + $4
                 WHERE id=$1 AND lease_owner=$2 AND lease_epoch=$3 AND lease_expires_at >= {DB_NOW_MS}"
            ),
            &[&l.thread_id.as_str(), &l.owner, &l.epoch, &ttl_ms],
        )
        .await?
            > 0)
    }

    async fn release_lease(&self, l: &Lease) -> Result<()> {
        let c = self.client().await?;
        exec(
            &c,
            "UPDATE threads SET lease_owner=NULL, lease_expires_at=0 WHERE id=$1 AND lease_owner=$2 AND lease_epoch=$3",
            &[&l.thread_id.as_str(), &l.owner, &l.epoch],
        )
        .await?;
        Ok(())
    }

    async fn release_leases_with_prefix(&self, prefix: &str) -> Result<u64> {
        let c = self.client().await?;
        exec(
            &c,
            "UPDATE threads SET lease_owner=NULL, lease_expires_at=0 WHERE lease_owner LIKE $1 ESCAPE '\\'",
            &[&owner_pattern(prefix)],
        )
        .await
    }

    async fn runnable_threads(&self, limit: usize) -> Result<Vec<ThreadId>> {
        let c = self.client().await?;
        rows(
            &c,
            &format!(
                "SELECT DISTINCT r.thread_id FROM runs r JOIN threads t ON t.id = r.thread_id
                 WHERE r.status IN ('queued','running') AND t.deleted_at IS NULL
                 AND (t.lease_owner IS NULL OR t.lease_expires_at < {DB_NOW_MS}) LIMIT $1"
            ),
            &[&(limit as i64)],
            |r| parse_id(r.try_get(0)?),
        )
        .await
    }
}
