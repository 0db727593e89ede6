//! A small SSE client for tests: frames with their `event`, `id` and JSON `data`.

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use serde_json::Value;
use std::pin::Pin;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Frame {
    pub event: String,
    /// The frame's own `id:` line, if it had one (ephemeral frames have none).
    pub id: Option<String>,
    pub data: Value,
    /// The stream's last event id after this frame (what a client resumes from).
    pub last_event_id: String,
}

impl Frame {
    /// Committed events carry a `sequence`; live-only fragments do not.
    pub fn is_committed(&self) -> bool {
        self.data.get("sequence").is_some()
    }
}

type Events = Pin<Box<dyn Stream<Item = Result<eventsource_stream::Event, String>> + Send>>;

pub struct SseReader {
    events: Events,
}

impl SseReader {
    pub async fn connect(url: &str, key: &str, last_event_id: Option<&str>) -> Self {
        let mut rb = reqwest::Client::new().get(url).bearer_auth(key);
        if let Some(id) = last_event_id {
            rb = rb.header("last-event-id", id);
        }
        let resp = rb.send().await.expect("sse connect");
        assert_eq!(resp.status(), 200, "sse status for {url}");
        let events = resp.bytes_stream().eventsource().map(|r| r.map_err(|e| e.to_string()));
        Self { events: Box::pin(events) }
    }

    /// The next frame, or None on timeout or end of stream.
    pub async fn next(&mut self, timeout: Duration) -> Option<Frame> {
        let ev = tokio::time::timeout(timeout, self.events.next()).await.ok()??.ok()?;
        let data = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
        // The SSE "last event id" carries over frames without an `id:` line, so only committed
        // frames (which always carry one) report it.
        let id = data.get("sequence").is_some().then(|| ev.id.clone());
        Some(Frame { event: ev.event, id, data, last_event_id: ev.id })
    }

    /// Reads until `stop` returns true for a frame (included) or the timeout elapses.
    pub async fn until(&mut self, timeout: Duration, mut stop: impl FnMut(&Frame) -> bool) -> Vec<Frame> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return out;
            }
            match self.next(left).await {
                Some(f) => {
                    let done = stop(&f);
                    out.push(f);
                    if done {
                        return out;
                    }
                }
                None => return out,
            }
        }
    }
}
