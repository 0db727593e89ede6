//! Outbound webhooks in SQLite. The outbox is filled by the append (`append.rs`), inside its
//! transaction, while any webhook exists; turning an entry into
//! deliveries and removing it is one transaction, and each attempt is recorded only by the
//! sender that made it (conditional on the attempt count it read).

use super::rows::*;
use super::{SqliteStore, from_micros, micros, now_micros};
use crate::*;
use herm_types::webhook::{Delivery, DeliveryStatus, Webhook, WebhookEvent};
use rusqlite::{OptionalExtension, Row, params};

pub(crate) const HOOK_COLS: &str = "id, spec, created_at";
pub(crate) type HookRow = (String, String, i64);
fn hook_row(r: &Row) -> rusqlite::Result<HookRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}
pub(crate) fn hook_rec(t: HookRow) -> Result<Webhook> {
    Ok(Webhook { id: parse_id(t.0)?, spec: json(&t.1)?, created_at: from_micros(t.2) })
}

pub(crate) const DELIVERY_COLS: &str = "id, webhook_id, event_id, event, status, attempts, next_attempt_at, last_status, \
                             last_error, created_at, delivered_at, payload";
pub(crate) type DeliveryRow =
    (String, String, String, String, String, i64, Option<i64>, Option<i64>, Option<String>, i64, Option<i64>, String);
fn delivery_row(r: &Row) -> rusqlite::Result<DeliveryRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
    ))
}
pub(crate) fn delivery_rec(t: DeliveryRow) -> Result<Delivery> {
    let event: WebhookEvent = serde_json::from_value(serde_json::Value::String(t.3)).map_err(corrupt)?;
    let status: DeliveryStatus = serde_json::from_value(serde_json::Value::String(t.4)).map_err(corrupt)?;
    Ok(Delivery {
        id: parse_id(t.0)?,
        webhook_id: parse_id(t.1)?,
        event_id: parse_id(t.2)?,
        event,
        status,
        attempts: t.5 as u32,
        next_attempt_at: t.6.map(from_micros),
        last_status: t.7.map(|s| s as u16),
        last_error: t.8,
        created_at: from_micros(t.9),
        delivered_at: t.10.map(from_micros),
        payload: json(&t.11)?,
    })
}

#[async_trait::async_trait]
impl WebhookStore for SqliteStore {
    async fn insert_webhook(&self, w: Webhook) -> Result<()> {
        let spec = to_json(&w.spec)?;
        self.write(move |c| {
            c.execute(
                "INSERT INTO webhooks (id, spec, created_at) VALUES (?1,?2,?3)",
                params![w.id.as_str(), spec, micros(w.created_at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        self.read(|c| collect(c, &format!("SELECT {HOOK_COLS} FROM webhooks ORDER BY id"), [], hook_row, hook_rec))
            .await
    }

    async fn get_webhook(&self, id: &WebhookId) -> Result<Option<Webhook>> {
        let id = id.to_string();
        self.read(move |c| {
            c.query_row(&format!("SELECT {HOOK_COLS} FROM webhooks WHERE id=?1"), [id], hook_row)
                .optional()?
                .map(hook_rec)
                .transpose()
        })
        .await
    }

    async fn delete_webhook(&self, id: &WebhookId) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| {
            let gone = c.execute("DELETE FROM webhooks WHERE id=?1", [id])? > 0;
            // The last webhook gone: nothing will take the outbox's entries.
            c.execute("DELETE FROM webhook_outbox WHERE NOT EXISTS (SELECT 1 FROM webhooks)", [])?;
            Ok(gone)
        })
        .await
    }

    async fn outbox(&self, limit: usize) -> Result<Vec<(EventId, Option<Event>)>> {
        self.read(move |c| {
            let ids: Vec<String> = {
                let mut st =
                    c.prepare_cached("SELECT event_id FROM webhook_outbox ORDER BY created_at, event_id LIMIT ?1")?;
                st.query_map([limit as i64], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
            };
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let event = c
                    .prepare_cached(&format!("SELECT {EVENT_COLS} FROM events WHERE id=?1"))?
                    .query_row([&id], event_row)
                    .optional()?
                    .map(event_rec)
                    .transpose()?;
                out.push((parse_id(id)?, event));
            }
            Ok(out)
        })
        .await
    }

    async fn enqueue_deliveries(&self, event: &EventId, deliveries: Vec<Delivery>) -> Result<()> {
        let event = event.to_string();
        let rows = deliveries
            .into_iter()
            .map(|d| Ok((d.id.to_string(), d.webhook_id.to_string(), d.event.as_str(), to_json(&d.payload)?, d)))
            .collect::<Result<Vec<_>>>()?;
        self.write(move |c| {
            let now = now_micros();
            for (id, hook, kind, payload, d) in &rows {
                c.prepare_cached(
                    "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event, status, next_attempt_at,
                     created_at, payload)
                     SELECT ?1,?2,?3,?4,'pending',?5,?6,?7 WHERE EXISTS (SELECT 1 FROM webhooks WHERE id=?2)
                     ON CONFLICT DO NOTHING",
                )?
                .execute(params![
                    id,
                    hook,
                    event,
                    kind,
                    d.next_attempt_at.map(micros).unwrap_or(now),
                    now,
                    payload
                ])?;
            }
            c.prepare_cached("DELETE FROM webhook_outbox WHERE event_id=?1")?.execute([&event])?;
            Ok(())
        })
        .await
    }

    async fn due_deliveries(&self, now: chrono::DateTime<chrono::Utc>, limit: usize) -> Result<Vec<Delivery>> {
        let now = micros(now);
        self.read(move |c| {
            collect(
                c,
                &format!(
                    "SELECT {DELIVERY_COLS} FROM webhook_deliveries
                     WHERE status='pending' AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2"
                ),
                params![now, limit as i64],
                delivery_row,
                delivery_rec,
            )
        })
        .await
    }

    async fn record_attempt(&self, d: &Delivery, expected_attempts: u32) -> Result<bool> {
        let d = d.clone();
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE webhook_deliveries SET status=?2, attempts=?3, next_attempt_at=?4, last_status=?5,
                     last_error=?6, delivered_at=?7
                     WHERE id=?1 AND status='pending' AND attempts=?8",
                )?
                .execute(params![
                    d.id.as_str(),
                    d.status.as_str(),
                    d.attempts as i64,
                    d.next_attempt_at.map(micros),
                    d.last_status.map(i64::from),
                    d.last_error,
                    d.delivered_at.map(micros),
                    expected_attempts as i64
                ])?;
            Ok(n > 0)
        })
        .await
    }

    async fn list_deliveries(
        &self,
        webhook: &WebhookId,
        before: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let (hook, before) = (webhook.to_string(), before.map(|b| b.to_string()));
        self.read(move |c| {
            collect(
                c,
                &format!(
                    "SELECT {DELIVERY_COLS} FROM webhook_deliveries
                     WHERE webhook_id=?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3"
                ),
                params![hook, before, limit as i64],
                delivery_row,
                delivery_rec,
            )
        })
        .await
    }

    async fn next_delivery_at(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        self.read(|c| {
            let at: Option<i64> = c
                .prepare_cached("SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE status='pending'")?
                .query_row([], |r| r.get(0))?;
            Ok(at.map(from_micros))
        })
        .await
    }
}
