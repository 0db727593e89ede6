//! Trace ids that follow from the journal: a run is one trace whose id is derived from the run
//! id, so a run resumed after a crash continues the same trace; its spans' ids are derived
//! from what they stand for (the run, a model call's event, a tool call's id). An event of a
//! run therefore names its trace and span without storing them, and a UI can link any event
//! to the tracing backend. No I/O.

use sha2::{Digest, Sha256};

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    h.finalize().into()
}

/// The trace id of a run: 16 bytes, never all zero.
pub fn trace_id(run: &str) -> [u8; 16] {
    let d = digest(&["trace", run]);
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    if out == [0; 16] {
        out[15] = 1;
    }
    out
}

/// A span id derived from what the span stands for: 8 bytes, never all zero.
pub fn span_id(parts: &[&str]) -> [u8; 8] {
    let d = digest(parts);
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    if out == [0; 8] {
        out[7] = 1;
    }
    out
}

/// The span of the run itself (the parent of its model and tool spans).
pub fn run_span(run: &str) -> [u8; 8] {
    span_id(&["run", run])
}

/// The span of one model call: its `model_call` event.
pub fn model_span(event: &str) -> [u8; 8] {
    span_id(&["model", event])
}

/// The span of one tool call, from its `tool_call` record to its result.
pub fn tool_span(run: &str, tool_use_id: &str) -> [u8; 8] {
    span_id(&["tool", run, tool_use_id])
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The trace and span an event belongs to, as hex: `None` for events of no run.
pub fn of_event(e: &crate::Event) -> Option<(String, String)> {
    use crate::EventKind;
    let run = e.run_id.as_ref()?.as_str();
    let span = match &e.kind {
        EventKind::ModelCall { .. } => model_span(e.id.as_str()),
        EventKind::ToolCall { tool_use_id, .. } | EventKind::ToolResult { tool_use_id, .. } => {
            tool_span(run, tool_use_id)
        }
        _ => run_span(run),
    };
    Some((hex(&trace_id(run)), hex(&span)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(trace_id("run_a"), trace_id("run_a"));
        assert_ne!(trace_id("run_a"), trace_id("run_b"));
        assert_ne!(run_span("run_a"), model_span("run_a"));
        assert_ne!(tool_span("run_a", "t1"), tool_span("run_b", "t1"));
        assert_eq!(hex(&trace_id("run_a")).len(), 32);
        assert_eq!(hex(&run_span("run_a")).len(), 16);
    }
}
