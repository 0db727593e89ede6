//! SSE streams of the log with exact resumption: subscribe to the bus first, replay the
//! committed log after the client's cursor, then forward live frames, skipping any already
//! sent. A subscriber that lags re-reads the log from its cursor. Result: no gaps, no
//! duplicates, whatever the timing.

use crate::AppState;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use herm_store::EventFilter;
use herm_types::event::LiveFrame;
use herm_types::*;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

const PAGE: usize = 500;

/// Which log a stream follows; its cursor is the thread `sequence` or the
/// `deployment_sequence`.
#[derive(Clone)]
pub enum Scope {
    Thread(ThreadId),
    Deployment(EventFilter),
}

impl Scope {
    fn position(&self, e: &Event) -> i64 {
        match self {
            Scope::Thread(_) => e.sequence.0,
            Scope::Deployment(_) => e.deployment_sequence.0,
        }
    }

    fn matches(&self, thread: &ThreadId, run: Option<&RunId>) -> bool {
        match self {
            Scope::Thread(t) => t == thread,
            Scope::Deployment(f) => {
                f.thread_id.as_ref().is_none_or(|t| t == thread) && f.run_id.as_ref().is_none_or(|r| Some(r) == run)
            }
        }
    }
}

pub fn stream(
    state: AppState,
    dep: DeploymentId,
    scope: Scope,
    after: i64,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let (tx, rx) = mpsc::channel::<SseEvent>(256);
    tokio::spawn(pump(state, dep, scope, after, tx));
    let s = tokio_stream::wrappers::ReceiverStream::new(rx);
    let s = futures::StreamExt::map(s, Ok);
    Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn frame(scope: &Scope, e: &Event) -> SseEvent {
    SseEvent::default()
        .event(e.kind.type_name())
        .id(scope.position(e).to_string())
        .json_data(e)
        .unwrap_or_else(|_| SseEvent::default().comment("unserializable event"))
}

/// Replays from `cursor` until caught up; returns the new cursor, or None if the client left.
async fn replay(
    state: &AppState,
    dep: &DeploymentId,
    scope: &Scope,
    mut cursor: i64,
    tx: &mpsc::Sender<SseEvent>,
) -> Option<i64> {
    let engine = &state.engine;
    loop {
        let page = match scope {
            Scope::Thread(t) => engine.thread_events(t, cursor, PAGE).await,
            Scope::Deployment(f) => engine.deployment_events(dep, cursor, PAGE, f).await,
        };
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "event replay failed");
                return None;
            }
        };
        let n = page.len();
        for e in page {
            cursor = scope.position(&e);
            tx.send(frame(scope, &e)).await.ok()?;
        }
        if n < PAGE {
            return Some(cursor);
        }
    }
}

/// Counts an open stream in `herm_sse_clients` while it lives.
struct Open;

impl Open {
    fn new() -> Self {
        metrics::gauge!("herm_sse_clients").increment(1.0);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!("herm_sse_clients").decrement(1.0);
    }
}

async fn pump(state: AppState, dep: DeploymentId, scope: Scope, after: i64, tx: mpsc::Sender<SseEvent>) {
    let _open = Open::new();
    let mut sub = state.engine.subscribe(&dep);
    let Some(mut cursor) = replay(&state, &dep, &scope, after, &tx).await else { return };
    loop {
        let msg = tokio::select! {
            _ = tx.closed() => return,
            _ = state.shutdown.cancelled() => return,
            m = sub.recv() => m,
        };
        match msg {
            Ok(LiveFrame::Committed(e)) => {
                if !scope.matches(&e.thread_id, e.run_id.as_ref()) || scope.position(&e) <= cursor {
                    continue;
                }
                cursor = scope.position(&e);
                if tx.send(frame(&scope, &e)).await.is_err() {
                    return;
                }
            }
            Ok(LiveFrame::Ephemeral(f)) => {
                if !scope.matches(&f.thread_id, f.run_id.as_ref()) {
                    continue;
                }
                let ev = SseEvent::default().event(f.kind.type_name()).json_data(&*f);
                if let Ok(ev) = ev
                    && tx.send(ev).await.is_err()
                {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                // Frames were dropped for us: the log has them all.
                match replay(&state, &dep, &scope, cursor, &tx).await {
                    Some(c) => cursor = c,
                    None => return,
                }
            }
            Err(broadcast::error::RecvError::Closed) => {
                // The channel was dropped (nobody listened for a moment); subscribe again and
                // catch up from the log.
                sub = state.engine.subscribe(&dep);
                match replay(&state, &dep, &scope, cursor, &tx).await {
                    Some(c) => cursor = c,
                    None => return,
                }
            }
        }
    }
}

/// The resume cursor from `Last-Event-ID` or `?after=`.
pub fn cursor(headers: &axum::http::HeaderMap, after: Option<&str>) -> Result<i64, crate::error::ApiError> {
    let raw = headers.get("last-event-id").and_then(|v| v.to_str().ok()).or(after);
    match raw {
        None | Some("") => Ok(0),
        Some(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| crate::error::ApiError::validation("the event cursor must be a non-negative integer")),
    }
}
