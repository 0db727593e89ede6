//! Live-only frames (token and tool-output deltas) across nodes.
//!
//! A run streams its model's tokens on the node that executes it; an SSE reader connected to
//! another node gets them through PostgreSQL: this node's bus relay queues each ephemeral
//! frame, a sender takes everything queued (what arrived during its last send: a fast stream
//! is batched, a slow one goes out at once), joins consecutive deltas of the same message or
//! output stream, and sends the batch as notifications on [`CHANNEL`] in one statement; the
//! listening connection of every other node publishes them on its own bus. Each payload carries this node's origin (its own frames are not published twice) and
//! a counter (PostgreSQL drops a notification identical to another of the same transaction).
//!
//! Best effort, like the frames themselves: a full queue or a failed send drops frames (the
//! committed events that follow them are what counts, and those are delivered in order by
//! [`super::fanout`]); a frame may reach another node after the event it previews.

use super::PostgresStore;
use herm_types::DeploymentId;
use herm_types::event::{EphemeralFrame, EventKind, LiveFrame};
use std::sync::Arc;

/// The notification channel of live frames.
pub(super) const CHANNEL: &str = "herm_live";
/// Frames waiting to be sent at most; past that, frames are dropped.
const QUEUE: usize = 8192;
/// Frames per send at most.
const BATCH: usize = 1024;
/// PostgreSQL refuses a payload of 8000 bytes or more; room is left for the prefix.
const MAX_PAYLOAD: usize = 7000;

/// A random origin for this node's frames.
pub(super) fn origin() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Sets the bus relay of `store` and starts its sender, its frames marked `origin`.
pub(super) fn start(store: &PostgresStore, origin: String) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<EphemeralFrame>>(QUEUE);
    store.bus().set_relay(Arc::new(move |_: &DeploymentId, frame: &LiveFrame| {
        if let LiveFrame::Ephemeral(f) = frame {
            // A full queue drops the frame (see the module's note).
            let _ = tx.try_send(f.clone());
        }
    }));
    let weak = Arc::downgrade(&store.inner);
    let me = origin;
    tokio::spawn(async move {
        let mut counter = 0u64;
        while let Some(first) = rx.recv().await {
            let mut frames = vec![first];
            while frames.len() < BATCH {
                match rx.try_recv() {
                    Ok(f) => frames.push(f),
                    Err(_) => break,
                }
            }
            let Some(inner) = weak.upgrade() else { return };
            let store = PostgresStore { inner };
            let payloads: Vec<String> = coalesce(&frames)
                .iter()
                .flat_map(split)
                .filter_map(|f| serde_json::to_string(&f).ok())
                .map(|json| {
                    counter += 1;
                    format!("{me} {counter} {json}")
                })
                .collect();
            if let Err(e) = send(&store, &payloads).await {
                tracing::debug!(error = %e, dropped = payloads.len(), "live frames were not relayed");
            }
        }
    });
}

async fn send(store: &PostgresStore, payloads: &[String]) -> crate::Result<()> {
    let c = store.client().await?;
    let st = c.prepare_cached(&format!("SELECT pg_notify('{CHANNEL}', p) FROM unnest($1::text[]) AS p")).await?;
    c.execute(&st, &[&payloads]).await?;
    Ok(())
}

/// A notification of another node's frame: the frame, or `None` for this node's own frames
/// and for anything that does not parse.
pub(super) fn received(origin: &str, payload: &str) -> Option<EphemeralFrame> {
    let mut parts = payload.splitn(3, ' ');
    let (from, _counter, json) = (parts.next()?, parts.next()?, parts.next()?);
    if from == origin {
        return None;
    }
    let frame: EphemeralFrame = serde_json::from_str(json).ok()?;
    frame.kind.is_ephemeral().then_some(frame)
}

/// Consecutive frames of the same message (tokens) or output stream, joined.
fn coalesce(frames: &[Arc<EphemeralFrame>]) -> Vec<EphemeralFrame> {
    let mut out: Vec<EphemeralFrame> = Vec::new();
    for f in frames {
        if let Some(last) = out.last_mut()
            && last.deployment_id == f.deployment_id
            && last.thread_id == f.thread_id
            && last.run_id == f.run_id
        {
            match (&mut last.kind, &f.kind) {
                (EventKind::Token { delta, message_id }, EventKind::Token { delta: more, message_id: m })
                    if message_id == m =>
                {
                    delta.push_str(more);
                    continue;
                }
                (
                    EventKind::ToolOutput { tool_use_id, stream, delta },
                    EventKind::ToolOutput { tool_use_id: t, stream: s, delta: more },
                ) if tool_use_id == t && stream == s => {
                    delta.push_str(more);
                    continue;
                }
                _ => {}
            }
        }
        out.push(EphemeralFrame::clone(f));
    }
    out
}

