//! Goals: an objective the runtime keeps working on across runs until a judge agrees it is
//! done, its budget runs out or a person cancels it. This module is the API side (create,
//! read, list, cancel) and the one way a goal's record changes ([`Engine::edit_goal`]:
//! computed from the current record, written at its revision, computed again if another
//! write landed). The loop itself is [`driver`], the judge [`judge`], the agent's tools
//! [`tools`].

pub(crate) mod driver;
mod judge;
pub mod tools;

use crate::deployments::Revised;
use crate::revise::{Attempt, Retries, check_if_match, written};
use crate::timers::TimerKind;
use crate::{Engine, Error, Result};
use herm_store::GoalRecord;
use herm_types::proactive::*;
use herm_types::*;

const DEFAULT_MAX_RUNS: u32 = 10;
const DEFAULT_CHECK_EVERY_SECS: u64 = 60;

pub(crate) fn timer_key(id: &GoalId) -> String {
    format!("goal:{id}")
}

impl Engine {
    /// Creates a goal and starts its loop (the first run starts at the next timer tick).
    pub async fn create_goal(&self, dep: &DeploymentId, body: GoalCreate) -> Result<Revised<Goal>> {
        let d = self.deployment(dep).await?;
        let objective = body.objective.trim();
        if objective.is_empty() || objective.len() > 20_000 {
            return Err(Error::Validation("`objective` is 1 to 20000 characters".into()));
        }
        if body.done_criteria.as_ref().is_some_and(|c| c.len() > 20_000) {
            return Err(Error::Validation("`done_criteria` is at most 20000 characters".into()));
        }
        let max_runs = match body.max_runs {
            None => DEFAULT_MAX_RUNS,
            Some(n @ 1..=1000) => n,
            Some(_) => return Err(Error::Validation("`max_runs` is 1 to 1000".into())),
        };
        if body.max_cost_usd.is_some_and(|c| !c.is_finite() || c <= 0.0) {
            return Err(Error::Validation("`max_cost_usd` is a positive number".into()));
        }
        let check_every_secs = match body.check_every.as_deref() {
            None => DEFAULT_CHECK_EVERY_SECS,
            Some(s) => parse_duration_secs(s).filter(|v| *v <= 30 * 86_400).ok_or_else(|| {
                Error::Validation("`check_every` is a duration such as `30s`, `15m`, `1h` (at most 30d)".into())
            })?,
        };
        if body.deadline_at.is_some_and(|t| t <= self.now()) {
            return Err(Error::Validation("`deadline_at` is in the past".into()));
        }
        let thread_id = match body.thread_id.as_deref() {
            Some(t) => {
                let id: ThreadId = t.parse().map_err(|_| Error::Validation("`thread_id` is not a thread id".into()))?;
                self.deployment_thread(dep, &id).await?.id
            }
            None => self.create_thread(&d.id, Some(format!("Goal: {}", first_line(objective)))).await?.id,
        };
        let at = now();
        let rec = GoalRecord {
            id: GoalId::new(),
            deployment_id: d.id.clone(),
            thread_id,
            spec: GoalSpec {
                objective: objective.to_owned(),
                done_criteria: body.done_criteria.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()),
                max_runs,
                max_cost_usd: body.max_cost_usd,
                check_every_secs,
                deadline_at: body.deadline_at,
            },
            status: GoalStatus::Active,
            state: GoalState::default(),
            revision: 1,
            created_at: at,
            updated_at: at,
        };
        self.store().insert_goal(rec.clone()).await?;
        self.goal_event(&rec, GoalStatus::Active, None).await;
        self.poke_goal(&rec.id).await?;
        Ok(Revised { revision: rec.revision, value: self.goal_view(&rec).await? })
    }

    /// A goal of the deployment, with its runs.
    pub async fn goal(&self, dep: &DeploymentId, id: &GoalId) -> Result<Revised<Goal>> {
        let rec = self.goal_record(dep, id).await?;
        Ok(Revised { revision: rec.revision, value: self.goal_view(&rec).await? })
    }

    /// The deployment's goals, newest first.
    pub async fn list_goals(&self, dep: &DeploymentId, before: Option<GoalId>, limit: usize) -> Result<Vec<Goal>> {
        self.deployment(dep).await?;
        let mut out = Vec::new();
        for rec in self.store().list_goals(dep, before, limit).await? {
            out.push(self.goal_view(&rec).await?);
        }
        Ok(out)
    }

    /// Cancels a goal: no run starts for it again, and its active run is interrupted.
    pub async fn cancel_goal(&self, dep: &DeploymentId, id: &GoalId, if_match: Option<i64>) -> Result<Revised<Goal>> {
        let rec = self
            .edit_goal(dep, id, if_match, |g| {
                if g.status.is_terminal() {
                    return Err(Error::Conflict(format!("the goal is already {}", g.status.as_str())));
                }
                g.status = GoalStatus::Cancelled;
                g.state.reason = Some("cancelled by a person".into());
                Ok(())
            })
            .await?;
        self.store().cancel_timer(&timer_key(id)).await?;
        self.goal_event(&rec, GoalStatus::Cancelled, rec.state.reason.clone()).await;
        if let Ok(Some(active)) = self.store().active_run(&rec.thread_id).await
            && active.trigger.as_ref().and_then(|t| t.goal_id.as_deref()) == Some(id.as_str())
            && let Err(e) = self.interrupt(&rec.thread_id, Some("the goal was cancelled".into())).await
        {
            tracing::warn!(goal = %id, error = %e, "could not interrupt the cancelled goal's run");
        }
        Ok(Revised { revision: rec.revision, value: self.goal_view(&rec).await? })
    }

    pub(crate) async fn goal_record(&self, dep: &DeploymentId, id: &GoalId) -> Result<GoalRecord> {
        self.deployment(dep).await?;
        self.store().get_goal(id).await?.filter(|g| &g.deployment_id == dep).ok_or(Error::NotFound("goal"))
    }

    /// Computes a change from the current record and writes it at that record's revision,
    /// again if another write landed first.
    pub(crate) async fn edit_goal(
        &self,
        dep: &DeploymentId,
        id: &GoalId,
        if_match: Option<i64>,
        mut change: impl FnMut(&mut GoalRecord) -> Result<()>,
    ) -> Result<GoalRecord> {
        let mut retries = Retries::default();
        loop {
            let mut rec = self.goal_record(dep, id).await?;
            check_if_match(if_match, rec.revision)?;
            let seen = rec.revision;
            change(&mut rec)?;
            match written(self.store().update_goal(&rec, seen).await, if_match)? {
                Attempt::Landed(revision) => return Ok(GoalRecord { revision, ..rec }),
                Attempt::Lost => retries.lost().await?,
            }
        }
    }

    /// Makes the goal's loop look at it at the next timer tick.
    pub(crate) async fn poke_goal(&self, id: &GoalId) -> Result<()> {
        self.set_timer(timer_key(id), TimerKind::Goal, self.now(), serde_json::json!({})).await
    }

    /// Appends a `goal_status` event to the goal's thread.
    pub(crate) async fn goal_event(&self, g: &GoalRecord, status: GoalStatus, reason: Option<String>) {
        let ev = NewEvent::new(None, EventKind::GoalStatus { goal_id: g.id.clone(), status, reason });
        if let Err(e) = self.store().append(herm_store::Append::new(g.thread_id.clone(), vec![ev])).await {
            tracing::warn!(goal = %g.id, error = %e, "could not record the goal's status");
        }
    }

    pub(crate) async fn goal_view(&self, g: &GoalRecord) -> Result<Goal> {
        let runs = self.store().goal_runs(&g.id).await?;
        let cost = runs.iter().map(|r| r.usage.cost_usd).sum::<f64>() + g.state.judge_cost_usd;
        Ok(Goal {
            goal_id: g.id.clone(),
            deployment_id: g.deployment_id.clone(),
            thread_id: g.thread_id.clone(),
            status: g.status,
            objective: g.spec.objective.clone(),
            done_criteria: g.spec.done_criteria.clone(),
            max_runs: g.spec.max_runs,
            max_cost_usd: g.spec.max_cost_usd,
            check_every: format_duration_secs(g.spec.check_every_secs),
            deadline_at: g.spec.deadline_at,
            runs: runs
                .iter()
                .map(|r| GoalRun { run_id: r.id.clone(), status: r.status, cost_usd: r.usage.cost_usd })
                .collect(),
            cost_usd: cost,
            progress_notes: g.state.progress_notes.clone(),
            reason: g.state.reason.clone(),
            wait_until: g.state.wait_until,
            created_at: g.created_at,
            updated_at: g.updated_at,
        })
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    line.chars().take(80).collect()
}
