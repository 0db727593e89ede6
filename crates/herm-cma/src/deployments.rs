//! CMA's deployments: session factories. Each fire (a cron slot, or `POST …/run`) creates a
//! new session from the deployment's pinned agent, environment, vaults and metadata and
//! sends its `initial_events`; a `deployment_run` records it. Schedules are herm's durable
//! timer (a facade timer per deployment, claimed once cluster-wide, surviving restarts); a
//! slot's run record is written before its session, under an id derived from the slot, so
//! a slot fires at most once even when its handler runs twice. A slot is never skipped
//! because the fire before it was slow; of the slots missed while herm was down, the latest
//! runs at once and the earlier ones are skipped.

use crate::agents::Range;
use crate::wire::{self, metadata, new_id, object, patch_metadata, rfc3339, string};
use crate::{Error, Facade, PageQuery, Result, events, invalid, unsupported};
use chrono::{DateTime, Utc};
use herm_engine::schedule::Schedule;
use herm_store::History;
use serde_json::{Value, json};
use sha2::Digest;

pub(crate) const KIND: &str = "cma_deployment";
pub(crate) const RUN: &str = "deployment_run";
const FIELDS: &[&str] = &[
    "name",
    "agent",
    "environment_id",
    "initial_events",
    "schedule",
    "description",
    "metadata",
    "resources",
    "vault_ids",
    "budget",
];
const MAX_INITIAL: usize = 50;
/// A failed fire is tried again after this long.
const RETRY_SECS: i64 = 5;

/// `schedule`: `{type: cron, expression (5 fields), timezone}`, checked; `None` for none.
fn schedule(v: Option<&Value>) -> Result<Option<(Value, Schedule)>> {
    let s = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(s) => s,
    };
    object(s, &["type", "expression", "timezone"])?;
    if s.get("type").and_then(Value::as_str) != Some("cron") {
        return Err(invalid("`schedule.type` must be `cron`"));
    }
    let expr = s.get("expression").and_then(Value::as_str).unwrap_or_default().trim();
    if expr.split_whitespace().count() != 5 {
        return Err(invalid("`schedule.expression` is a 5-field cron expression"));
    }
    let tz = s.get("timezone").and_then(Value::as_str).ok_or_else(|| invalid("`schedule.timezone` is required"))?;
    let parsed = Schedule::parse(expr, tz).map_err(|e| invalid(format!("`schedule`: {}", e.0)))?;
    Ok(Some((json!({"type": "cron", "expression": expr, "timezone": tz}), parsed)))
}

fn initial(v: Option<&Value>) -> Result<Vec<Value>> {
    let list = v.and_then(Value::as_array).ok_or_else(|| invalid("`initial_events` is required"))?;
    if list.is_empty() || list.len() > MAX_INITIAL {
        return Err(invalid(format!("`initial_events` holds 1-{MAX_INITIAL} events")));
    }
    for e in list {
        match e.get("type").and_then(Value::as_str) {
            Some("user.message") => {
                // Files it names are read when it is sent, at each fire.
                events::parse_message(e)?;
            }
            Some("user.define_outcome") => {
                events::outcome(e)?;
            }
            Some("system.message") => return Err(unsupported("`system.message` events are not supported by herm")),
            _ => return Err(invalid("`initial_events` may hold `user.message` and `user.define_outcome` events")),
        }
    }
    Ok(list.clone())
}

/// The agent a deployment pins: an id (its latest version now) or `{type: agent, id, version?}`.
async fn pinned(f: &Facade, v: Option<&Value>) -> Result<Value> {
    let (id, version) = match v {
        Some(Value::String(id)) => (id.clone(), None),
        Some(Value::Object(m)) if m.get("type").and_then(Value::as_str).is_none_or(|t| t == "agent") => (
            m.get("id").and_then(Value::as_str).ok_or_else(|| invalid("`agent.id` is required"))?.to_owned(),
            m.get("version").and_then(Value::as_i64),
        ),
        _ => return Err(invalid("`agent` is an agent id or `{type: agent, id, version?}`")),
    };
    let a = f.agent(&id, version).await.map_err(|_| invalid(format!("agent `{id}` not found")))?;
    Ok(json!({"type": "agent", "id": id, "version": a["version"]}))
}

