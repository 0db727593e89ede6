//! Durable timers in SQLite. A claim bumps the timer's `epoch` and records who holds it until
//! when; a finish names the epoch it ends, so a claim that expired (its node died or stalled)
//! and was taken by another node can no longer delete or move the timer.

use super::rows::*;
use super::{SqliteStore, from_micros, micros};
use crate::*;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

pub(crate) type TimerRow = (String, String, i64, String, i64);

pub(crate) fn timer_rec(t: TimerRow) -> Result<ClaimedTimer> {
    Ok(ClaimedTimer { key: t.0, kind: t.1, due_at: from_micros(t.2), payload: json(&t.3)?, epoch: t.4 })
}

fn timer_row(r: &rusqlite::Row) -> rusqlite::Result<TimerRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

#[async_trait::async_trait]
impl TimerStore for SqliteStore {
    async fn set_timer(&self, t: NewTimer) -> Result<()> {
        let payload = to_json(&t.payload)?;
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO timers (key, kind, due_at, payload) VALUES (?1,?2,?3,?4)
                 ON CONFLICT(key) DO UPDATE SET kind=excluded.kind, due_at=excluded.due_at,
                 payload=excluded.payload, epoch=epoch+1, claimed_by=NULL, claim_expires_at=0",
            )?
            .execute(params![t.key, t.kind, micros(t.due_at), payload])?;
            Ok(())
        })
        .await
    }

    async fn cancel_timer(&self, key: &str) -> Result<bool> {
        let key = key.to_owned();
        self.write(move |c| Ok(c.execute("DELETE FROM timers WHERE key=?1", [key])? > 0)).await
    }

    async fn claim_due_timers(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        claim_ttl_ms: i64,
        limit: usize,
    ) -> Result<Vec<ClaimedTimer>> {
        let owner = owner.to_owned();
        let now = micros(now);
        // Asked every scan tick: a read first, so an idle node sends no job to the writer.
        let due: bool = self
            .read(move |c| {
                Ok(c.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM timers WHERE due_at <= ?1
                     AND (claimed_by IS NULL OR claim_expires_at < ?1))",
                )?
                .query_row([now], |r| r.get(0))?)
            })
            .await?;
        if !due {
            return Ok(Vec::new());
        }
        self.write(move |c| {
            let mut stmt = c.prepare_cached(
                "UPDATE timers SET epoch=epoch+1, claimed_by=?1, claim_expires_at=?2
                 WHERE key IN (SELECT key FROM timers WHERE due_at <= ?3
                               AND (claimed_by IS NULL OR claim_expires_at < ?3) ORDER BY due_at LIMIT ?4)
                 RETURNING key, kind, due_at, payload, epoch",
            )?;
            let rows = stmt.query_map(params![owner, now + claim_ttl_ms * 1000, now, limit as i64], timer_row)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(timer_rec(r?)?);
            }
            out.sort_by_key(|t| t.due_at);
            Ok(out)
        })
        .await
    }

    async fn finish_timer(&self, claim: &ClaimedTimer, next: Option<DateTime<Utc>>) -> Result<()> {
        let (key, epoch) = (claim.key.clone(), claim.epoch);
        self.write(move |c| {
            let n = match next {
                None => c.execute("DELETE FROM timers WHERE key=?1 AND epoch=?2", params![key, epoch])?,
                Some(at) => c.execute(
                    "UPDATE timers SET due_at=?3, epoch=epoch+1, claimed_by=NULL, claim_expires_at=0
                     WHERE key=?1 AND epoch=?2",
                    params![key, epoch, micros(at)],
                )?,
            };
            if n == 0 { Err(Error::Stale) } else { Ok(()) }
        })
        .await
    }

    async fn release_timer_claims_with_prefix(&self, owner_prefix: &str) -> Result<u64> {
        let pat = format!("{}%", owner_prefix.replace('%', "").replace('_', "\\_"));
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE timers SET claimed_by=NULL, claim_expires_at=0, epoch=epoch+1
                 WHERE claimed_by LIKE ?1 ESCAPE '\\'",
                [pat],
            )? as u64)
        })
        .await
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>> {
        self.read(move |c| {
            let at: Option<i64> = c
                .prepare_cached("SELECT MIN(due_at) FROM timers WHERE claimed_by IS NULL")?
                .query_row([], |r| r.get(0))?;
            Ok(at.map(from_micros))
        })
        .await
    }

    async fn due_timer_count(&self, now: DateTime<Utc>) -> Result<u64> {
        let now = micros(now);
        self.read(move |c| {
            let n: i64 = c
                .prepare_cached("SELECT COUNT(*) FROM timers WHERE due_at <= ?1 AND claimed_by IS NULL")?
                .query_row([now], |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }

    async fn get_timer(&self, key: &str) -> Result<Option<ClaimedTimer>> {
        let key = key.to_owned();
        self.read(move |c| {
            c.query_row("SELECT key, kind, due_at, payload, epoch FROM timers WHERE key=?1", [key], timer_row)
                .optional()?
                .map(timer_rec)
                .transpose()
        })
        .await
    }
}
