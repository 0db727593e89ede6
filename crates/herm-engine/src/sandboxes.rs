//! Sandbox lifecycle on this node: start on demand, count who is using each sandbox, stop
//! the ones idle past the configured time, and reconcile at start (remove sandboxes whose
//! deployment no longer exists; their workspaces are kept). A sandbox is never stopped while
//! a command runs in it.
//!
//! Idle stop is a durable timer (see [`crate::timers`]), keyed by node and deployment: set
//! when a sandbox is first used (or found running at start), moved on when it fires while the
//! sandbox was used since, and finished when the sandbox is stopped. So a sandbox left running
//! by a crashed herm is stopped after the restart too, and a busy one costs one write per idle
//! period, not one per command.

use crate::Engine;
use crate::timers::{Fired, TimerKind};
use herm_store::ClaimedTimer;
use herm_types::DeploymentId;
use herm_types::config::DeploymentSpec;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

#[derive(Default)]
pub(crate) struct Usage {
    map: Mutex<HashMap<DeploymentId, (usize, Instant)>>,
}

/// Held while a sandbox is in use; its drop marks the end of the use.
pub struct InUse {
    usage: Arc<Usage>,
    dep: DeploymentId,
}

impl Drop for InUse {
    fn drop(&mut self) {
        if let Some(u) = self.usage.map.lock().get_mut(&self.dep) {
            u.0 = u.0.saturating_sub(1);
            u.1 = Instant::now();
        }
    }
}

impl Engine {
    /// Starts the deployment's sandbox if needed; the guard keeps it from idling out.
    pub async fn use_sandbox(
        &self,
        dep: &DeploymentId,
        spec: &DeploymentSpec,
    ) -> Result<(Arc<dyn herm_sandbox::Sandbox>, InUse), herm_sandbox::Error> {
        let usage = self.inner.usage.clone();
        let first = {
            let mut m = usage.map.lock();
            let first = !m.contains_key(dep);
            let u = m.entry(dep.clone()).or_insert((0, Instant::now()));
            u.0 += 1;
            u.1 = Instant::now();
            first
        };
        let guard = InUse { usage, dep: dep.clone() };
        let sb = self.running_sandbox(dep, spec).await?;
        if first {
            self.arm_idle_stop(dep).await;
        }
        Ok((sb, guard))
    }

    fn idle_key(&self, dep: &DeploymentId) -> String {
        format!("sandbox_idle:{}:{dep}", self.options().node_id)
    }

    /// Sets the deployment's idle-stop timer one idle period from now.
    async fn arm_idle_stop(&self, dep: &DeploymentId) {
        let due = herm_types::now() + self.options().sandbox.idle_stop;
        let payload = serde_json::json!({"deployment_id": dep, "node_id": self.options().node_id});
        if let Err(e) = self.set_timer(self.idle_key(dep), TimerKind::SandboxIdle, due, payload).await {
            tracing::warn!(deployment = %dep, error = %e, "could not set the sandbox's idle timer");
        }
    }

    /// The idle timer of a sandbox fired: stop it if nobody used it for an idle period, else
    /// look again one idle period after its last use.
    pub(crate) async fn sandbox_idle_fired(&self, t: &ClaimedTimer) -> Fired {
        let node = t.payload.get("node_id").and_then(|v| v.as_str()).unwrap_or_default();
        let dep = t.payload.get("deployment_id").and_then(|v| v.as_str()).and_then(|d| DeploymentId::parse(d).ok());
        let (Some(dep), Some(sb)) = (dep, self.sandbox().cloned()) else { return Fired::Done };
        if node != self.options().node_id {
            // Another node's sandbox: it looks at its own timers.
            return Fired::Again(herm_types::now() + self.options().sandbox.idle_stop);
        }
        let idle = self.options().sandbox.idle_stop;
        {
            let mut m = self.inner.usage.map.lock();
            match m.get(&dep) {
                Some((n, _)) if *n > 0 => return Fired::Again(herm_types::now() + idle),
                Some((_, last)) if last.elapsed() < idle => {
                    return Fired::Again(herm_types::now() + (idle - last.elapsed()));
                }
                _ => {
                    m.remove(&dep);
                }
            }
        }
        match sb.stop(&dep).await {
            Ok(()) => tracing::info!(deployment = %dep, "stopped an idle sandbox"),
            Err(e) => tracing::warn!(deployment = %dep, error = %e, "could not stop an idle sandbox"),
        }
        Fired::Done
    }

    /// Removes sandboxes whose deployment is gone (workspaces are kept).
    pub(crate) async fn reconcile_sandboxes(&self) {
        let Some(sb) = self.sandbox().cloned() else { return };
        let list = match sb.list().await {
            Ok(l) => l,
            Err(e) => return tracing::warn!(error = %e, "could not list sandboxes"),
        };
        self.recreate_missing(&list);
        for d in list {
            match self.store().get_deployment(&d).await {
                // Running from before the restart: it idles out like any other.
                Ok(Some(_)) => self.arm_idle_stop(&d).await,
                Ok(None) => {
                    tracing::info!(deployment = %d, "removing the sandbox of a deployment that no longer exists");
                    if let Err(e) = sb.destroy(&d, true).await {
                        tracing::warn!(deployment = %d, error = %e, "could not remove an orphaned sandbox");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reconciliation stopped"),
            }
        }
    }

    /// In the background: recreates the sandbox of every ready deployment that has none here
    /// (removed by hand, or an engine whose state was lost), one at a time; it is stopped
    /// later like any idle sandbox, and its workspace volume is reused if it survived.
    fn recreate_missing(&self, present: &[DeploymentId]) {
        let present: std::collections::HashSet<DeploymentId> = present.iter().cloned().collect();
        let me = self.clone();
        self.inner.tasks.spawn(async move {
            let mut before = None;
            loop {
                let q = herm_store::DeploymentQuery {
                    customer_id: None,
                    status: Some(herm_types::DeploymentStatus::Ready),
                    before: before.clone(),
                    limit: 200,
                };
                let page = match me.store().list_deployments(q).await {
                    Ok(p) => p,
                    Err(e) => return tracing::warn!(error = %e, "could not list deployments to reconcile"),
                };
                let Some(last) = page.last() else { return };
                before = Some(last.id.clone());
                for d in page.iter().filter(|d| d.spec.sandbox.enabled && !present.contains(&d.id)) {
                    if me.inner.shutdown.is_cancelled() {
                        return;
                    }
                    tracing::info!(deployment = %d.id, "recreating a missing sandbox");
                    if let Err(e) = me.use_sandbox(&d.id, &d.spec).await {
                        tracing::warn!(deployment = %d.id, error = %e, "could not recreate the sandbox");
                    }
                }
            }
        });
    }
}