/// The slot after `fired`: the next one, or, when that has passed already (a slow fire, or
/// herm was down), the latest that has passed, at once (earlier ones are skipped).
fn next_slot(s: &Schedule, fired: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let next = s.next_after(fired)?;
    if next > now {
        return Some(next);
    }
    let (passed, _) = s.slots_between(next, now, 1);
    passed.last().copied().or(Some(next))
}

fn slot_run_id(deployment: &str, at: DateTime<Utc>) -> String {
    let h = sha2::Sha256::digest(format!("{deployment}\0{}", at.timestamp_micros()).as_bytes());
    format!("drun_{}", hex::encode(&h[..12]))
}

impl Facade {
    pub async fn create_deployment(&self, body: &Value) -> Result<Value> {
        object(body, FIELDS)?;
        let agent = pinned(self, body.get("agent")).await?;
        let budget = crate::session_update::budget_of(body.get("budget"))?;
        let env_id = string(body, "environment_id", 256, true)?.unwrap_or_default();
        self.environment(&env_id).await.map_err(|_| invalid(format!("environment `{env_id}` not found")))?;
        let vaults = body.get("vault_ids").cloned().unwrap_or(json!([]));
        self.bearers(
            &serde_json::from_value::<Vec<String>>(vaults.clone())
                .map_err(|_| invalid("`vault_ids` is a list of ids"))?,
        )
        .await?;
        let resources = self.deployment_resources(body.get("resources")).await?;
        let sched = schedule(body.get("schedule"))?;
        let t = self.now();
        let id = new_id("depl_");
        let mut d = json!({
            "id": id, "type": "deployment",
            "name": string(body, "name", 256, true)?,
            "description": string(body, "description", 2048, false)?,
            "agent": agent, "environment_id": env_id,
            "initial_events": initial(body.get("initial_events"))?,
            "schedule": sched.as_ref().map(|s| s.0.clone()),
            "status": "active", "paused_reason": null,
            "resources": resources, "vault_ids": vaults, "budget": budget,
            "metadata": metadata(body.get("metadata"))?,
            "created_at": t, "updated_at": t, "archived_at": null,
        });
        self.put(KIND, &id, 1, d.clone(), History::Drop).await?;
        self.arm(&id, sched.as_ref().map(|s| &s.1)).await?;
        self.with_upcoming(&mut d);
        Ok(d)
    }

    /// Sets the deployment's timer to its next slot (or removes it); the slot rides in the
    /// timer's payload, so a firing moved later (the server still starting) keeps its slot.
    async fn arm(&self, id: &str, sched: Option<&Schedule>) -> Result<()> {
        self.arm_at(id, sched.and_then(|s| s.next_after(self.engine.now()))).await
    }

    async fn arm_at(&self, id: &str, at: Option<DateTime<Utc>>) -> Result<()> {
        match at {
            Some(at) => {
                let slot = json!({"slot": rfc3339(at)});
                self.engine.set_facade_timer(&format!("cma_deployment:{id}"), at, slot).await?
            }
            None => self.engine.cancel_facade_timer(&format!("cma_deployment:{id}")).await?,
        }
        Ok(())
    }

    /// `schedule.upcoming_runs_at` (the next few slots, when active).
    fn with_upcoming(&self, d: &mut Value) {
        let Some(s) = d.get("schedule").filter(|s| !s.is_null()) else { return };
        let Ok(parsed) =
            Schedule::parse(s["expression"].as_str().unwrap_or_default(), s["timezone"].as_str().unwrap_or_default())
        else {
            return;
        };
        let mut next = Vec::new();
        let mut t = self.engine.now();
        while d["status"] == "active" && next.len() < 3 {
            let Some(at) = parsed.next_after(t) else { break };
            next.push(json!(rfc3339(at)));
            t = at;
        }
        d["schedule"]["upcoming_runs_at"] = json!(next);
    }

    pub async fn deployment(&self, id: &str) -> Result<Value> {
        let mut d = self.doc(KIND, id, None).await?.body;
        self.with_upcoming(&mut d);
        Ok(d)
    }

