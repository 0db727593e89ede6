//! The one durable timer facility: a due time per key, kept in the store, claimed by exactly
//! one node when due (a claim that outlives its node expires and is taken again), and
//! finished only by the claim that took it. Everything that must happen later without a
//! person asking (stopping an idle sandbox, automation slots, goal steps, observing an idle
//! thread, dreaming) sets a
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
/// Timers claimed at once; a full batch is followed by another at once.
const BATCH: usize = 1000;
/// Timers are claimed this long before they are due, so the claim's durable write is not on
/// the path from the due time to the handler's effect; the handler waits for the due time.
const LEAD_MS: i64 = 50;
/// Handlers run at once (their writes share the store's group commits).
const PARALLEL: usize = 64;

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
    /// Observe a thread that went idle (see `memory::observer`).
    Observe,
    /// Dream if the deployment is idle with new material (see `memory::dream`).
    Dream,
    /// A facade's own timer (the Claude Managed Agents API's scheduled deployments), fired
    /// by the [`FacadeTimers`] it registered.
    Facade,
}

/// A facade's timer handler: fires the timer `key` due at `due` and says when it is due
/// next (`None`: done). Like every handler it may run twice for one due time after a crash,
/// so its effect must be conditional on the firing.
#[async_trait::async_trait]
pub trait FacadeTimers: Send + Sync + 'static {
    async fn fire(&self, key: &str, due: DateTime<Utc>, payload: &Value) -> Option<DateTime<Utc>>;
}

/// How long a facade's timer waits when no handler is registered yet (the server is starting).
const UNHANDLED_RETRY_SECS: i64 = 2;

impl TimerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SandboxIdle => "sandbox_idle",
            Self::Automation => "automation",
            Self::Goal => "goal",
            Self::Observe => "observe",
            Self::Dream => "dream",
            Self::Facade => "facade",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sandbox_idle" => Some(Self::SandboxIdle),
            "automation" => Some(Self::Automation),
            "goal" => Some(Self::Goal),
            "observe" => Some(Self::Observe),
            "dream" => Some(Self::Dream),
            "facade" => Some(Self::Facade),
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
    /// Registers who fires the facade's timers.
    pub fn set_facade_timers(&self, handler: std::sync::Arc<dyn FacadeTimers>) {
        *self.inner.facade_timers.lock() = Some(handler);
    }

    /// Sets (or moves) a facade's timer `key` (its keys start with `facade:`), with a payload
    /// its handler is given.
    pub async fn set_facade_timer(&self, key: &str, due_at: DateTime<Utc>, payload: Value) -> Result<()> {
        self.set_timer(format!("facade:{key}"), TimerKind::Facade, due_at, payload).await
    }

    /// Removes a facade's timer, if set.
    pub async fn cancel_facade_timer(&self, key: &str) -> Result<()> {
        self.store().cancel_timer(&format!("facade:{key}")).await?;
        Ok(())
    }

    async fn facade_due(&self, t: &ClaimedTimer) -> Fired {
        let handler = self.inner.facade_timers.lock().clone();
        let Some(h) = handler else {
            return Fired::Again(self.now() + chrono::Duration::seconds(UNHANDLED_RETRY_SECS));
        };
        match h.fire(t.key.strip_prefix("facade:").unwrap_or(&t.key), t.due_at, &t.payload).await {
            Some(at) => Fired::Again(at),
            None => Fired::Done,
        }
    }

    /// Sets (or moves) the timer `key`, and wakes the timer loop if it is due sooner than
    /// the loop planned to look.
    pub(crate) async fn set_timer(
        &self,
        key: String,
        kind: TimerKind,
        due_at: DateTime<Utc>,
        payload: Value,
    ) -> Result<()> {
        self.store().set_timer(NewTimer { key, kind: kind.as_str().into(), due_at, payload }).await?;
        self.inner.timer_wake.notify_one();
        Ok(())
    }

    /// The timer loop: fire what is due, then sleep until the next due time (or a timer set
    /// sooner, or the scan interval, whichever comes first), so a slot starts within
    /// milliseconds of its time instead of at the next poll.
    pub(crate) async fn timer_loop(&self) {
        let scan = self.options().scan_interval;
        loop {
            if let Err(e) = self.fire_due_timers().await {
                tracing::warn!(error = %e, "firing due timers failed");
            }
            let lead = chrono::Duration::milliseconds(LEAD_MS);
            let wait = match self.store().next_due_at().await {
                Ok(Some(at)) => (at - lead - self.now()).to_std().unwrap_or_default().min(scan),
                _ => scan,
            };
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.inner.timer_wake.notified() => {}
            }
        }
    }

    /// Claims the timers due now and runs their handlers, several at once, batch after batch
    /// while batches come back full.
    pub(crate) async fn fire_due_timers(&self) -> Result<usize> {
        use futures::StreamExt;
        let mut total = 0;
        loop {
            let horizon = self.now() + chrono::Duration::milliseconds(LEAD_MS);
            let due = self.store().claim_due_timers(self.owner(), horizon, CLAIM_TTL_MS, BATCH).await?;
            let n = due.len();
            total += n;
            futures::stream::iter(due)
                .for_each_concurrent(PARALLEL, |t| async move {
                    // Claimed early: act at the due time, not before.
                    if let Ok(early) = (t.due_at - self.now()).to_std() {
                        tokio::time::sleep(early).await;
                    }
                    let next = self.fire(&t).await;
                    match self.store().finish_timer(&t, next_due(next)).await {
                        // Reset or retaken meanwhile: the newer setting stands.
                        Ok(()) | Err(herm_store::Error::Stale) => {}
                        Err(e) => tracing::warn!(timer = %t.key, error = %e, "could not finish a timer"),
                    }
                })
                .await;
            let woken = std::mem::take(&mut *self.inner.deferred_wakes.lock());
            for t in woken {
                self.wake(t);
            }
            if n < BATCH || self.inner.shutdown.is_cancelled() {
                return Ok(total);
            }
        }
    }

    async fn fire(&self, t: &ClaimedTimer) -> Fired {
        match TimerKind::parse(&t.kind) {
            Some(TimerKind::SandboxIdle) => self.sandbox_idle_fired(t).await,
            Some(TimerKind::Automation) => self.automation_due(t).await,
            Some(TimerKind::Goal) => self.goal_due(t).await,
            Some(TimerKind::Observe) => self.observe_due(t).await,
            Some(TimerKind::Dream) => self.dream_due(t).await,
            Some(TimerKind::Facade) => self.facade_due(t).await,
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
