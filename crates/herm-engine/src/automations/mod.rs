//! Automations as the application layer sees them: create (the schedule read and echoed
//! back), read with recent firings, list, edit, pause, resume and delete. Every change is
//! conditional on the automation's revision (edits computed again if another landed first,
//! refused with `If-Match`), and resets its durable timer: the next slot is the timer's due
//! time, so the scheduler needs no state of its own. Firing lives in [`fire`], the agent's
//! tools in [`tools`].

pub(crate) mod fire;
pub mod tools;

use crate::deployments::Revised;
use crate::revise::{Attempt, Retries, check_if_match, stale_is_precondition, written};
use crate::schedule::Schedule;
use crate::timers::TimerKind;
use crate::{Engine, Error, Result};
use herm_store::{AutomationRecord, FiringRecord};
use herm_types::proactive::*;
use herm_types::*;

/// Firings shown with `GET …/automations/{id}`.
const RECENT: usize = 10;
/// Consecutive failed runs before an automation pauses itself, unless it says otherwise.
const DEFAULT_MAX_FAILURES: u32 = 3;

pub(crate) fn timer_key(id: &AutomationId) -> String {
    format!("automation:{id}")
}

impl Engine {
    /// Creates an automation of a live deployment and sets its timer at the first slot; the
    /// answer carries its webhook token when it has one (shown this once).
    pub async fn create_automation(&self, dep: &DeploymentId, body: AutomationCreate) -> Result<Revised<Automation>> {
        let d = self.deployment(dep).await?;
        if !d.spec.features.automations {
            return Err(Error::Conflict(
                "automations are turned off for this deployment (features.automations)".into(),
            ));
        }
        let timezone = body.timezone.clone().unwrap_or_else(|| "UTC".into());
        let schedule = read_schedule(body.schedule.as_deref(), &timezone)?;
        let webhook = body.trigger == Some(TriggerSpec::Webhook);
        if schedule.is_none() && !webhook {
            return Err(Error::Validation("an automation needs a `schedule`, a webhook `trigger`, or both".into()));
        }
        self.check_thread_target(dep, body.thread_id.as_deref()).await?;
        let thread_id = body.thread_id.filter(|t| t != "default");
        let spec = AutomationSpec {
            name: check_text("name", &body.name, 200)?,
            instructions: check_text("instructions", &body.instructions, 20_000)?,
            cron: schedule.as_ref().map(|s| s.cron.clone()),
            schedule: body.schedule.map(|s| s.trim().to_owned()).filter(|_| schedule.is_some()),
            timezone,
            thread_id,
            missed_policy: body.missed_policy.unwrap_or_default(),
            webhook,
            max_consecutive_failures: check_failures(body.max_consecutive_failures)?,
        };
        let token = webhook.then(crate::access::generate_key);
        let at = now();
        let rec = AutomationRecord {
            id: AutomationId::new(),
            deployment_id: dep.clone(),
            spec,
            enabled: body.enabled.unwrap_or(true),
            paused_reason: None,
            token_hash: token.as_deref().map(crate::access::hash_key),
            revision: 1,
            created_at: at,
            updated_at: at,
        };
        self.store().insert_automation(rec.clone()).await?;
        self.arm(&rec).await?;
        let mut automation = self.automation_view(&rec, Vec::new());
        if let (Some(t), Some(info)) = (token, automation.trigger.as_mut()) {
            info.token = Some(t);
        }
        Ok(Revised { value: automation, revision: rec.revision })
    }

    /// An automation of the deployment with its recent firings.
    pub async fn automation(&self, dep: &DeploymentId, id: &AutomationId) -> Result<Revised<Automation>> {
        let rec = self.automation_record(dep, id).await?;
        let recent = self.store().list_firings(id, RECENT).await?;
        Ok(Revised { revision: rec.revision, value: self.automation_view(&rec, recent) })
    }

    /// The deployment's automations, newest first.
    pub async fn list_automations(
        &self,
        dep: &DeploymentId,
        before: Option<AutomationId>,
        limit: usize,
    ) -> Result<Vec<Automation>> {
        self.deployment(dep).await?;
        let recs = self.store().list_automations(dep, before, limit).await?;
        Ok(recs.iter().map(|r| self.automation_view(r, Vec::new())).collect())
    }

    /// An automation's firings, newest first.
    pub async fn automation_firings(&self, dep: &DeploymentId, id: &AutomationId, limit: usize) -> Result<Vec<Firing>> {
        self.automation_record(dep, id).await?;
        Ok(self.store().list_firings(id, limit).await?.into_iter().map(firing_view).collect())
    }