    pub async fn update_deployment(&self, id: &str, body: &Value) -> Result<Value> {
        object(body, FIELDS)?;
        let cur = self.doc(KIND, id, None).await?;
        let mut d = cur.body.clone();
        if !d["archived_at"].is_null() {
            return Err(invalid("the deployment is archived"));
        }
        if body.get("name").is_some() {
            d["name"] = json!(string(body, "name", 256, true)?);
        }
        if body.get("description").is_some() {
            d["description"] = json!(string(body, "description", 2048, false)?);
        }
        if body.get("agent").is_some() {
            d["agent"] = pinned(self, body.get("agent")).await?;
        }
        if body.get("environment_id").is_some() {
            let env_id = string(body, "environment_id", 256, true)?.unwrap_or_default();
            self.environment(&env_id).await.map_err(|_| invalid(format!("environment `{env_id}` not found")))?;
            d["environment_id"] = json!(env_id);
        }
        if body.get("initial_events").is_some() {
            d["initial_events"] = json!(initial(body.get("initial_events"))?);
        }
        if let Some(v) = body.get("vault_ids") {
            self.bearers(
                &serde_json::from_value::<Vec<String>>(v.clone())
                    .map_err(|_| invalid("`vault_ids` is a list of ids"))?,
            )
            .await?;
            d["vault_ids"] = v.clone();
        }
        if body.get("resources").is_some() {
            d["resources"] = self.deployment_resources(body.get("resources")).await?;
        }
        if body.get("budget").is_some() {
            d["budget"] = crate::session_update::budget_of(body.get("budget"))?;
        }
        let sched = if body.get("schedule").is_some() {
            let s = schedule(body.get("schedule"))?;
            d["schedule"] = s.as_ref().map(|s| s.0.clone()).unwrap_or(Value::Null);
            Some(s)
        } else {
            None
        };
        d["metadata"] = json!(patch_metadata(&cur.body["metadata"], body.get("metadata"))?);
        d["updated_at"] = json!(self.now());
        self.put(KIND, id, cur.version + 1, d.clone(), History::Drop).await?;
        if let Some(s) = sched {
            self.arm(id, s.as_ref().map(|s| &s.1)).await?;
        }
        self.with_upcoming(&mut d);
        Ok(d)
    }

    /// Pauses, resumes or archives: the status changes, the timer follows.
    pub async fn set_deployment_status(&self, id: &str, to: &str) -> Result<Value> {
        let cur = self.doc(KIND, id, None).await?;
        let mut d = cur.body.clone();
        if !d["archived_at"].is_null() {
            return Err(invalid("the deployment is archived"));
        }
        let t = self.now();
        match to {
            "archived" => {
                d["archived_at"] = json!(t);
                d["status"] = json!("paused");
                d["paused_reason"] = json!({"type": "manual"});
            }
            "paused" => {
                d["status"] = json!("paused");
                d["paused_reason"] = json!({"type": "manual"});
            }
            _ => {
                d["status"] = json!("active");
                d["paused_reason"] = Value::Null;
            }
        }
        d["updated_at"] = json!(t);
        self.put(KIND, id, cur.version + 1, d.clone(), History::Drop).await?;
        let sched = d["schedule"].as_object().and_then(|s| {
            Schedule::parse(s["expression"].as_str().unwrap_or_default(), s["timezone"].as_str().unwrap_or_default())
                .ok()
        });
        self.arm(id, sched.as_ref().filter(|_| d["status"] == "active")).await?;
        self.with_upcoming(&mut d);
        Ok(d)
    }

    pub async fn list_deployments(&self, q: &PageQuery, f: &DeploymentFilter) -> Result<wire::Page> {
        let (mut data, next_page) = self
            .doc_page(KIND, q, false, |d| {
                (f.include_archived || d["archived_at"].is_null())
                    && f.agent_id.as_ref().is_none_or(|a| d["agent"]["id"] == a.as_str())
                    && f.status.as_ref().is_none_or(|s| d["status"] == s.as_str())
                    && f.created.holds(&d["created_at"])
            })
            .await?;
        for d in &mut data {
            self.with_upcoming(d);
        }
        Ok(wire::Page { data, next_page })
    }

    /// `POST …/run`: one fire now.
    pub async fn run_deployment(&self, id: &str) -> Result<Value> {
        let d = self.doc(KIND, id, None).await?.body;
        if !d["archived_at"].is_null() {
            return Err(invalid("the deployment is archived"));
        }
        self.fire_deployment(&d, &new_id("drun_"), json!({"type": "manual"})).await
    }

