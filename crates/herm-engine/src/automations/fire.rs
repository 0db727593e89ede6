//! Firing automations: the scheduler's timer handler (which slots are due, what the missed
//! policy makes of them), run-now, webhook triggers, and pausing an automation whose runs
//! keep failing. Every firing is one append marked with its key (the slot, the delivery id),
//! so it starts its run exactly once however often a crashed or retried handler tries.

use super::{firing_view, next_slot};
use crate::submit::Origin;
use crate::timers::Fired;
use crate::{Engine, Error, Result};
use chrono::{DateTime, Duration, Utc};
use herm_store::{AutomationRecord, ClaimedTimer, FiringRecord, NewFiring, Once, RunRecord};
use herm_types::config::BusyPolicy;
use herm_types::proactive::*;
use herm_types::*;
use serde_json::Value;

/// A slot handled within this long of its due time is on time; older ones were missed and
/// follow the automation's `missed_policy`.
const GRACE_SECS: i64 = 60;
/// Missed slots looked at in one catch-up at most (older ones are counted, not recorded).
const MAX_CATCH_UP: usize = 100;
/// Largest webhook payload passed to the model, in bytes of JSON.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// What to do with one due slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SlotPlan {
    Fire,
    Skip(String),
}

/// Decides each due slot (oldest first): on-time slots fire; missed ones follow `policy`.
/// `total` counts the slots due, including older ones left out of `slots`.
pub(crate) fn plan_slots(
    slots: &[DateTime<Utc>],
    total: usize,
    now: DateTime<Utc>,
    policy: MissedPolicy,
) -> Vec<(DateTime<Utc>, SlotPlan)> {
    let on_time = |s: &DateTime<Utc>| now - *s <= Duration::seconds(GRACE_SECS);
    let any_on_time = slots.iter().any(on_time);
    let latest_missed = slots.iter().rev().find(|s| !on_time(s)).copied();
    let mut out: Vec<(DateTime<Utc>, SlotPlan)> = slots
        .iter()
        .map(|s| {
            let plan = if on_time(s) {
                SlotPlan::Fire
            } else {
                match policy {
                    MissedPolicy::All => SlotPlan::Fire,
                    MissedPolicy::Latest if !any_on_time && Some(*s) == latest_missed => SlotPlan::Fire,
                    MissedPolicy::Latest => {
                        SlotPlan::Skip("missed; a later slot ran instead (missed_policy: latest)".into())
                    }
                    MissedPolicy::Skip => {
                        SlotPlan::Skip("missed while herm was not running (missed_policy: skip)".into())
                    }
                }
            };
            (*s, plan)
        })
        .collect();
    if total > slots.len()
        && let Some((_, plan)) = out.first_mut()
    {
        let older = total - slots.len();
        *plan = SlotPlan::Skip(format!("missed, with {older} older slots not recorded"));
    }
    out
}

/// Failed runs in a row, newest first, over firings that ran (active runs are passed over).
pub(crate) fn consecutive_failures(firings: &[FiringRecord]) -> u32 {
    let mut n = 0;
    for f in firings.iter().filter(|f| !f.firing.skipped) {
        match f.run_status {
            Some(RunStatus::Error) => n += 1,
            Some(s) if s.is_terminal() => break,
            _ => {}
        }
    }
    n
}

impl Engine {
    /// The scheduler: an automation's timer is due. Fire (or skip) every slot from the
    /// timer's due time to now, then set the timer at the next slot.
    pub(crate) async fn automation_due(&self, t: &ClaimedTimer) -> Fired {
        let Some(id) = t.key.strip_prefix("automation:").and_then(|s| AutomationId::parse(s).ok()) else {
            return Fired::Done;
        };
        let rec = match self.store().get_automation(&id).await {
            Ok(Some(r)) if r.enabled => r,
            Ok(_) => return Fired::Done,
            Err(e) => return retry_later(t.due_at, &id, &e.into()),
        };
        let Some(cron) = rec.spec.cron.clone() else { return Fired::Done };
        let Ok(schedule) = crate::schedule::Schedule::parse(&cron, &rec.spec.timezone) else { return Fired::Done };
        // Never before the due time (a test clock may stand still while the claim's lead passes).
        let now = self.now().max(t.due_at);
        let (slots, total) = schedule.slots_between(t.due_at, now, MAX_CATCH_UP);
        for (slot, plan) in plan_slots(&slots, total, now, rec.spec.missed_policy) {
            let key = slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let result = match plan {
                SlotPlan::Fire => {
                    self.fire_automation(&rec, FiringSource::Schedule, key, Some(slot), None).await.map(|_| ())
                }
                SlotPlan::Skip(reason) => self.skip(&rec, FiringSource::Schedule, key, Some(slot), reason).await,
            };
            match result {
                // Paused (too many failures), or the busy thread refused it: recorded as skipped.
                Ok(()) | Err(Error::Conflict(_) | Error::ThreadBusy) => {}
                Err(Error::NotFound(_)) => return Fired::Done,
                // Keep the timer's due time (the scheduler's cursor): the next tick tries the
                // same slots again, and those that fired are known by their keys.
                Err(e) => return retry_later(t.due_at, &id, &e),
            }
        }
        // An edit, pause or delete meanwhile reset or removed the timer: finishing this claim is
        // then refused and the newer setting stands.
        next_slot(&rec, now).map_or(Fired::Done, Fired::Again)
    }

