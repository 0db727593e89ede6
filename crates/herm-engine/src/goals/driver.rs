//! The goal loop, on the durable timer: each time a goal's timer is due (created, a run of it
//! ended, its wait is over, its pause between runs passed), [`decide`] says what is next from
//! the goal's record and runs alone (pure, table-tested), and the handler does that one
//! thing. Starting the n-th run is one append marked `goal:<id>:run:<n>`, so a crash between
//! deciding and recording never starts it twice.

use crate::submit::Origin;
use crate::timers::Fired;
use crate::{Engine, Error, Result};
use chrono::{DateTime, Duration, Utc};
use herm_store::{ClaimedTimer, GoalRecord, Once, RunRecord};
use herm_types::config::BusyPolicy;
use herm_types::proactive::*;
use herm_types::*;

/// Failed runs in a row after which a goal stops as `failed` (its model is not configured, its
/// budget is spent: something a person must fix).
const MAX_FAILED_RUNS: usize = 3;
/// How often a goal with an active run is looked at, in case its end was not reported.
const WATCH_SECS: i64 = 60;
/// How long a goal waits for a busy thread (a person's run goes first).
const BUSY_RETRY_SECS: i64 = 10;

/// What the loop does next.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Step {
    /// A run of the goal is active: look again later (its end pokes the timer sooner).
    Watch { waiting_on_human: bool },
    /// The agent claimed the goal done in this run: ask the judge.
    Judge { run: RunId, summary: String },
    /// The budget or the deadline is spent.
    Exhaust(String),
    /// Its runs keep failing.
    Fail(String),
    /// The agent asked to wait until then.
    WaitUntil(DateTime<Utc>),
    /// Pause between runs until then.
    PauseUntil(DateTime<Utc>),
    /// Start run number `n` (1-based).
    Start { n: usize },
}

/// What the loop does next for `g`, whose runs so far are `runs` (oldest first).
pub(crate) fn decide(g: &GoalRecord, runs: &[RunRecord], now: DateTime<Utc>) -> Step {
    if let Some(last) = runs.last()
        && !last.status.is_terminal()
    {
        return Step::Watch { waiting_on_human: last.status == RunStatus::WaitingOnHuman };
    }
    if let Some((run, summary)) = &g.state.claim {
        return Step::Judge { run: run.clone(), summary: summary.clone() };
    }
    let failed = runs.iter().rev().take_while(|r| r.status == RunStatus::Error).count();
    if failed >= MAX_FAILED_RUNS {
        let code = runs.last().and_then(|r| r.error.as_ref()).map(|e| e.code.as_str()).unwrap_or_default();
        return Step::Fail(format!("{failed} runs in a row failed (last error: {code})"));
    }
    let cost = runs.iter().map(|r| r.usage.cost_usd).sum::<f64>() + g.state.judge_cost_usd;
    if g.spec.deadline_at.is_some_and(|d| d <= now) {
        return Step::Exhaust("the deadline passed".into());
    }
    if runs.len() >= g.spec.max_runs as usize {
        return Step::Exhaust(format!("max_runs ({}) reached", g.spec.max_runs));
    }
    if let Some(max) = g.spec.max_cost_usd
        && cost >= max
    {
        return Step::Exhaust(format!("max_cost_usd ({max}) reached: {cost:.4} spent"));
    }
    if let Some(until) = g.state.wait_until
        && until > now
    {
        return Step::WaitUntil(until);
    }
    if let Some(ended) = runs.last().and_then(|r| r.ended_at) {
        let next = ended + Duration::seconds(g.spec.check_every_secs as i64);
        if next > now {
            return Step::PauseUntil(next);
        }
    }
    Step::Start { n: runs.len() + 1 }
}

