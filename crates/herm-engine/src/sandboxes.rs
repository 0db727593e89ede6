//! Sandbox lifecycle on this node: start on demand, count who is using each sandbox, stop
//! the ones idle past the configured time, and reconcile at start (remove sandboxes whose
//! deployment no longer exists; their workspaces are kept). A sandbox is never stopped while
//! a command runs in it.

use crate::Engine;
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
        {
            let mut m = usage.map.lock();
            let u = m.entry(dep.clone()).or_insert((0, Instant::now()));
            u.0 += 1;
            u.1 = Instant::now();
        }
        let guard = InUse { usage, dep: dep.clone() };
        let sb = self.running_sandbox(dep, spec).await?;
        Ok((sb, guard))
    }

    /// Stops sandboxes unused for longer than the idle time.
    pub(crate) async fn stop_idle_sandboxes(&self) {
        let Some(sb) = self.sandbox().cloned() else { return };
        let idle = self.options().sandbox.idle_stop;
        let due: Vec<DeploymentId> = {
            let mut m = self.inner.usage.map.lock();
            let due: Vec<DeploymentId> =
                m.iter().filter(|(_, (n, last))| *n == 0 && last.elapsed() >= idle).map(|(d, _)| d.clone()).collect();
            for d in &due {
                m.remove(d);
            }
            due
        };
        for d in due {
            match sb.stop(&d).await {
                Ok(()) => tracing::info!(deployment = %d, "stopped an idle sandbox"),
                Err(e) => tracing::warn!(deployment = %d, error = %e, "could not stop an idle sandbox"),
            }
        }
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
                Ok(Some(_)) => {}
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