    /// Fires an automation now (`POST …/automations/{id}/run`).
    pub async fn run_automation_now(&self, dep: &DeploymentId, id: &AutomationId) -> Result<FiredRun> {
        let rec = self.automation_record(dep, id).await?;
        let key = format!("manual:{}", EventId::new());
        self.fire_automation(&rec, FiringSource::Manual, key, None, None).await
    }

    /// A webhook delivery: the token must be the automation's; a repeated delivery id gets
    /// the first delivery's run.
    pub async fn trigger_automation(
        &self,
        id: &str,
        token: &str,
        delivery: Option<&str>,
        payload: Value,
    ) -> Result<FiredRun> {
        let rec = match AutomationId::parse(id) {
            Ok(id) => self.store().get_automation(&id).await?,
            Err(_) => None,
        };
        if payload.to_string().len() > MAX_PAYLOAD {
            return Err(Error::Validation(format!("the payload is larger than {MAX_PAYLOAD} bytes of JSON")));
        }
        let given = crate::access::hash_key(token);
        let Some(rec) = rec.filter(|r| r.token_hash.as_deref().is_some_and(|h| same(h, &given))) else {
            return Err(Error::Unauthorized);
        };
        if !rec.enabled {
            return Err(Error::Conflict("the automation is paused".into()));
        }
        let key = match delivery {
            Some(d) if !d.is_empty() && d.len() <= 200 && d.chars().all(|c| c.is_ascii_graphic()) => {
                format!("webhook:{d}")
            }
            Some(_) => return Err(Error::Validation("`Herm-Delivery-Id` is 1 to 200 visible ASCII characters".into())),
            None => format!("webhook:{}", EventId::new()),
        };
        self.fire_automation(&rec, FiringSource::Webhook, key, None, Some(&payload)).await
    }