impl Engine {
    /// A goal's timer is due: take the next step.
    pub(crate) async fn goal_due(&self, t: &ClaimedTimer) -> Fired {
        let Some(id) = t.key.strip_prefix("goal:").and_then(|s| GoalId::parse(s).ok()) else { return Fired::Done };
        match self.goal_step(&id).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(goal = %id, error = %e, "a goal step failed; trying again in 30 s");
                Fired::Again(self.now() + Duration::seconds(30))
            }
        }
    }

    async fn goal_step(&self, id: &GoalId) -> Result<Fired> {
        let Some(g) = self.store().get_goal(id).await? else { return Ok(Fired::Done) };
        if g.status.is_terminal() {
            return Ok(Fired::Done);
        }
        if self.store().get_deployment(&g.deployment_id).await?.is_none() {
            return Ok(Fired::Done);
        }
        let runs = self.store().goal_runs(id).await?;
        let now = self.now();
        Ok(match decide(&g, &runs, now) {
            Step::Watch { waiting_on_human } => {
                let status = if waiting_on_human { GoalStatus::Waiting } else { GoalStatus::Active };
                let why = waiting_on_human.then(|| "its run waits for a person".to_owned());
                self.set_goal_status(&g, status, why).await?;
                Fired::Again(now + Duration::seconds(WATCH_SECS))
            }
            Step::Judge { run, summary } => match self.judge_claim(&g, &run, &summary).await {
                Ok(()) => Fired::Again(self.now()),
                // The judge cannot be asked (no model configured, the provider refuses after
                // its retries): a person must fix that, so the goal stops and says why.
                Err(Error::Unjudged(why)) => {
                    self.set_goal_status(&g, GoalStatus::Failed, Some(why)).await?;
                    Fired::Done
                }
                Err(e) => return Err(e),
            },
            Step::Exhaust(reason) => {
                self.set_goal_status(&g, GoalStatus::Exhausted, Some(reason)).await?;
                Fired::Done
            }
            Step::Fail(reason) => {
                self.set_goal_status(&g, GoalStatus::Failed, Some(reason)).await?;
                Fired::Done
            }
            Step::WaitUntil(at) => {
                self.set_goal_status(&g, GoalStatus::Waiting, Some(format!("waiting until {}", at.to_rfc3339())))
                    .await?;
                Fired::Again(at)
            }
            Step::PauseUntil(at) => {
                self.set_goal_status(&g, GoalStatus::Active, None).await?;
                Fired::Again(at)
            }
            Step::Start { n } => match self.start_goal_run(&g, n).await {
                Ok(()) => Fired::Again(now + Duration::seconds(WATCH_SECS)),
                Err(Error::ThreadBusy) => Fired::Again(now + Duration::seconds(BUSY_RETRY_SECS)),
                Err(e) => return Err(e),
            },
        })
    }

    /// Starts the goal's n-th run with a message saying where it stands. A person's run on
    /// the thread goes first: the goal waits for it.
    async fn start_goal_run(&self, g: &GoalRecord, n: usize) -> Result<()> {
        let content = run_message(g, n);
        let origin = Origin {
            kind: RunKind::Goal,
            trigger: Some(RunTrigger { goal_id: Some(g.id.to_string()), ..Default::default() }),
            from_timer: true,
        };
        let once = Once::Key { key: format!("goal:{}:run:{n}", g.id), run_id: None };
        match self.submit(&g.thread_id, BusyPolicy::Reject, content, Vec::new(), &origin, Some(once)).await {
            Ok(_) | Err(Error::Store(herm_store::Error::Duplicate)) => {}
            Err(e) => return Err(e),
        }
        // Active, and the wait the agent asked for (if any) is over: one write.
        let rec = self
            .edit_goal(&g.deployment_id, &g.id, None, |r| {
                if r.status.is_terminal() {
                    return Err(Error::Conflict(format!("the goal is {}", r.status.as_str())));
                }
                r.status = GoalStatus::Active;
                r.state.reason = None;
                r.state.wait_until = None;
                Ok(())
            })
            .await?;
        if g.status != GoalStatus::Active {
            self.goal_event(&rec, GoalStatus::Active, None).await;
        }
        Ok(())
    }

    /// Moves the goal to `status` (with an event) if it is not there already.
    pub(crate) async fn set_goal_status(
        &self,
        g: &GoalRecord,
        status: GoalStatus,
        reason: Option<String>,
    ) -> Result<()> {
        if g.status == status && g.state.reason == reason {
            return Ok(());
        }
        let changed = g.status != status;
        let rec = self
            .edit_goal(&g.deployment_id, &g.id, None, |r| {
                if r.status.is_terminal() {
                    return Err(Error::Conflict(format!("the goal is {}", r.status.as_str())));
                }
                r.status = status;
                r.state.reason = reason.clone();
                Ok(())
            })
            .await?;
        if changed {
            self.goal_event(&rec, status, reason).await;
        }
        Ok(())
    }

    /// A goal's run ended or waits for a person: look at the goal now.
    pub(crate) async fn goal_run_changed(&self, run: &RunRecord) {
        let Some(id) = run.trigger.as_ref().and_then(|t| t.goal_id.as_deref()) else { return };
        let Ok(id) = GoalId::parse(id) else { return };
        if let Err(e) = self.poke_goal(&id).await {
            tracing::warn!(goal = %id, error = %e, "could not wake the goal's loop");
        }
    }
}

/// The message that starts a goal's run.
fn run_message(g: &GoalRecord, n: usize) -> String {
    let mut m = format!("[Goal {} — run {n} of at most {}]\nObjective: {}\n", g.id, g.spec.max_runs, g.spec.objective);
    if let Some(c) = &g.spec.done_criteria {
        m.push_str(&format!("Done when: {c}\n"));
    }
    if !g.state.progress_notes.is_empty() {
        m.push_str("\nProgress so far:\n");
        for n in g.state.progress_notes.iter().rev().take(20).rev() {
            m.push_str(&format!("- {}\n", n.note));
        }
    }
    if let Some(f) = &g.state.feedback {
        m.push_str(&format!("\nThe judge did not accept your last claim that the goal is done: {f}\n"));
    }
    m.push_str(
        "\nWork toward the objective. Record progress with `goal_progress`; if nothing can be done until later, \
         call `goal_wait`; if you need a person, ask with `ask_user`; when the done criteria are met, call \
         `goal_done` with a summary of the evidence (a judge will check it).",
    );
    m
}

#[cfg(test)]
mod tests;
