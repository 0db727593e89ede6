//! What a webhook is told, and when it is tried again. Pure.

use herm_types::proactive::AutomationState;
use herm_types::webhook::WebhookEvent;
use herm_types::*;
use serde_json::{Value, json};
use std::time::Duration;

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The webhook event a committed event is, if any.
pub fn webhook_event(kind: &EventKind) -> Option<WebhookEvent> {
    match kind {
        EventKind::RunStatus { status: RunStatus::WaitingOnHuman, .. } => Some(WebhookEvent::RunWaiting),
        EventKind::RunStatus { status: RunStatus::Completed, .. } => Some(WebhookEvent::RunCompleted),
        EventKind::RunStatus { status: RunStatus::Error, .. } => Some(WebhookEvent::RunFailed),
        EventKind::Budget { .. } => Some(WebhookEvent::BudgetReached),
        EventKind::AutomationStatus { status: AutomationState::Paused, .. } => Some(WebhookEvent::AutomationPaused),
        _ => None,
    }
}

/// The body sent for `e`: ids, statuses, codes and usage (never a message, a tool's output
/// or any value from the vault).
pub fn payload(e: &Event, kind: WebhookEvent, customer: &str) -> Value {
    let mut data = json!({
        "deployment_id": e.deployment_id,
        "customer_id": customer,
        "thread_id": e.thread_id,
        "run_id": e.run_id,
        "sequence": e.sequence.0,
    });
    let extra = match &e.kind {
        EventKind::RunStatus { status, kind, trigger, error, usage } => json!({
            "status": status, "run_kind": kind, "trigger": trigger, "error": error, "usage": usage,
        }),
        EventKind::Budget { scope, limit_usd, spent_usd, next_call_usd } => json!({
            "scope": scope, "limit_usd": limit_usd, "spent_usd": spent_usd, "next_call_usd": next_call_usd,
        }),
        EventKind::AutomationStatus { automation_id, reason, .. } => {
            json!({"automation_id": automation_id, "reason": reason})
        }
        _ => json!({}),
    };
    if let (Some(d), Value::Object(x)) = (data.as_object_mut(), extra) {
        d.extend(x.into_iter().filter(|(_, v)| !v.is_null()));
    }
    json!({"id": e.id, "type": kind, "created_at": e.created_at, "data": data})
}

/// The wait before the next attempt after `attempts` failed ones (the first retry waits
/// `base`, each later one twice as long, at most an hour); `None` once `max_attempts` were
/// made.
pub fn next_attempt(attempts: u32, base: Duration, max_attempts: u32) -> Option<Duration> {
    if attempts >= max_attempts {
        return None;
    }
    let factor = 1u32.checked_shl(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
    Some(base.saturating_mul(factor).min(MAX_BACKOFF))
}

#[cfg(test)]
mod tests {
    use super::*;
    use herm_types::event::RunError;

    fn event(kind: EventKind) -> Event {
        Event {
            id: EventId::new(),
            sequence: Sequence(7),
            deployment_sequence: DeploymentSeq(9),
            deployment_id: DeploymentId::new(),
            thread_id: ThreadId::new(),
            run_id: Some(RunId::new()),
            created_at: now(),
            kind,
        }
    }

    fn status(status: RunStatus, error: Option<RunError>) -> EventKind {
        EventKind::RunStatus { status, kind: RunKind::User, trigger: None, error, usage: None }
    }

    #[test]
    fn events_map_to_webhook_events() {
        let cases = [
            (status(RunStatus::WaitingOnHuman, None), Some(WebhookEvent::RunWaiting)),
            (status(RunStatus::Completed, None), Some(WebhookEvent::RunCompleted)),
            (status(RunStatus::Error, None), Some(WebhookEvent::RunFailed)),
            (status(RunStatus::Running, None), None),
            (status(RunStatus::Interrupted, None), None),
            (
                EventKind::AutomationStatus {
                    automation_id: AutomationId::new(),
                    status: AutomationState::Paused,
                    reason: None,
                },
                Some(WebhookEvent::AutomationPaused),
            ),
            (
                EventKind::AutomationStatus {
                    automation_id: AutomationId::new(),
                    status: AutomationState::Resumed,
                    reason: None,
                },
                None,
            ),
        ];
        for (kind, want) in cases {
            assert_eq!(webhook_event(&kind), want, "{kind:?}");
        }
    }

    #[test]
    fn payloads_carry_ids_and_codes() {
        let err = RunError { code: "insufficient_credits".into(), message: "over".into() };
        let e = event(status(RunStatus::Error, Some(err)));
        let p = payload(&e, WebhookEvent::RunFailed, "acme");
        assert_eq!(p["id"], e.id.as_str());
        assert_eq!(p["type"], "run.failed");
        assert_eq!(p["data"]["customer_id"], "acme");
        assert_eq!(p["data"]["error"]["code"], "insufficient_credits");
        assert_eq!(p["data"]["sequence"], 7);
        assert!(p["data"].get("usage").is_none(), "absent fields are left out: {p}");
    }

    #[test]
    fn retries_back_off_to_an_hour_and_stop() {
        let base = Duration::from_secs(5);
        let waits: Vec<Option<u64>> =
            [1, 2, 3, 12, 20].iter().map(|&n| next_attempt(n, base, 20).map(|d| d.as_secs())).collect();
        assert_eq!(waits, [Some(5), Some(10), Some(20), Some(3600), None]);
        assert_eq!(next_attempt(3, base, 3), None);
    }
}
