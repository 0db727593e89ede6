//! Committed events onto this node's bus, in commit order, whichever node committed them
//! (and, on the same listening connection, other nodes' live frames: see [`super::live`]).
//!
//! Every append notifies `herm_events` with its deployment and range of deployment
//! positions, inside its transaction (PostgreSQL delivers notifications at commit, in commit
//! order). Each node keeps, per deployment, the next position it will publish: its own
//! appends past a gap are held until the gap fills; a notification past that position makes
//! it read from the log what it does not hold; so the bus sees every event once, in order,
//! even when a notification was lost or the listening connection dropped. A sweep every
//! [`SWEEP`] reads past positions of the deployments someone on this node watches, for a
//! notification that never came. Positions of a deployment nobody on this node watches are
//! passed without reading other nodes' events (only this node's own are published, for its
//! tap): with every node reading every other node's commits, each event was read and
//! decoded once per node.

use super::PostgresStore;
use crate::{EventFilter, LogStore};
use herm_types::event::LiveFrame;
use herm_types::{DeploymentId, Event};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// How often the deployments watched on this node are checked for events no notification
/// announced.
const SWEEP: Duration = Duration::from_secs(2);
/// Events read from the log per query while catching up.
const PAGE: usize = 500;

/// The notification an append sends: `deployment first last`.
pub(super) fn note(dep: &str, first: i64, last: i64) -> String {
    format!("{dep} {first} {last}")
}

fn parse_note(s: &str) -> Option<(DeploymentId, i64, i64)> {
    let mut it = s.split(' ');
    let dep = DeploymentId::parse(it.next()?).ok()?;
    let first = it.next()?.parse().ok()?;
    let last = it.next()?.parse().ok()?;
    Some((dep, first, last))
}

/// What this node publishes of one deployment.
#[derive(Default)]
struct Stream {
    /// The next position to publish.
    next: i64,
    /// This node's own commits past a gap, held until the gap is filled.
    held: BTreeMap<i64, Arc<Event>>,
}

impl Stream {
    /// Passes positions up to `last` without reading them: this node's own commits among
    /// them are published (its tap counts them), in order; other nodes' are not read.
    fn skip_to(&mut self, store: &PostgresStore, dep: &DeploymentId, last: i64) {
        while let Some(entry) = self.held.first_entry().filter(|e| *e.key() <= last) {
            store.bus().publish(dep, LiveFrame::Committed(entry.remove()));
        }
        self.next = self.next.max(last + 1);
        self.flush(store, dep);
    }

    /// Publishes what is contiguous from `next`.
    fn flush(&mut self, store: &PostgresStore, dep: &DeploymentId) {
        while let Some(e) = self.held.remove(&self.next) {
            store.bus().publish(dep, LiveFrame::Committed(e));
            self.next += 1;
        }
    }
}

/// Per deployment, what this node has published (each behind its own lock: deployments never
/// wait on each other).
#[derive(Default)]
pub struct Fanout {
    streams: parking_lot::Mutex<HashMap<DeploymentId, Arc<tokio::sync::Mutex<Stream>>>>,
    /// Per deployment, the first position of this node's earliest append, taken inside the
    /// append's transaction (under the deployment's row lock, so in commit order): where
    /// publishing starts when the deployment is new to this node, whichever of its first
    /// appends reaches [`Fanout::committed`] first.
    floors: parking_lot::Mutex<HashMap<DeploymentId, i64>>,
}

impl Fanout {
    /// Notes an append's first position before it commits (see `floors`).
    pub(super) fn reserve(&self, dep: &DeploymentId, first: i64) {
        self.floors.lock().entry(dep.clone()).or_insert(first);
    }

    /// The deployment's stream, made starting at `start` if new.
    fn stream(&self, dep: &DeploymentId, start: i64) -> Arc<tokio::sync::Mutex<Stream>> {
        self.streams
            .lock()
            .entry(dep.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(Stream { next: start, held: BTreeMap::new() })))
            .clone()
    }

    /// Publishes an append this node committed once everything before it is published; a gap
    /// (another append not yet reported, another node's commit) is filled by that append, by
    /// the notification, or by the sweep.
    pub(super) async fn committed(&self, store: &PostgresStore, events: &[Arc<Event>]) {
        let Some(first) = events.first() else { return };
        let dep = first.deployment_id.clone();
        let floor = self.floors.lock().get(&dep).copied().unwrap_or(first.deployment_sequence.0);
        let stream = self.stream(&dep, floor.min(first.deployment_sequence.0));
        let mut s = stream.lock().await;
        let next = s.next;
        for e in events {
            if e.deployment_sequence.0 >= next {
                s.held.insert(e.deployment_sequence.0, e.clone());
            } else {
                // Read from the log and published before this call, as if another node's:
                // counted now, once, as this node's.
                store.bus().observe(&dep, &LiveFrame::Committed(e.clone()));
            }
        }
        s.flush(store, &dep);
    }

    /// Publishes `dep`'s positions up to `last` (announced by a notification, or found by a
    /// sweep), reading from the log those this node does not hold.
    async fn announced(&self, store: &PostgresStore, dep: DeploymentId, first: i64, last: i64) {
        let stream = self.stream(&dep, first);
        let mut s = stream.lock().await;
        if !store.bus().is_watched(&dep) {
            // Nobody here reads the deployment: other nodes' events are not read from the log
            // (a reader that comes reads the log from its position before taking live ones).
            s.skip_to(store, &dep, last);
            return;
        }
        while s.next <= last {
            if s.held.contains_key(&s.next) {
                s.flush(store, &dep);
                continue;
            }
            // Up to the next held position (or `last`), from the log.
            let to = s.held.range(s.next..).next().map(|(p, _)| p - 1).unwrap_or(last).min(last);
            let before = s.next;
            // A failed read, or positions not in the log yet: the next notification or sweep.
            if !publish_from_log(store, &dep, &mut s, to).await || s.next == before {
                return;
            }
            s.flush(store, &dep);
        }
    }
}

