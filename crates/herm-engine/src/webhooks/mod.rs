//! Outbound webhooks: the operator's endpoints (`POST /v1/webhooks`), which committed events
//! each is told of, and their deliveries.
//!
//! - `plan.rs` (pure): which webhook event a committed event is, its payload, the retry
//!   schedule.
//! - `sign.rs` (pure): the signature (HMAC-SHA256 over `id.timestamp.body`, the Standard
//!   Webhooks scheme), so a receiver can check the sender and the freshness.
//! - `deliver.rs`: the dispatcher, a loop that turns the store's outbox into deliveries and
//!   sends the due ones, recording each attempt.
//!
//! Delivery is at least once: a crash between a receiver's 2xx and its record repeats that
//! delivery, with the same `webhook-id` (the event id), which receivers deduplicate by.

pub(crate) mod deliver;
pub mod plan;
pub mod sign;

use crate::{Engine, Error, Result};
use herm_types::config::FieldError;
use herm_types::webhook::{Delivery, Webhook, WebhookSpec};
use herm_types::*;
use std::time::Duration;

/// How deliveries are made.
#[derive(Clone, Debug)]
pub struct WebhookOptions {
    /// The wait before the second attempt; it doubles each time, up to an hour.
    pub retry_base: Duration,
    /// Attempts before a delivery is given up as `failed`.
    pub max_attempts: u32,
    /// Longest wait for an endpoint's answer.
    pub timeout: Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self { retry_base: Duration::from_secs(5), max_attempts: 12, timeout: Duration::from_secs(10) }
    }
}

impl Engine {
    pub async fn create_webhook(&self, spec: WebhookSpec) -> Result<Webhook> {
        let errs = spec.validate();
        if !errs.is_empty() {
            return Err(Error::Invalid(errs));
        }
        if self.store().get_secret(&spec.secret).await?.is_none() {
            return Err(Error::InvalidSecretRef(vec![FieldError::new("secret", "no such secret in the vault")]));
        }
        if let Some(d) = &spec.deployment_id {
            match self.deployment(d).await {
                Err(Error::NotFound(_)) => {
                    return Err(Error::Invalid(vec![FieldError::new("deployment_id", "no such deployment")]));
                }
                other => other?,
            };
        }
        let w = Webhook { id: WebhookId::new(), spec, created_at: now() };
        self.store().insert_webhook(w.clone()).await?;
        Ok(w)
    }

    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        Ok(self.store().list_webhooks().await?)
    }

    pub async fn webhook(&self, id: &WebhookId) -> Result<Webhook> {
        self.store().get_webhook(id).await?.ok_or(Error::NotFound("webhook"))
    }

    pub async fn delete_webhook(&self, id: &WebhookId) -> Result<()> {
        if self.store().delete_webhook(id).await? { Ok(()) } else { Err(Error::NotFound("webhook")) }
    }

    /// The webhook's deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        id: &WebhookId,
        before: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        self.webhook(id).await?;
        Ok(self.store().list_deliveries(id, before, limit).await?)
    }
}