    /// Applies a PATCH (omitted fields unchanged); the timer moves to the new next slot.
    pub async fn patch_automation(
        &self,
        dep: &DeploymentId,
        id: &AutomationId,
        patch: AutomationPatch,
        if_match: Option<i64>,
    ) -> Result<Revised<Automation>> {
        if let Some(t) = &patch.thread_id {
            self.check_thread_target(dep, Some(t)).await?;
        }
        let max_failures = patch.max_consecutive_failures.map(|n| check_failures(Some(n))).transpose()?;
        let name = patch.name.as_deref().map(|n| check_text("name", n, 200)).transpose()?;
        let instructions = patch.instructions.as_deref().map(|n| check_text("instructions", n, 20_000)).transpose()?;
        self.edit_automation(dep, id, if_match, |a| {
            let timezone = patch.timezone.clone().unwrap_or_else(|| a.spec.timezone.clone());
            let text = patch.schedule.clone().or_else(|| a.spec.schedule.clone());
            if patch.schedule.is_some() || patch.timezone.is_some() {
                let s = read_schedule(text.as_deref(), &timezone)?;
                if s.is_none() && !a.spec.webhook {
                    return Err(Error::Validation("an automation without a webhook trigger needs a schedule".into()));
                }
                a.spec.cron = s.map(|s| s.cron);
                a.spec.schedule = text.map(|t| t.trim().to_owned());
                a.spec.timezone = timezone;
            }
            if let Some(n) = &name {
                a.spec.name = n.clone();
            }
            if let Some(i) = &instructions {
                a.spec.instructions = i.clone();
            }
            if let Some(t) = &patch.thread_id {
                a.spec.thread_id = (t != "default").then(|| t.clone());
            }
            if let Some(p) = patch.missed_policy {
                a.spec.missed_policy = p;
            }
            if let Some(n) = max_failures {
                a.spec.max_consecutive_failures = n;
            }
            if let Some(e) = patch.enabled {
                a.enabled = e;
                if e {
                    a.paused_reason = None;
                }
            }
            Ok(())
        })
        .await
    }

    /// Pauses (`enabled: false`) or resumes an automation, with an event on its thread.
    pub async fn set_automation_enabled(
        &self,
        dep: &DeploymentId,
        id: &AutomationId,
        enabled: bool,
        reason: Option<String>,
        if_match: Option<i64>,
    ) -> Result<Revised<Automation>> {
        let out = self
            .edit_automation(dep, id, if_match, |a| {
                a.enabled = enabled;
                a.paused_reason = if enabled { None } else { reason.clone() };
                Ok(())
            })
            .await?;
        let state = if enabled { AutomationState::Resumed } else { AutomationState::Paused };
        self.automation_event(dep, id, out.value.thread_id.as_deref(), state, reason).await;
        Ok(out)
    }

    /// Deletes an automation and its history; its timer goes with it.
    pub async fn delete_automation(&self, dep: &DeploymentId, id: &AutomationId, if_match: Option<i64>) -> Result<()> {
        self.automation_record(dep, id).await?;
        self.store().delete_automation(id, if_match).await.map_err(stale_is_precondition)?;
        self.store().cancel_timer(&timer_key(id)).await?;
        Ok(())
    }

    /// An automation of the deployment (another deployment's is not found).
    pub(crate) async fn automation_record(&self, dep: &DeploymentId, id: &AutomationId) -> Result<AutomationRecord> {
        self.deployment(dep).await?;
        self.store().get_automation(id).await?.filter(|a| &a.deployment_id == dep).ok_or(Error::NotFound("automation"))
    }

    /// Computes a change from the current record and writes it at that record's revision,
    /// again if another write landed first; then re-arms the timer.
    async fn edit_automation(
        &self,
        dep: &DeploymentId,
        id: &AutomationId,
        if_match: Option<i64>,
        mut change: impl FnMut(&mut AutomationRecord) -> Result<()>,
    ) -> Result<Revised<Automation>> {
        let mut retries = Retries::default();
        let rec = loop {
            let mut rec = self.automation_record(dep, id).await?;
            check_if_match(if_match, rec.revision)?;
            let seen = rec.revision;
            change(&mut rec)?;
            match written(self.store().update_automation(&rec, seen).await, if_match)? {
                Attempt::Landed(revision) => break AutomationRecord { revision, ..rec },
                Attempt::Lost => retries.lost().await?,
            }
        };
        self.arm(&rec).await?;
        let recent = self.store().list_firings(id, RECENT).await?;
        Ok(Revised { revision: rec.revision, value: self.automation_view(&rec, recent) })
    }

