//! A session's live stream: the thread's committed events projected as they commit, and, when
//! asked, `event_start`/`event_delta` previews of the `agent.message` being written (herm's
//! token frames carry the id the message will have). Subscribed before it is returned, so
//! nothing committed after the call is missed; a subscriber that lags re-reads the log from
//! its position. The server frames each item as SSE.

use crate::project::Projector;
use crate::{Facade, Result};
use herm_types::event::LiveFrame;
use herm_types::*;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

/// One SSE frame: `id` is the herm `sequence` the event came from (none on previews).
#[derive(Clone, Debug)]
pub struct Frame {
    pub id: Option<i64>,
    pub event: String,
    pub data: Value,
}

/// Which previews a connection asked for (`event_deltas[]`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Deltas {
    pub message: bool,
}

struct Pump {
    facade: Facade,
    thread: ThreadId,
    deployment: DeploymentId,
    projector: Projector,
    cursor: i64,
    deltas: Deltas,
    /// The message a preview was started for, and how many fragments it has had.
    previewing: Option<EventId>,
    tx: mpsc::Sender<Frame>,
}

impl Facade {
    /// Opens the stream. `after`: resume after this `sequence` (`Last-Event-ID`); by default
    /// the stream is live only, as CMA's.
    pub async fn open_stream(
        &self,
        session: &str,
        deltas: Deltas,
        after: Option<i64>,
    ) -> Result<mpsc::Receiver<Frame>> {
        let place = self.place_of(session, false).await?;
        let sub = self.engine.subscribe(&place.deployment);
        let log = self.engine.thread_log(&place.thread).await?;
        let cursor = after.unwrap_or_else(|| log.last().map(|e| e.sequence.0).unwrap_or(0));
        let mut projector = self.projector(&place).await?;
        let (tx, rx) = mpsc::channel(256);
        let mut backlog = Vec::new();
        for e in &log {
            let mut out = projector.event(e);
            if e.sequence.0 > cursor {
                self.with_media(&place.deployment, &mut out).await;
                backlog.extend(frames(e.sequence.0, out));
            }
        }
        let last = log.last().map(|e| e.sequence.0).unwrap_or(0).max(cursor);
        let pump = Pump {
            facade: self.clone(),
            thread: place.thread,
            deployment: place.deployment,
            projector,
            cursor: last,
            deltas,
            previewing: None,
            tx,
        };
        tokio::spawn(pump.run(sub, backlog));
        Ok(rx)
    }
}

fn frame(id: Option<i64>, v: Value) -> Frame {
    Frame { id, event: v["type"].as_str().unwrap_or("message").to_owned(), data: v }
}

/// The frames of one herm event; only the last carries its position, so a client resuming
/// from an id has had every frame of that event.
fn frames(seq: i64, out: Vec<Value>) -> Vec<Frame> {
    let n = out.len();
    out.into_iter().enumerate().map(|(i, v)| frame((i + 1 == n).then_some(seq), v)).collect()
}

impl Pump {
    async fn run(mut self, mut sub: broadcast::Receiver<LiveFrame>, backlog: Vec<Frame>) {
        for f in backlog {
            if self.tx.send(f).await.is_err() {
                return;
            }
        }
        loop {
            let msg = tokio::select! {
                _ = self.tx.closed() => return,
                m = sub.recv() => m,
            };
            let ok = match msg {
                Ok(LiveFrame::Committed(e)) if e.thread_id == self.thread => self.committed(&e).await,
                Ok(LiveFrame::Ephemeral(f)) if f.thread_id == self.thread => self.ephemeral(&f.kind).await,
                Ok(_) => true,
                Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up().await,
                Err(broadcast::error::RecvError::Closed) => {
                    sub = self.facade.engine.subscribe(&self.deployment);
                    self.catch_up().await
                }
            };
            if !ok {
                return;
            }
        }
    }

    async fn committed(&mut self, e: &Event) -> bool {
        if e.sequence.0 <= self.cursor {
            return true;
        }
        if e.sequence.0 > self.cursor + 1 {
            // A gap: read what fell in it from the log first.
            return self.catch_up().await;
        }
        self.cursor = e.sequence.0;
        if matches!(e.kind, EventKind::AgentMessage { .. }) {
            self.previewing = None;
        }
        self.learn_outcome(e).await;
        self.emit(e).await
    }

    /// Sends the frames of one committed event (with the media of a user message).
    async fn emit(&mut self, e: &Event) -> bool {
        let mut out = self.projector.event(e);
        self.facade.with_media(&self.deployment, &mut out).await;
        for f in frames(e.sequence.0, out) {
            if self.tx.send(f).await.is_err() {
                return false;
            }
        }
        true
    }

    async fn ephemeral(&mut self, kind: &EventKind) -> bool {
        let EventKind::Token { delta, message_id: Some(id) } = kind else { return true };
        if !self.deltas.message {
            return true;
        }
        if self.previewing.as_ref() != Some(id) {
            self.previewing = Some(id.clone());
            let start = json!({"type": "event_start", "event": {"type": "agent.message", "id": id.as_str()}});
            if self.tx.send(frame(None, start)).await.is_err() {
                return false;
            }
        }
        let d = json!({"type": "event_delta", "event_id": id.as_str(),
            "delta": {"type": "content_delta", "index": 0, "content": {"type": "text", "text": delta}}});
        self.tx.send(frame(None, d)).await.is_ok()
    }

    /// An outcome defined after the stream opened: what it was defined as, from its goal.
    async fn learn_outcome(&mut self, e: &Event) {
        let EventKind::GoalStatus { goal_id, .. } = &e.kind else { return };
        if self.projector.knows_outcome(goal_id.as_str()) {
            return;
        }
        if let Ok(g) = self.facade.engine.goal(&self.deployment, goal_id).await
            && g.value.thread_id == self.thread
        {
            self.projector.add_outcome(goal_id.to_string(), crate::events::outcome_of(&g.value));
        }
    }

    async fn catch_up(&mut self) -> bool {
        loop {
            let page = match self.facade.engine.thread_events(&self.thread, self.cursor, 500).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "session stream replay failed");
                    return false;
                }
            };
            let n = page.len();
            for e in &page {
                self.cursor = e.sequence.0;
                self.learn_outcome(e).await;
                if !self.emit(e).await {
                    return false;
                }
            }
            if n < 500 {
                return true;
            }
        }
    }
}