/// A frame whose delta is too long for one notification, cut into several at character
/// boundaries (JSON escaping can grow text sixfold, so the cut is by a sixth of the room).
fn split(f: &EphemeralFrame) -> Vec<EphemeralFrame> {
    let delta = match &f.kind {
        EventKind::Token { delta, .. } | EventKind::ToolOutput { delta, .. } => delta,
        _ => return vec![f.clone()],
    };
    // Never below one character's four bytes, so every cut moves on.
    let room = MAX_PAYLOAD / 6;
    let mut out = Vec::new();
    let mut rest = delta.as_str();
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(rest.floor_char_boundary(room));
        out.push(with_delta(f, piece));
        rest = tail;
    }
    out
}

/// `f` carrying `delta` instead of its own (the rest copied; its own delta is not).
fn with_delta(f: &EphemeralFrame, delta: &str) -> EphemeralFrame {
    let kind = match &f.kind {
        EventKind::Token { message_id, .. } => EventKind::Token { delta: delta.into(), message_id: message_id.clone() },
        EventKind::ToolOutput { tool_use_id, stream, .. } => {
            EventKind::ToolOutput { tool_use_id: tool_use_id.clone(), stream: *stream, delta: delta.into() }
        }
        other => other.clone(),
    };
    EphemeralFrame {
        deployment_id: f.deployment_id.clone(),
        thread_id: f.thread_id.clone(),
        run_id: f.run_id.clone(),
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herm_types::event::OutputStream;
    use herm_types::{EventId, RunId, ThreadId};

    fn frame(dep: &DeploymentId, thread: &ThreadId, kind: EventKind) -> Arc<EphemeralFrame> {
        Arc::new(EphemeralFrame {
            deployment_id: dep.clone(),
            thread_id: thread.clone(),
            run_id: Some(RunId::new()),
            kind,
        })
    }

    fn token(delta: &str, id: &EventId) -> EventKind {
        EventKind::Token { delta: delta.into(), message_id: Some(id.clone()) }
    }

    #[test]
    fn consecutive_deltas_of_one_message_or_stream_are_joined() {
        let (dep, thread, msg, other) = (DeploymentId::new(), ThreadId::new(), EventId::new(), EventId::new());
        let a = frame(&dep, &thread, token("Hel", &msg));
        let run = a.run_id.clone();
        let same_run = |k: EventKind| {
            Arc::new(EphemeralFrame {
                deployment_id: dep.clone(),
                thread_id: thread.clone(),
                run_id: run.clone(),
                kind: k,
            })
        };
        let out =
            |s: &str| EventKind::ToolOutput { tool_use_id: "t1".into(), stream: OutputStream::Stdout, delta: s.into() };
        let frames = vec![
            a,
            same_run(token("lo", &msg)),
            same_run(token("!", &other)),
            same_run(out("a")),
            same_run(out("b")),
            frame(&dep, &thread, token("x", &msg)),
        ];
        let joined = coalesce(&frames);
        let kinds: Vec<&EventKind> = joined.iter().map(|f| &f.kind).collect();
        assert_eq!(kinds, vec![&token("Hello", &msg), &token("!", &other), &out("ab"), &token("x", &msg)]);
    }

    #[test]
    fn a_long_delta_is_cut_into_payloads_postgres_accepts() {
        let (dep, thread, msg) = (DeploymentId::new(), ThreadId::new(), EventId::new());
        // Quotes and control characters grow under JSON escaping; "é" is two bytes.
        let text = "\"\u{1}é".repeat(5000);
        let f = frame(&dep, &thread, token(&text, &msg));
        let parts = split(&f);
        assert!(parts.len() > 1);
        let mut joined = String::new();
        for p in &parts {
            let json = serde_json::to_string(p).unwrap();
            assert!(json.len() + 40 < 8000, "{}", json.len());
            let EventKind::Token { delta, .. } = &p.kind else { panic!() };
            joined.push_str(delta);
        }
        assert_eq!(joined, text);
    }

    #[test]
    fn a_node_ignores_its_own_frames_and_garbage() {
        let (dep, thread, msg) = (DeploymentId::new(), ThreadId::new(), EventId::new());
        let json = serde_json::to_string(&*frame(&dep, &thread, token("hi", &msg))).unwrap();
        let got = received("b", &format!("a 7 {json}")).unwrap();
        assert_eq!((got.deployment_id, got.kind), (dep, token("hi", &msg)));
        assert!(received("a", &format!("a 7 {json}")).is_none());
        for bad in ["", "a", "a 1", "a 1 {}", "a 1 not json"] {
            assert!(received("b", bad).is_none(), "{bad}");
        }
        // A committed kind is never taken as a live frame.
        let committed = json.replace("\"type\":\"token\"", "\"type\":\"steer\"").replace("\"delta\"", "\"message\"");
        assert!(received("b", &format!("a 1 {committed}")).is_none());
    }
}