    /// Sets the timer at the next slot after now, or removes it (paused, webhook only).
    async fn arm(&self, rec: &AutomationRecord) -> Result<()> {
        let key = timer_key(&rec.id);
        match next_slot(rec, self.now()) {
            Some(at) if rec.enabled => self.set_timer(key, TimerKind::Automation, at, serde_json::json!({})).await,
            _ => {
                self.store().cancel_timer(&key).await?;
                Ok(())
            }
        }
    }

    /// Refuses a thread target that is neither `new` nor a thread of the deployment.
    async fn check_thread_target(&self, dep: &DeploymentId, target: Option<&str>) -> Result<()> {
        match target {
            None | Some("new" | "default") => Ok(()),
            Some(t) => {
                let id: ThreadId = t.parse().map_err(|_| {
                    Error::Validation("`thread_id` is a thread of the deployment, \"new\" or \"default\"".into())
                })?;
                self.deployment_thread(dep, &id).await.map(|_| ())
            }
        }
    }

    pub(crate) fn automation_view(&self, rec: &AutomationRecord, recent: Vec<FiringRecord>) -> Automation {
        // The schedule as written gives both the description and the slots (it reads as `cron`).
        let schedule = rec.spec.schedule.as_deref().and_then(|s| Schedule::parse(s, &rec.spec.timezone).ok());
        Automation {
            automation_id: rec.id.clone(),
            deployment_id: rec.deployment_id.clone(),
            name: rec.spec.name.clone(),
            instructions: rec.spec.instructions.clone(),
            schedule: rec.spec.schedule.clone(),
            cron: rec.spec.cron.clone(),
            description: schedule.as_ref().map(|s| s.description.clone()),
            timezone: rec.spec.timezone.clone(),
            thread_id: rec.spec.thread_id.clone(),
            enabled: rec.enabled,
            paused_reason: rec.paused_reason.clone(),
            missed_policy: rec.spec.missed_policy,
            max_consecutive_failures: rec.spec.max_consecutive_failures,
            next_run_at: schedule.filter(|_| rec.enabled).and_then(|s| s.next_after(self.now())),
            trigger: rec.spec.webhook.then(|| TriggerInfo {
                kind: "webhook".into(),
                url: format!("/v1/triggers/{}", rec.id),
                token: None,
            }),
            recent_runs: recent.into_iter().map(firing_view).collect(),
            created_at: rec.created_at,
            updated_at: rec.updated_at,
        }
    }
}

/// The next slot of an automation's schedule after `t`, if it has one.
pub(crate) fn next_slot(
    rec: &AutomationRecord,
    t: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let cron = rec.spec.cron.as_deref()?;
    Schedule::parse(cron, &rec.spec.timezone).ok()?.next_after(t)
}

fn read_schedule(text: Option<&str>, timezone: &str) -> Result<Option<Schedule>> {
    match text {
        None => {
            timezone
                .trim()
                .parse::<chrono_tz::Tz>()
                .map_err(|_| Error::Validation(format!("unknown time zone `{timezone}`")))?;
            Ok(None)
        }
        Some(t) => Schedule::parse(t, timezone).map(Some).map_err(|e| Error::Validation(e.0)),
    }
}

fn check_text(field: &str, v: &str, max: usize) -> Result<String> {
    let v = v.trim();
    if v.is_empty() || v.len() > max {
        return Err(Error::Validation(format!("`{field}` is 1 to {max} characters")));
    }
    Ok(v.to_owned())
}

fn check_failures(n: Option<u32>) -> Result<u32> {
    match n {
        None => Ok(DEFAULT_MAX_FAILURES),
        Some(n @ 1..=100) => Ok(n),
        Some(_) => Err(Error::Validation("`max_consecutive_failures` is 1 to 100".into())),
    }
}

pub(crate) fn firing_view(f: FiringRecord) -> Firing {
    let status = match (f.firing.skipped, f.run_status) {
        (true, _) => FiringStatus::Skipped,
        (false, Some(RunStatus::Error)) => FiringStatus::Failed,
        _ => FiringStatus::Fired,
    };
    Firing {
        slot_at: f.firing.slot_at,
        source: f.firing.source,
        status,
        run_id: f.firing.run_id,
        thread_id: f.firing.thread_id,
        run_status: f.run_status,
        reason: f.firing.reason,
        created_at: f.created_at,
    }
}