    /// Starts the automation's run for `key` once: a key fired before answers with its run.
    async fn fire_automation(
        &self,
        rec: &AutomationRecord,
        source: FiringSource,
        key: String,
        slot: Option<DateTime<Utc>>,
        payload: Option<&Value>,
    ) -> Result<FiredRun> {
        // A slot is marked once by its append (a repeat is refused as a duplicate); a webhook
        // delivery, or a firing that would open a thread, is looked up first, so a replay
        // answers without any other work.
        if (source != FiringSource::Schedule || rec.spec.thread_id.as_deref() == Some("new"))
            && let Some(done) = self.fired_before(&rec.id, &key).await?
        {
            return Ok(done);
        }
        if self.consecutive_failures_reached(rec).await? {
            let reason = format!("paused after {} consecutive failed runs", rec.spec.max_consecutive_failures);
            self.pause_for(rec, reason.clone()).await;
            self.skip(rec, source, key, slot, reason.clone()).await?;
            return Err(Error::Conflict(reason));
        }
        let dep = self.deployment(&rec.deployment_id).await?;
        if !dep.spec.features.automations {
            let reason = "automations are turned off for this deployment (features.automations)".to_owned();
            self.skip(rec, source, key, slot, reason.clone()).await?;
            return Err(Error::Conflict(reason));
        }
        let thread = match rec.spec.thread_id.as_deref() {
            None => dep.default_thread_id.clone(),
            Some("new") => self.create_thread(&dep.id, Some(rec.spec.name.clone())).await?.id,
            Some(t) => t.parse().map_err(|_| Error::NotFound("thread"))?,
        };
        let mut content = rec.spec.instructions.clone();
        if let Some(p) = payload {
            content.push_str(&format!("\n\nThis run was triggered by a webhook with this payload:\n```json\n{p}\n```"));
        }
        let origin = Origin {
            kind: RunKind::Automation,
            trigger: Some(RunTrigger {
                automation_id: Some(rec.id.to_string()),
                slot: slot.map(|s| s.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                ..Default::default()
            }),
            from_timer: source == FiringSource::Schedule,
        };
        let firing = NewFiring {
            automation_id: rec.id.clone(),
            key: key.clone(),
            slot_at: slot,
            source,
            skipped: false,
            run_id: None,
            thread_id: None,
            reason: None,
        };
        match self.submit(&thread, dep.spec.busy_policy, content, Vec::new(), &origin, Some(Once::Firing(firing))).await
        {
            Ok(s) => Ok(FiredRun { run_id: s.run_id, thread_id: thread }),
            Err(Error::Store(herm_store::Error::Duplicate)) => {
                self.fired_before(&rec.id, &key).await?.ok_or(Error::Conflict("the firing was skipped".into()))
            }
            Err(Error::ThreadBusy) if dep.spec.busy_policy == BusyPolicy::Reject => {
                let reason = "the thread was busy (busy_policy: reject)".to_owned();
                self.skip(rec, source, key, slot, reason).await?;
                Err(Error::ThreadBusy)
            }
            Err(e) => Err(e),
        }
    }

    /// The run a key already started, if it did.
    async fn fired_before(&self, id: &AutomationId, key: &str) -> Result<Option<FiredRun>> {
        Ok(self.store().get_firing(id, key).await?.and_then(|f| {
            let v = firing_view(f);
            Some(FiredRun { run_id: v.run_id?, thread_id: v.thread_id? })
        }))
    }

    async fn skip(
        &self,
        rec: &AutomationRecord,
        source: FiringSource,
        key: String,
        slot: Option<DateTime<Utc>>,
        reason: String,
    ) -> Result<()> {
        let f = NewFiring {
            automation_id: rec.id.clone(),
            key,
            slot_at: slot,
            source,
            skipped: true,
            run_id: None,
            thread_id: None,
            reason: Some(reason),
        };
        self.store().insert_firing(f).await?;
        Ok(())
    }

    async fn consecutive_failures_reached(&self, rec: &AutomationRecord) -> Result<bool> {
        let max = rec.spec.max_consecutive_failures.max(1);
        let recent = self.store().list_firings(&rec.id, max as usize * 4).await?;
        Ok(consecutive_failures(&recent) >= max)
    }

    /// A run ended: an automation whose runs keep failing pauses itself now, not at its next
    /// slot.
    pub(crate) async fn automation_run_ended(&self, run: &RunRecord) {
        let Some(id) = run.trigger.as_ref().and_then(|t| t.automation_id.as_deref()) else { return };
        let Ok(id) = AutomationId::parse(id) else { return };
        let Ok(Some(rec)) = self.store().get_automation(&id).await else { return };
        if rec.enabled
            && run.status == RunStatus::Error
            && matches!(self.consecutive_failures_reached(&rec).await, Ok(true))
        {
            let code = run.error.as_ref().map(|e| e.code.clone()).unwrap_or_default();
            let reason = format!(
                "paused after {} consecutive failed runs (last error: {code})",
                rec.spec.max_consecutive_failures
            );
            self.pause_for(&rec, reason).await;
        }
    }

    async fn pause_for(&self, rec: &AutomationRecord, reason: String) {
        tracing::warn!(automation = %rec.id, %reason, "pausing an automation");
        if let Err(e) = self.set_automation_enabled(&rec.deployment_id, &rec.id, false, Some(reason), None).await {
            tracing::warn!(automation = %rec.id, error = %e, "could not pause the automation");
        }
    }

    /// Appends an `automation_status` event to the automation's thread (`thread_id` as its
    /// spec names it; the default thread when it names none or a fresh one per firing).
    pub(crate) async fn automation_event(
        &self,
        dep: &DeploymentId,
        id: &AutomationId,
        thread_id: Option<&str>,
        status: AutomationState,
        reason: Option<String>,
    ) {
        let thread = match thread_id.and_then(|t| ThreadId::parse(t).ok()) {
            Some(t) => t,
            None => match self.deployment(dep).await {
                Ok(d) => d.default_thread_id,
                Err(_) => return,
            },
        };
        let ev = NewEvent::new(None, EventKind::AutomationStatus { automation_id: id.clone(), status, reason });
        if let Err(e) = self.store().append(herm_store::Append::new(thread, vec![ev])).await {
            tracing::warn!(automation = %id, error = %e, "could not record the automation's status");
        }
    }
}

/// Compares two hashes without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn retry_later(cursor: DateTime<Utc>, id: &AutomationId, e: &Error) -> Fired {
    tracing::warn!(automation = %id, error = %e, "an automation could not fire; retrying at the next tick");
    Fired::Again(cursor)
}

#[cfg(test)]
mod tests;
