//! The live bus: fan-out of committed events (published by the store, in commit order) and
//! ephemeral frames (token and tool-output deltas, published by the engine) to SSE readers.
//!
//! One broadcast channel per deployment; subscribers filter by thread. A subscriber that lags
//! behind receives `Lagged` and re-reads the committed log, so slowness never loses events.
//!
//! A tap (at most one, set by the engine) sees every frame this node produces as it is
//! published, whether or not anyone subscribes: the metrics and spans count committed events
//! there, in commit order. Frames from other nodes of a shared store reach readers but not the
//! tap (their own node counts them), so a cluster's metrics add up and no span is exported twice.
//!
//! A relay (at most one, set by a store shared by several nodes) is handed each ephemeral
//! frame published on this node, to pass on to the others; what it receives from them comes
//! back through [`Bus::publish_relayed`], which does not hand it on again.

use herm_types::DeploymentId;
use herm_types::event::LiveFrame;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::broadcast;

const CAPACITY: usize = 1024;

/// What sees every published frame (it must be quick: it runs on the publisher's thread).
pub type Tap = Arc<dyn Fn(&DeploymentId, &LiveFrame) + Send + Sync>;

#[derive(Clone, Default)]
pub struct Bus {
    channels: Arc<Mutex<HashMap<DeploymentId, broadcast::Sender<LiveFrame>>>>,
    tap: Arc<parking_lot::RwLock<Option<Tap>>>,
    relay: Arc<parking_lot::RwLock<Option<Tap>>>,
}

impl Bus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribes to every frame of a deployment.
    pub fn subscribe(&self, dep: &DeploymentId) -> broadcast::Receiver<LiveFrame> {
        let mut map = self.channels.lock();
        map.entry(dep.clone()).or_insert_with(|| broadcast::channel(CAPACITY).0).subscribe()
    }

    /// The deployments someone subscribes to now (a store that learns of other nodes' commits
    /// catches these up).
    pub fn watched(&self) -> Vec<DeploymentId> {
        self.channels.lock().iter().filter(|(_, tx)| tx.receiver_count() > 0).map(|(d, _)| d.clone()).collect()
    }

    /// Whether someone on this node subscribes to `dep` now.
    pub fn is_watched(&self, dep: &DeploymentId) -> bool {
        self.channels.lock().get(dep).is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// Sets the tap (replacing any earlier one).
    pub fn set_tap(&self, tap: Tap) {
        *self.tap.write() = Some(tap);
    }

    /// Sets the relay (replacing any earlier one).
    pub fn set_relay(&self, relay: Tap) {
        *self.relay.write() = Some(relay);
    }

    /// Publishes a frame this node produced: the tap sees it, readers get it (frames for a
    /// deployment nobody watches are dropped at once), and an ephemeral frame also goes to
    /// the relay, if one is set.
    pub fn publish(&self, dep: &DeploymentId, frame: LiveFrame) {
        if let (LiveFrame::Ephemeral(_), Some(relay)) = (&frame, self.relay.read().as_ref()) {
            relay(dep, &frame);
        }
        self.observe(dep, &frame);
        self.publish_relayed(dep, frame);
    }

    /// Hands a frame this node produced to the tap alone (its readers already had it, as
    /// another node's: see [`Bus::publish_relayed`]).
    pub fn observe(&self, dep: &DeploymentId, frame: &LiveFrame) {
        if let Some(tap) = self.tap.read().as_ref() {
            tap(dep, frame);
        }
    }

    /// Publishes a frame that came from another node to this node's readers (neither the
    /// relay nor the tap sees it).
    pub fn publish_relayed(&self, dep: &DeploymentId, frame: LiveFrame) {
        let mut map = self.channels.lock();
        // No receivers left: forget the channel so idle deployments cost nothing.
        if let Some(tx) = map.get(dep)
            && tx.send(frame).is_err()
        {
            map.remove(dep);
        }
    }
}
