//! Durable timers on PostgreSQL: a due slot is claimed by one node with `FOR UPDATE SKIP
//! LOCKED` (claimers never wait on each other) and finished only by the claim that took it.

use super::{PostgresStore, cols, exec, opt, rows, value};
use crate::sqlite::rows::*;
use crate::sqlite::timers::timer_rec;
use crate::sqlite::{from_micros, micros};
use crate::*;
use chrono::{DateTime, Utc};

fn timer_of(r: &tokio_postgres::Row) -> Result<ClaimedTimer> {
    timer_rec(cols!(r; 0, 1, 2, 3, 4))
}

#[async_trait::async_trait]
impl TimerStore for PostgresStore {
    async fn set_timer(&self, t: NewTimer) -> Result<()> {
        let c = self.client().await?;
        exec(
            &c,
            "INSERT INTO timers (key, kind, due_at, payload) VALUES ($1,$2,$3,$4)
             ON CONFLICT (key) DO UPDATE SET kind=excluded.kind, due_at=excluded.due_at,
             payload=excluded.payload, epoch=timers.epoch+1, claimed_by=NULL, claim_expires_at=0",
            &[&t.key, &t.kind, &micros(t.due_at), &to_json(&t.payload)?],
        )
        .await?;
        Ok(())
    }

    async fn cancel_timer(&self, key: &str) -> Result<bool> {
        let c = self.client().await?;
        Ok(exec(&c, "DELETE FROM timers WHERE key=$1", &[&key]).await? > 0)
    }

    async fn claim_due_timers(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        claim_ttl_ms: i64,
        limit: usize,
    ) -> Result<Vec<ClaimedTimer>> {
        let now = micros(now);
        let c = self.client().await?;
        let mut out = rows(
            &c,
            "UPDATE timers SET epoch=epoch+1, claimed_by=$1, claim_expires_at=$2
             WHERE key IN (SELECT key FROM timers WHERE due_at <= $3
                           AND (claimed_by IS NULL OR claim_expires_at < $3)
                           ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED)
               AND due_at <= $3 AND (claimed_by IS NULL OR claim_expires_at < $3)
             RETURNING key, kind, due_at, payload, epoch",
            &[&owner, &(now + claim_ttl_ms * 1000), &now, &(limit as i64)],
            timer_of,
        )
        .await?;
        out.sort_by_key(|t| t.due_at);
        Ok(out)
    }

    async fn finish_timer(&self, claim: &ClaimedTimer, next: Option<DateTime<Utc>>) -> Result<()> {
        let c = self.client().await?;
        let n = match next {
            None => exec(&c, "DELETE FROM timers WHERE key=$1 AND epoch=$2", &[&claim.key, &claim.epoch]).await?,
            Some(at) => {
                exec(
                    &c,
                    "UPDATE timers SET due_at=$3, epoch=epoch+1, claimed_by=NULL, claim_expires_at=0
                     WHERE key=$1 AND epoch=$2",
                    &[&claim.key, &claim.epoch, &micros(at)],
                )
                .await?
            }
        };
        if n == 0 { Err(Error::Stale) } else { Ok(()) }
    }

    async fn release_timer_claims_with_prefix(&self, owner_prefix: &str) -> Result<u64> {
        let c = self.client().await?;
        exec(
            &c,
            "UPDATE timers SET claimed_by=NULL, claim_expires_at=0, epoch=epoch+1 WHERE claimed_by LIKE $1 ESCAPE '\\'",
            &[&super::log::owner_pattern(owner_prefix)],
        )
        .await
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>> {
        let c = self.client().await?;
        let at: Option<i64> = value(&c, "SELECT MIN(due_at) FROM timers WHERE claimed_by IS NULL", &[]).await?;
        Ok(at.map(from_micros))
    }

    async fn due_timer_count(&self, now: DateTime<Utc>) -> Result<u64> {
        let c = self.client().await?;
        let n: i64 =
            value(&c, "SELECT COUNT(*) FROM timers WHERE due_at <= $1 AND claimed_by IS NULL", &[&micros(now)]).await?;
        Ok(n.max(0) as u64)
    }

    async fn get_timer(&self, key: &str) -> Result<Option<ClaimedTimer>> {
        let c = self.client().await?;
        opt(&c, "SELECT key, kind, due_at, payload, epoch FROM timers WHERE key=$1", &[&key], timer_of).await
    }
}
