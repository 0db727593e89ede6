//! Outbound webhooks on PostgreSQL: endpoints, the outbox (filled by a trigger in the
//! append's own transaction) and deliveries, each attempt recorded once.

use super::{PostgresStore, cols, exec, opt, rows};
use crate::sqlite::rows::*;
use crate::sqlite::webhooks::{DELIVERY_COLS, HOOK_COLS, delivery_rec, hook_rec};
use crate::sqlite::{from_micros, micros, now_micros};
use crate::*;
use herm_types::webhook::{Delivery, Webhook};

fn hook_of(r: &tokio_postgres::Row) -> Result<Webhook> {
    hook_rec(cols!(r; 0, 1, 2))
}
fn delivery_of(r: &tokio_postgres::Row) -> Result<Delivery> {
    delivery_rec(cols!(r; 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11))
}

#[async_trait::async_trait]
impl WebhookStore for PostgresStore {
    async fn insert_webhook(&self, w: Webhook) -> Result<()> {
        let c = self.client().await?;
        exec(
            &c,
            "INSERT INTO webhooks (id, spec, created_at) VALUES ($1,$2,$3)",
            &[&w.id.as_str(), &to_json(&w.spec)?, &micros(w.created_at)],
        )
        .await?;
        Ok(())
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        let c = self.client().await?;
        rows(&c, &format!("SELECT {HOOK_COLS} FROM webhooks ORDER BY id"), &[], hook_of).await
    }

    async fn get_webhook(&self, id: &WebhookId) -> Result<Option<Webhook>> {
        let c = self.client().await?;
        opt(&c, &format!("SELECT {HOOK_COLS} FROM webhooks WHERE id=$1"), &[&id.as_str()], hook_of).await
    }

    async fn delete_webhook(&self, id: &WebhookId) -> Result<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let gone = exec(&tx, "DELETE FROM webhooks WHERE id=$1", &[&id.as_str()]).await? > 0;
        exec(&tx, "DELETE FROM webhook_outbox WHERE NOT EXISTS (SELECT 1 FROM webhooks)", &[]).await?;
        tx.commit().await?;
        Ok(gone)
    }

    async fn outbox(&self, limit: usize) -> Result<Vec<(EventId, Option<Event>)>> {
        let c = self.client().await?;
        let cols = EVENT_COLS.split(", ").map(|c| format!("e.{c}")).collect::<Vec<_>>().join(", ");
        rows(
            &c,
            &format!(
                "SELECT o.event_id, {cols} FROM webhook_outbox o LEFT JOIN events e ON e.id = o.event_id
                 ORDER BY o.created_at, o.event_id LIMIT $1"
            ),
            &[&(limit as i64)],
            |r| {
                let id = parse_id(r.try_get(0)?)?;
                let event = match r.try_get::<_, Option<String>>(1)? {
                    Some(_) => Some(event_rec(cols!(r; 1, 2, 3, 4, 5, 6, 7, 8))?),
                    None => None,
                };
                Ok((id, event))
            },
        )
        .await
    }

    async fn enqueue_deliveries(&self, event: &EventId, deliveries: Vec<Delivery>) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let now = now_micros();
        for d in &deliveries {
            exec(
                &tx,
                "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event, status, next_attempt_at, created_at, payload)
                 SELECT $1,$2,$3,$4,'pending',$5,$6,$7 WHERE EXISTS (SELECT 1 FROM webhooks WHERE id=$2)
                 ON CONFLICT DO NOTHING",
                &[
                    &d.id.as_str(),
                    &d.webhook_id.as_str(),
                    &event.as_str(),
                    &d.event.as_str(),
                    &d.next_attempt_at.map(micros).unwrap_or(now),
                    &now,
                    &to_json(&d.payload)?,
                ],
            )
            .await?;
        }
        exec(&tx, "DELETE FROM webhook_outbox WHERE event_id=$1", &[&event.as_str()]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn due_deliveries(&self, now: chrono::DateTime<chrono::Utc>, limit: usize) -> Result<Vec<Delivery>> {
        let c = self.client().await?;
        rows(
            &c,
            &format!(
                "SELECT {DELIVERY_COLS} FROM webhook_deliveries
                 WHERE status='pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2"
            ),
            &[&micros(now), &(limit as i64)],
            delivery_of,
        )
        .await
    }

    async fn record_attempt(&self, d: &Delivery, expected_attempts: u32) -> Result<bool> {
        let c = self.client().await?;
        Ok(exec(
            &c,
            "UPDATE webhook_deliveries SET status=$2, attempts=$3, next_attempt_at=$4, last_status=$5,
             last_error=$6, delivered_at=$7 WHERE id=$1 AND status='pending' AND attempts=$8",
            &[
                &d.id.as_str(),
                &d.status.as_str(),
                &i64::from(d.attempts),
                &d.next_attempt_at.map(micros),
                &d.last_status.map(i64::from),
                &d.last_error,
                &d.delivered_at.map(micros),
                &i64::from(expected_attempts),
            ],
        )
        .await?
            > 0)
    }

    async fn list_deliveries(
        &self,
        webhook: &WebhookId,
        before: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let c = self.client().await?;
        rows(
            &c,
            &format!(
                "SELECT {DELIVERY_COLS} FROM webhook_deliveries
                 WHERE webhook_id=$1 AND ($2::text IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
            ),
            &[&webhook.as_str(), &before.as_ref().map(|b| b.as_str()), &(limit as i64)],
            delivery_of,
        )
        .await
    }

    async fn next_delivery_at(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        let c = self.client().await?;
        let at: Option<i64> =
            super::value(&c, "SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE status='pending'", &[]).await?;
        Ok(at.map(from_micros))
    }
}
