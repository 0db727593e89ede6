//! The dispatcher: one loop per node that turns the store's outbox into deliveries (one per
//! webhook that wants the event) and sends the due ones, eight at a time, recording each
//! attempt before the next batch. It sleeps until the next delivery is due, or until the
//! bus's tap says an event a webhook may want was committed.

use super::plan::{next_attempt, payload, webhook_event};
use super::sign::signature;
use crate::{Engine, Result};
use futures::StreamExt;
use herm_types::webhook::{Delivery, DeliveryStatus, Webhook};
use herm_types::*;
use std::collections::HashMap;
use std::time::Duration;

/// Outbox entries and deliveries taken per look.
const BATCH: usize = 64;
/// Sends in flight at once.
const PARALLEL: usize = 8;
/// The longest sleep between looks (a backstop: the tap wakes the loop).
const IDLE: Duration = Duration::from_secs(5);

impl Engine {
    pub(crate) async fn webhook_loop(&self) {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.options().webhooks.timeout)
            .user_agent(concat!("herm/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        loop {
            if let Err(e) = self.fill_deliveries().await {
                tracing::warn!(error = %e, "webhook outbox could not be read");
            }
            if let Err(e) = self.send_due(&client).await {
                tracing::warn!(error = %e, "webhook deliveries could not be sent");
            }
            let wait = match self.store().next_delivery_at().await {
                Ok(Some(at)) => (at - now()).to_std().unwrap_or(Duration::ZERO).clamp(Duration::from_millis(10), IDLE),
                _ => IDLE,
            };
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = self.inner.webhook_wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Turns outbox entries into deliveries until the outbox is empty.
    async fn fill_deliveries(&self) -> Result<()> {
        loop {
            let entries = self.store().outbox(BATCH).await?;
            if entries.is_empty() {
                return Ok(());
            }
            let hooks = self.store().list_webhooks().await?;
            let mut customers: HashMap<DeploymentId, String> = HashMap::new();
            for (id, event) in entries {
                let mut deliveries = Vec::new();
                if let Some(e) = event
                    && let Some(kind) = webhook_event(&e.kind)
                {
                    let customer = match customers.get(&e.deployment_id) {
                        Some(c) => c.clone(),
                        None => {
                            let c = self.store().get_deployment(&e.deployment_id).await?.map(|d| d.spec.customer_id);
                            let c = c.unwrap_or_default();
                            customers.insert(e.deployment_id.clone(), c.clone());
                            c
                        }
                    };
                    let body = payload(&e, kind, &customer);
                    for h in hooks.iter().filter(|h| h.spec.wants(kind, &e.deployment_id, &customer)) {
                        deliveries.push(Delivery {
                            id: DeliveryId::new(),
                            webhook_id: h.id.clone(),
                            event_id: e.id.clone(),
                            event: kind,
                            status: DeliveryStatus::Pending,
                            attempts: 0,
                            next_attempt_at: Some(now()),
                            last_status: None,
                            last_error: None,
                            created_at: now(),
                            delivered_at: None,
                            payload: body.clone(),
                        });
                    }
                }
                self.store().enqueue_deliveries(&id, deliveries).await?;
            }
        }
    }

    /// Sends every due delivery once.
    async fn send_due(&self, client: &reqwest::Client) -> Result<()> {
        let due = self.store().due_deliveries(now(), BATCH).await?;
        if due.is_empty() {
            return Ok(());
        }
        let hooks: HashMap<WebhookId, Webhook> =
            self.store().list_webhooks().await?.into_iter().map(|h| (h.id.clone(), h)).collect();
        let sends = due.into_iter().filter_map(|d| hooks.get(&d.webhook_id).map(|h| self.attempt(client, h, d)));
        let results: Vec<Result<()>> = futures::stream::iter(sends).buffer_unordered(PARALLEL).collect().await;
        results.into_iter().collect()
    }

    /// One attempt at one delivery, recorded.
    async fn attempt(&self, client: &reqwest::Client, hook: &Webhook, d: Delivery) -> Result<()> {
        let opts = &self.options().webhooks;
        let outcome = match self.secrets().value(&hook.spec.secret).await? {
            None => Err((None, "the webhook's signing secret is no longer in the vault".to_owned())),
            Some(secret) => {
                let body = serde_json::to_vec(&d.payload).unwrap_or_default();
                let ts = now().timestamp();
                let sig = signature(secret.expose().as_bytes(), d.event_id.as_str(), ts, &body);
                let sent = client
                    .post(&hook.spec.url)
                    .header("content-type", "application/json")
                    .header("webhook-id", d.event_id.as_str())
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", sig)
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
                    Ok(r) => Err((Some(r.status().as_u16()), format!("the endpoint answered {}", r.status()))),
                    Err(e) if e.is_timeout() => Err((None, "the endpoint did not answer in time".to_owned())),
                    Err(_) => Err((None, "the endpoint could not be reached".to_owned())),
                }
            }
        };
        let expected = d.attempts;
        let mut next = Delivery { attempts: d.attempts + 1, ..d };
        let result = match outcome {
            Ok(status) => {
                next.status = DeliveryStatus::Delivered;
                (next.last_status, next.last_error, next.delivered_at, next.next_attempt_at) =
                    (Some(status), None, Some(now()), None);
                "delivered"
            }
            Err((status, why)) => {
                (next.last_status, next.last_error) = (status, Some(why));
                match next_attempt(next.attempts, opts.retry_base, opts.max_attempts) {
                    Some(wait) => {
                        next.next_attempt_at = Some(now() + chrono::Duration::from_std(wait).unwrap_or_default());
                        "retry"
                    }
                    None => {
                        (next.status, next.next_attempt_at) = (DeliveryStatus::Failed, None);
                        "failed"
                    }
                }
            }
        };
        metrics::counter!("herm_webhook_deliveries_total", "result" => result).increment(1);
        if !self.store().record_attempt(&next, expected).await? {
            tracing::debug!(delivery = %next.id, "a delivery's attempt was recorded by another sender");
        }
        Ok(())
    }
}
