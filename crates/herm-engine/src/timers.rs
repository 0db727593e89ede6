//! The one durable timer facility: a due time per key, kept in the store, claimed by exactly
//! one node when due (a claim that outlives its node expires and is taken again), and
//! finished only by the claim that took it. Everything that must happen later without a
//! person asking (stopping an idle sandbox today; dreaming, automations and goals next) sets a
//! timer here instead of keeping a loop of its own, so it survives restarts and, with a shared
//! store, runs once across nodes.
//!
//! A handler may run more than once for one due time (its node died after acting but before
//! finishing): handlers are idempotent, or make their effect conditional on the firing.

use crate::{Engine, Result};
use chrono::{DateTime, Utc};
use herm_store::{ClaimedTimer, NewTimer};
use serde_json::Value;

/// How long a node holds a claimed timer before another may take it.
const CLAIM_TTL_MS: i64 = 60_000;
/// Timers handled per tick at most; the rest wait for the next tick.
const BATCH: usize = 100;

/// Who handles a timer. Stored by name, so names never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// Stop a deployment's sandbox on the node named in the key once it has been idle long
    /// enough (see `sandboxes`).
    SandboxIdle,
    /// An automation's next slot (see `automations::fire`).
    Automation,
    /// A goal's next step (see `goals::driver`).
    Goal,
}

impl TimerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SandboxIdle => "sandbox_idle",
            Self::Automation => "automation",
            Self::Goal => "goal",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sandbox_idle" => Some(Self::SandboxIdle),
            "automation" => Some(Self::Automation),
            "goal" => Some(Self::Goal),
            _ => None,
        }
    }
}

/// What a handler decided about its timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fired {
    /// Done: the timer is removed.
    Done,
    /// Not yet: fire again at this time.
    Again(DateTime<Utc>),
}

impl Engine {
    /// Sets (or moves) the timer `key`.
    pub(crate) async fn set_timer(
        &self,
        key: String,
        kind: TimerKind,
        due_at: DateTime<Utc>,
        payload: Value,
    ) -> Result<()> {
        Ok(self.store().set_timer(NewTimer { key, kind: kind.as_str().into(), due_at, payload }).await?)
    }

    /// Claims the timers due now and runs their handlers, one after another.
    pub(crate) async fn fire_due_timers(&self) -> Result<usize> {
        let due = self.store().claim_due_timers(self.owner(), self.now(), CLAIM_TTL_MS, BATCH).await?;
        let n = due.len();
        for t in due {
            let next = self.fire(&t).await;
            match self.store().finish_timer(&t, next_due(next)).await {
                // Reset or retaken meanwhile: the newer setting stands.
                Ok(()) | Err(herm_store::Error::Stale) => {}
                Err(e) => tracing::warn!(timer = %t.key, error = %e, "could not finish a timer"),
            }
        }
        Ok(n)
    }

    async fn fire(&self, t: &ClaimedTimer) -> Fired {
        match TimerKind::parse(&t.kind) {
            Some(TimerKind::SandboxIdle) => self.sandbox_idle_fired(t).await,
            Some(TimerKind::Automation) => self.automation_due(t).await,
            Some(TimerKind::Goal) => self.goal_due(t).await,
            None => {
                // Written by a newer herm: leave it for a node that knows it.
                tracing::warn!(timer = %t.key, kind = %t.kind, "a timer of an unknown kind; looking again in an hour");
                Fired::Again(herm_types::now() + chrono::Duration::hours(1))
            }
        }
    }
}

fn next_due(f: Fired) -> Option<DateTime<Utc>> {
    match f {
        Fired::Done => None,
        Fired::Again(at) => Some(at),
    }
}
