//! The pool: containers created, started and answering (their exec helper's channel open)
//! before any deployment asks for one, so a new deployment's sandbox is a rename away
//! instead of a container creation and start, which the engine itself takes a few hundred
//! milliseconds for.
//!
//! One background task keeps `size` containers ready, building one at a time. A deployment
//! takes a ready one; when none is ready but one is being built, the first such deployment
//! waits for it (it will be ready no later than a new container would) and any other gets a
//! container of its own. Pool containers are named `herm-pool-<id>` and labelled
//! `herm.pool`; what an earlier run left unclaimed is removed at start, and what is ready is
//! removed at shutdown.

use super::{Core, MANAGED, OWNER, engine};
use crate::helper::Channel;
use crate::{Result, SandboxConfig};
use herm_types::EventId;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

const POOL: &str = "herm.pool";
const PREFIX: &str = "herm-pool-";
/// The longest a new deployment waits for a pool container being built.
const WAIT: Duration = Duration::from_secs(30);

/// A pool container ready to be taken.
pub(crate) struct Ready {
    pub(crate) container: String,
    pub(crate) volume: String,
    /// `None` when the image cannot run the exec helper.
    pub(crate) channel: Option<Arc<Channel>>,
    /// How it was built (a taker adjusts limits and network from this).
    pub(crate) config: SandboxConfig,
}

#[derive(Default)]
struct Slots {
    ready: VecDeque<Ready>,
    building: usize,
    waiting: usize,
}

pub(crate) struct Pool {
    core: Arc<Core>,
    size: usize,
    config: SandboxConfig,
    slots: Mutex<Slots>,
    /// Wakes the filling task: a container was taken, or the pool closed.
    refill: Notify,
    /// Wakes takers and `wait_ready`: a build ended.
    changed: Notify,
    closed: AtomicBool,
}

impl Pool {
    pub(crate) fn start(core: Arc<Core>, size: usize, config: SandboxConfig) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            core,
            size,
            config,
            slots: Mutex::default(),
            refill: Notify::new(),
            changed: Notify::new(),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(fill(pool.clone()));
        pool
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// A ready container for a sandbox built as `cfg`, if the pool has or is about to have one.
    pub(crate) async fn take(&self, cfg: &SandboxConfig) -> Option<Ready> {
        if cfg.image != self.config.image || self.closed() {
            return None;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut s = self.slots();
                while let Some(r) = s.ready.pop_front() {
                    self.refill.notify_one();
                    if r.channel.as_ref().is_none_or(|c| c.alive()) {
                        return Some(r);
                    }
                    // Its helper died: the container was stopped or removed behind our back.
                    let core = self.core.clone();
                    tokio::spawn(async move { discard(&core, &r).await });
                }
                // Wait only for a container already being built, one taker each.
                if s.building <= s.waiting {
                    return None;
                }
                s.waiting += 1;
            }
            let timed_out = tokio::time::timeout_at(deadline, changed).await.is_err();
            self.slots().waiting -= 1;
            if timed_out {
                return None;
            }
        }
    }

    /// Waits until `done` holds of the slots (checked after every build); false if `within`
    /// passes first.
    async fn until(&self, within: Duration, done: impl Fn(&Slots) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(&self.slots()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return false;
            }
        }
    }

    /// Waits until `n` containers are ready.
    pub(crate) async fn wait_ready(&self, n: usize, within: Duration) -> bool {
        self.until(within, |s| s.ready.len() >= n).await
    }

    /// Stops filling and removes the ready containers, after the one being built (which the
    /// filling task removes itself) is done.
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.refill.notify_one();
        self.until(WAIT, |s| s.building == 0).await;
        let ready: Vec<Ready> = self.slots().ready.drain(..).collect();
        for r in ready {
            discard(&self.core, &r).await;
        }
    }
}

async fn discard(core: &Core, r: &Ready) {
    if let Err(e) = core.remove(&r.container, Some(&r.volume)).await {
        tracing::warn!(container = %r.container, error = %e, "could not remove a pool container");
    }
}

/// Keeps the pool full until it closes; a failing build is retried with a growing pause.
async fn fill(pool: Arc<Pool>) {
    let mut pause = Duration::from_secs(1);
    while !pool.closed() {
        let wanted = {
            let mut s = pool.slots();
            let wanted = s.ready.len() + s.building < pool.size;
            s.building += usize::from(wanted);
            wanted
        };
        if !wanted {
            pool.refill.notified().await;
            continue;
        }
        let built = build(&pool.core, &pool.config).await;
        let failed = match built {
            Ok(r) if pool.closed() => {
                discard(&pool.core, &r).await;
                None
            }
            Ok(r) => {
                pool.slots().ready.push_back(r);
                None
            }
            Err(e) => Some(e),
        };
        pool.slots().building -= 1;
        pool.changed.notify_waiters();
        match failed {
            None => pause = Duration::from_secs(1),
            Some(e) => {
                tracing::warn!(error = %e, "could not start a pool container; trying again in {} s", pause.as_secs());
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// Creates and starts one pool container and opens its helper channel.
async fn build(core: &Core, cfg: &SandboxConfig) -> Result<Ready> {
    let id = EventId::new().as_str().trim_start_matches(EventId::PREFIX).to_owned();
    let (container, volume) = (format!("{PREFIX}{id}"), format!("herm-ws-pool-{id}"));
    let labels = core.labels(&[(POOL, "true")]);
    let made = match core.create_container(&container, &volume, false, labels, cfg).await {
        Ok(()) => core.docker.start_container(&container, None).await.map_err(engine),
        Err(e) => Err(e),
    };
    if let Err(e) = made {
        if let Err(r) = core.remove(&container, Some(&volume)).await {
            tracing::warn!(container, error = %r, "could not remove a pool container that failed to start");
        }
        return Err(e);
    }
    let channel = match Channel::open(&core.docker, &container).await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::info!(container, error = %e, "no exec helper in pool containers; using one docker exec per command");
            None
        }
    };
    Ok(Ready { container, volume, channel, config: cfg.clone() })
}

/// Removes what an earlier run of this herm left in its pool: unclaimed containers and
/// volumes (a volume claimed just before a crash stays; the deployment's sandbox is then
/// created on it).
pub(crate) async fn remove_leftovers(core: &Core) {
    let labels = vec![MANAGED.to_owned(), POOL.to_owned(), format!("{OWNER}={}", core.state.owner)];
    let filters = HashMap::from([("label".to_owned(), labels)]);
    let opts = bollard::query_parameters::ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let claimed = core.state.claimed_volumes();
    match core.docker.list_containers(Some(opts)).await {
        Ok(list) => {
            for c in list {
                let Some(name) = c.names.and_then(|n| n.into_iter().next()) else { continue };
                let name = name.trim_start_matches('/');
                if name.starts_with(PREFIX)
                    && let Err(e) = core.remove(name, None).await
                {
                    tracing::warn!(container = name, error = %e, "could not remove a leftover pool container");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list leftover pool containers"),
    }
    let opts = bollard::query_parameters::ListVolumesOptionsBuilder::default().filters(&filters).build();
    match core.docker.list_volumes(Some(opts)).await {
        Ok(list) => {
            for v in list.volumes.unwrap_or_default().into_iter().filter(|v| !claimed.contains(&v.name)) {
                // In use means a container holds it: not a leftover.
                if let Err(e) = core.remove_volume(&v.name).await {
                    tracing::debug!(volume = %v.name, error = %e, "kept a pool volume");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list leftover pool volumes"),
    }
}