/// Reads `dep`'s events in `[s.next, to]` and publishes them; false if the read failed (the
/// next notification or sweep tries again).
async fn publish_from_log(store: &PostgresStore, dep: &DeploymentId, s: &mut Stream, to: i64) -> bool {
    while s.next <= to {
        let page = match store.deployment_events(dep, s.next - 1, PAGE, &EventFilter::default()).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, deployment = %dep, "cannot read committed events to publish");
                return false;
            }
        };
        let before = s.next;
        for e in page {
            let at = e.deployment_sequence.0;
            if at > to {
                return true;
            }
            if at == s.next {
                // Held: this node committed it (its tap counts it); else another node's, or
                // this node's not yet reported (counted when it is, in `committed`).
                let frame = LiveFrame::Committed(Arc::new(e));
                match s.held.remove(&at) {
                    Some(_) => store.bus().publish(dep, frame),
                    None => store.bus().publish_relayed(dep, frame),
                }
                s.next += 1;
            }
        }
        if s.next == before {
            // Nothing at `next` yet (the log is read before a commit shows): later.
            return true;
        }
    }
    true
}

/// Starts the listening connection (reconnecting when it drops) and the sweep.
pub(super) fn listen(store: PostgresStore, cfg: tokio_postgres::Config) {
    let weak = Arc::downgrade(&store.inner);
    drop(store);
    tokio::spawn(async move {
        loop {
            let Some(inner) = weak.upgrade() else { return };
            let store = PostgresStore { inner };
            if let Err(e) = listen_once(&store, &cfg).await {
                tracing::warn!(error = %e, "the database notification connection failed; reconnecting");
            }
            drop(store);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

async fn listen_once(store: &PostgresStore, cfg: &tokio_postgres::Config) -> crate::Result<()> {
    use futures::StreamExt;
    let (client, mut conn) = cfg.connect(tokio_postgres::NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    let live = n.channel() == super::live::CHANNEL;
                    if tx.send((live, n.payload().to_owned())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "database notification stream ended");
                    return;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN herm_events; LISTEN {}", super::live::CHANNEL)).await?;
    // Anything committed while no connection listened.
    sweep(store).await;
    let mut tick = tokio::time::interval(SWEEP);
    loop {
        tokio::select! {
            n = rx.recv() => match n {
                // Another node's live frame: straight onto this node's bus.
                Some((true, n)) => {
                    if let Some(f) = super::live::received(&store.inner.origin, &n) {
                        store.bus().publish_relayed(&f.deployment_id.clone(), LiveFrame::Ephemeral(Arc::new(f)));
                    }
                }
                Some((false, n)) => {
                    if let Some((dep, first, last)) = parse_note(&n) {
                        store.inner.fanout.announced(store, dep, first, last).await;
                    }
                }
                None => break,
            },
            _ = tick.tick() => sweep(store).await,
        }
        if Arc::strong_count(&store.inner) <= 1 {
            break;
        }
    }
    driver.abort();
    Ok(())
}

/// Catches up the deployments someone on this node watches, from their positions in the log.
async fn sweep(store: &PostgresStore) {
    let watched = store.bus().watched();
    if watched.is_empty() {
        return;
    }
    let ids: Vec<String> = watched.iter().map(|d| d.to_string()).collect();
    let heads: Vec<(String, i64)> = match store.client().await {
        Ok(c) => match super::rows(&c, "SELECT id, next_dseq FROM deployments WHERE id = ANY($1)", &[&ids], |r| {
            Ok(super::cols!(r; 0, 1))
        })
        .await
        {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read deployments' positions");
                return;
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot reach the database for a sweep");
            return;
        }
    };
    for (dep, next) in heads {
        let Ok(dep) = DeploymentId::parse(&dep) else { continue };
        // A deployment first seen by a sweep starts from its head: its watchers read the log.
        store.inner.fanout.announced(store, dep, next, next - 1).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_round_trip_and_refuse_garbage() {
        let dep = DeploymentId::new();
        assert_eq!(parse_note(&note(dep.as_str(), 3, 9)), Some((dep, 3, 9)));
        assert_eq!(parse_note("nope 1 2"), None);
        assert_eq!(parse_note(""), None);
    }
}