    /// One fire, resumable: the run record first, then the session (its id derived from the
    /// run's, so a fire resumed after a crash finds the session it made), then whichever of
    /// the initial events the session does not have yet, then the run's `session_id`.
    async fn fire_deployment(&self, d: &Value, run_id: &str, trigger: Value) -> Result<Value> {
        let id = d["id"].as_str().unwrap_or_default();
        let fresh = json!({
            "id": run_id, "type": "deployment_run", "deployment_id": id,
            "agent": {"id": d["agent"]["id"], "version": d["agent"]["version"]},
            "trigger_context": trigger, "session_id": null, "error": null,
            "created_at": self.now(),
        });
        let mut run = match self.put(RUN, run_id, 1, fresh.clone(), History::Drop).await {
            Ok(()) => fresh,
            // This fire started before (its handler runs again after a crash).
            Err(Error::Conflict(_)) => self.doc(RUN, run_id, None).await?.body,
            Err(e) => return Err(e),
        };
        if !run["session_id"].is_null() || !run["error"].is_null() {
            return Ok(run);
        }
        let session = format!("sesn_{}", hex::encode(&sha2::Sha256::digest(run_id.as_bytes())[..12]));
        match self.made_session(d, &session).await {
            Ok(()) => run["session_id"] = json!(session),
            Err(e) => run["error"] = json!({"type": "session_creation_rejected_error", "message": e.to_string()}),
        }
        self.put(RUN, run_id, 1, run.clone(), History::Rewrite).await?;
        let mut latest = self.doc(KIND, id, None).await?;
        if latest.body["schedule"].is_object() {
            latest.body["schedule"]["last_run_at"] = run["created_at"].clone();
            // A lost race here only loses `last_run_at`'s newest value.
            let _ = self.put(KIND, id, latest.version, latest.body, History::Rewrite).await;
        }
        Ok(run)
    }

    /// A deployment's `resources`: checked as a session's would be (what they name exists
    /// now), kept as given, and resolved again at each fire.
    async fn deployment_resources(&self, v: Option<&Value>) -> Result<Value> {
        self.resources(v).await?;
        Ok(match v {
            None | Some(Value::Null) => json!([]),
            Some(r) => r.clone(),
        })
    }

