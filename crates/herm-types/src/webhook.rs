//! Outbound webhooks and customer budgets: what an operator registers, what herm sends and
//! how each delivery went. No I/O.
//!
//! A delivery's body is built from a committed event, which is redacted before it is
//! written, and carries ids, statuses, codes and usage: never a secret value, a prompt or a
//! tool's output.

use crate::config::FieldError;
use crate::config::limits::MAX_CUSTOMER_ID;
use crate::ids::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an operator can be told of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum WebhookEvent {
    /// A run stopped to wait for a person (an approval or a question).
    #[serde(rename = "run.waiting")]
    RunWaiting,
    #[serde(rename = "run.completed")]
    RunCompleted,
    /// A run ended with an error (a budget, a provider failure, a limit…).
    #[serde(rename = "run.failed")]
    RunFailed,
    /// A budget stopped a run.
    #[serde(rename = "budget.reached")]
    BudgetReached,
    /// An automation was paused (by herm after failed runs, by the agent or an operator).
    #[serde(rename = "automation.paused")]
    AutomationPaused,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 5] =
        [Self::RunWaiting, Self::RunCompleted, Self::RunFailed, Self::BudgetReached, Self::AutomationPaused];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunWaiting => "run.waiting",
            Self::RunCompleted => "run.completed",
            Self::RunFailed => "run.failed",
            Self::BudgetReached => "budget.reached",
            Self::AutomationPaused => "automation.paused",
        }
    }
}

/// A customer id as deployments accept it (`customer_id`): not blank, at most
/// [`MAX_CUSTOMER_ID`] bytes.
pub fn valid_customer_id(c: &str) -> bool {
    !c.trim().is_empty() && c.len() <= MAX_CUSTOMER_ID
}

/// Body of `POST /v1/webhooks`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// Where deliveries are POSTed (http or https).
    pub url: String,
    /// The events sent there (at least one).
    pub events: Vec<WebhookEvent>,
    /// The vault secret (`sec_…`) that signs deliveries (HMAC-SHA256).
    pub secret: SecretId,
    /// Only this deployment's events (all deployments when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<DeploymentId>,
    /// Only this customer's deployments' events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl WebhookSpec {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let url_ok = (self.url.starts_with("http://") || self.url.starts_with("https://"))
            && self.url.len() <= 2048
            && !self.url.chars().any(char::is_whitespace);
        if !url_ok {
            errs.push(FieldError::new("url", "must be an http(s) URL of at most 2048 characters"));
        }
        if self.events.is_empty() {
            errs.push(FieldError::new("events", "name at least one event"));
        }
        if self.description.as_ref().is_some_and(|d| d.len() > 1024) {
            errs.push(FieldError::new("description", "longer than 1024 bytes"));
        }
        if self.customer_id.as_deref().is_some_and(|c| !valid_customer_id(c)) {
            errs.push(FieldError::new("customer_id", format!("1-{MAX_CUSTOMER_ID} bytes")));
        }
        errs
    }

    /// Whether an event of `deployment` (of `customer`) of this kind goes here.
    pub fn wants(&self, kind: WebhookEvent, deployment: &DeploymentId, customer: &str) -> bool {
        self.events.contains(&kind)
            && self.deployment_id.as_ref().is_none_or(|d| d == deployment)
            && self.customer_id.as_deref().is_none_or(|c| c == customer)
    }
}

/// A registered webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    pub id: WebhookId,
    #[serde(flatten)]
    pub spec: WebhookSpec,
    pub created_at: DateTime<Utc>,
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not yet accepted; tried again at `next_attempt_at`.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt failed; no more are made.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

/// One event's delivery to one webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    /// The event delivered: the same for every webhook it goes to, and the `webhook-id`
    /// header a receiver deduplicates by.
    pub event_id: EventId,
    pub event: WebhookEvent,
    pub status: DeliveryStatus,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status of the last attempt, if it got an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
    /// The body sent (the same bytes every attempt).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// A customer's limits across its deployments (`PUT /v1/customers/{id}/limits`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerLimits {
    /// What the customer's runs may spend per UTC day, all deployments together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_daily_cost_usd: Option<f64>,
}

impl CustomerLimits {
    pub fn validate(&self) -> Vec<FieldError> {
        match self.max_daily_cost_usd {
            Some(v) if !v.is_finite() || v <= 0.0 => {
                vec![FieldError::new("max_daily_cost_usd", "must be a positive number of USD")]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn specs_are_checked_and_filter_by_deployment_and_customer() {
        let (dep, secret) = (DeploymentId::new(), SecretId::new());
        let spec: WebhookSpec = serde_json::from_value(json!({
            "url": "https://example.test/hook", "events": ["run.completed", "budget.reached"],
            "secret": secret, "customer_id": "acme"
        }))
        .unwrap();
        assert!(spec.validate().is_empty());
        assert!(spec.wants(WebhookEvent::RunCompleted, &dep, "acme"));
        assert!(!spec.wants(WebhookEvent::RunCompleted, &dep, "other"));
        assert!(!spec.wants(WebhookEvent::RunFailed, &dep, "acme"));
        let bad = WebhookSpec { url: "ftp://x".into(), events: vec![], ..spec };
        let fields: Vec<String> = bad.validate().into_iter().map(|e| e.path).collect();
        assert_eq!(fields, ["url", "events"]);
        let unknown = json!({"url": "https://x", "events": ["run.exploded"], "secret": secret});
        assert!(serde_json::from_value::<WebhookSpec>(unknown).is_err());
        assert_eq!(serde_json::to_value(WebhookEvent::ALL).unwrap()[0], "run.waiting");
    }

    #[test]
    fn customer_budgets_are_positive() {
        assert!(CustomerLimits { max_daily_cost_usd: Some(2.0) }.validate().is_empty());
        assert_eq!(CustomerLimits { max_daily_cost_usd: Some(0.0) }.validate().len(), 1);
    }
}