    /// Session `session` of deployment `d`, made if missing, with every initial event sent.
    async fn made_session(&self, d: &Value, session: &str) -> Result<()> {
        let initial = d["initial_events"].as_array().cloned().unwrap_or_default();
        if self.engine.document(crate::sessions::KIND, session, None).await?.is_none() {
            let body = json!({
                "agent": d["agent"], "environment_id": d["environment_id"], "vault_ids": d["vault_ids"],
                "metadata": d["metadata"], "resources": d["resources"], "budget": d["budget"],
            });
            match self.create_session_from(session.to_owned(), &body, false, d["id"].as_str()).await {
                Ok(_) | Err(Error::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let sent = self
            .list_events(session, &PageQuery { limit: Some(wire::MAX_PAGE), page: None }, &Default::default())
            .await?
            .data
            .iter()
            .filter(|e| e["type"] == "user.message" || e["type"] == "user.define_outcome")
            .count();
        for e in initial.iter().skip(sent) {
            self.send_events(session, &json!({"events": [e]})).await?;
        }
        Ok(())
    }

    /// The timer's slot (from its payload; the due time if none): fire it unless the
    /// deployment is paused, archived or gone, then arm the next slot after now (a reset
    /// timer, so the firing's own finish leaves it be).
    pub async fn deployment_due(&self, id: &str, due: DateTime<Utc>, payload: &Value) -> Option<DateTime<Utc>> {
        let slot = payload["slot"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(due);
        let d = self.doc(KIND, id, None).await.ok()?.body;
        if d["status"] != "active" || !d["archived_at"].is_null() {
            return None;
        }
        let s = d["schedule"].as_object()?;
        let sched = Schedule::parse(s["expression"].as_str()?, s["timezone"].as_str()?).ok()?;
        let trigger = json!({"type": "schedule", "scheduled_at": rfc3339(slot)});
        if let Err(e) = self.fire_deployment(&d, &slot_run_id(id, slot), trigger).await {
            // Tried again shortly: the run record makes the retry resume, not repeat.
            tracing::warn!(deployment = id, error = %e, "a scheduled deployment's run failed; trying again");
            return Some(self.engine.now() + chrono::Duration::seconds(RETRY_SECS));
        }
        let next = next_slot(&sched, slot, self.engine.now());
        match self.arm_at(id, next).await {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(deployment = id, error = %e, "a scheduled deployment's next slot was not set");
                next
            }
        }
    }

    pub async fn deployment_run(&self, id: &str) -> Result<Value> {
        Ok(self.doc(RUN, id, None).await?.body)
    }

    pub async fn list_deployment_runs(&self, q: &PageQuery, f: &RunFilter) -> Result<wire::Page> {
        // Newest first; run ids derived from slots are not time-ordered, so this reads all.
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.engine.documents(RUN, after.clone(), false, wire::MAX_PAGE).await?;
            let n = page.len();
            after = page.last().map(|d| d.id.clone());
            all.extend(page.into_iter().map(|d| d.body).filter(|r| f.holds(r)));
            if n < wire::MAX_PAGE {
                break;
            }
        }
        all.sort_by(|a, b| {
            b["created_at"].as_str().cmp(&a["created_at"].as_str()).then(b["id"].as_str().cmp(&a["id"].as_str()))
        });
        wire::page_after_id(all, q)
    }
}

/// `GET /v1/deployments` filters.
#[derive(Clone, Debug, Default)]
pub struct DeploymentFilter {
    pub agent_id: Option<String>,
    pub status: Option<String>,
    pub include_archived: bool,
    pub created: Range,
}

/// `GET /v1/deployment_runs` filters.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub deployment_id: Option<String>,
    pub has_error: Option<bool>,
    pub trigger_type: Option<String>,
    pub created: Range,
}

impl RunFilter {
    fn holds(&self, r: &Value) -> bool {
        self.deployment_id.as_ref().is_none_or(|d| r["deployment_id"] == d.as_str())
            && self.has_error.is_none_or(|e| r["error"].is_null() != e)
            && self.trigger_type.as_ref().is_none_or(|t| r["trigger_context"]["type"] == t.as_str())
            && self.created.holds(&r["created_at"])
    }
}

/// The facade's timers: a scheduled deployment's slot.
pub struct Timers(pub Facade);

#[async_trait::async_trait]
impl herm_engine::timers::FacadeTimers for Timers {
    async fn fire(&self, key: &str, due: DateTime<Utc>, payload: &Value) -> Option<DateTime<Utc>> {
        let id = key.strip_prefix("cma_deployment:")?;
        self.0.deployment_due(id, due, payload).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_five_field_cron_in_a_zone() {
        assert!(
            schedule(Some(&json!({"type": "cron", "expression": "0 9 * * 1-5", "timezone": "Europe/Paris"})))
                .unwrap()
                .is_some()
        );
        for bad in [
            json!({"type": "cron", "expression": "every day", "timezone": "UTC"}),
            json!({"type": "cron", "expression": "0 9 * * *"}),
            json!({"type": "cron", "expression": "0 9 * * *", "timezone": "Mars/Olympus"}),
            json!({"type": "rrule", "expression": "0 9 * * *", "timezone": "UTC"}),
            json!({"type": "cron", "expression": "0 9 31 2 *", "timezone": "UTC"}),
        ] {
            assert!(schedule(Some(&bad)).is_err(), "{bad}");
        }
        assert!(schedule(None).unwrap().is_none());
    }

    #[test]
    fn the_next_slot_is_never_skipped_by_a_slow_fire_and_missed_ones_run_once() {
        let s = Schedule::parse("* * * * *", "UTC").unwrap();
        let at = |m: u32, sec: u32| chrono::TimeZone::with_ymd_and_hms(&Utc, 2030, 1, 7, 8, m, sec).unwrap();
        // On time: the next minute.
        assert_eq!(next_slot(&s, at(2, 0), at(2, 1)), Some(at(3, 0)));
        // The fire took past the next slot: that slot still runs, at once.
        assert_eq!(next_slot(&s, at(2, 0), at(3, 0) + chrono::Duration::milliseconds(100)), Some(at(3, 0)));
        // Down for five minutes: only the latest missed slot runs.
        assert_eq!(next_slot(&s, at(2, 0), at(7, 30)), Some(at(7, 0)));
    }

    #[test]
    fn a_slot_has_one_run_id() {
        let t = Utc::now();
        assert_eq!(slot_run_id("depl_1", t), slot_run_id("depl_1", t));
        assert_ne!(slot_run_id("depl_1", t), slot_run_id("depl_2", t));
    }
}
