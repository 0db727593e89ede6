//! Stopping a run at the user's request with an honest record: the interrupt, then for each
//! tool call of the current turn without a result, whether it was running (outcome unknown)
//! or never started, then the run's end. The worker, if any, is cancelled after the record is
//! committed; its own late writes are refused because the run is no longer active.

use crate::conditional::Reads;
use crate::machine::{run_origin, run_usage};
use crate::{Engine, Error, Result};
use herm_store::{Append, Condition};
use herm_types::event::{RequestedToolCall, ToolOutcome};
use herm_types::*;
use std::collections::HashSet;

const WAS_RUNNING: &str = "Interrupted by the user while this call was running: its outcome is unknown.";
const NOT_RUN: &str = "Not run: the user interrupted the run before this call started.";

/// The events that end `run` as interrupted.
pub fn interruption(log: &[Event], run: &RunId, message: Option<String>) -> Vec<NewEvent> {
    let mut turn: Vec<RequestedToolCall> = Vec::new();
    let (mut started, mut finished) = (HashSet::new(), HashSet::new());
    for e in log.iter().filter(|e| e.run_id.as_ref() == Some(run)) {
        match &e.kind {
            EventKind::ModelCall { tool_calls, .. } => {
                turn = tool_calls.clone();
                started.clear();
                finished.clear();
            }
            EventKind::ToolCall { tool_use_id, .. } => {
                started.insert(tool_use_id.clone());
            }
            EventKind::ToolResult { tool_use_id, .. } => {
                finished.insert(tool_use_id.clone());
            }
            _ => {}
        }
    }
    let ev = |kind| NewEvent::new(Some(run.clone()), kind);
    let mut out = vec![ev(EventKind::Interrupt { message })];
    for c in turn.into_iter().filter(|c| !finished.contains(&c.tool_use_id)) {
        let running = started.contains(&c.tool_use_id);
        out.push(ev(EventKind::ToolResult {
            tool_use_id: c.tool_use_id,
            tool: c.tool,
            result: (if running { WAS_RUNNING } else { NOT_RUN }).into(),
            is_error: true,
            duration_ms: 0,
            attachments: Vec::new(),
            outcome: if running { ToolOutcome::InterruptedUnknown } else { ToolOutcome::Error },
        }));
    }
    let (kind, trigger) = run_origin(log, run);
    out.push(ev(EventKind::RunStatus {
        kind,
        trigger,
        status: RunStatus::Interrupted,
        error: None,
        usage: Some(run_usage(log, run)),
    }));
    out
}

impl Engine {
    /// Interrupts the thread's active run; queued runs start after it.
    pub async fn interrupt(&self, thread: &ThreadId, message: Option<String>) -> Result<RunId> {
        let run = self
            .append_planned(thread, Reads::ActiveRunAndLog, |seen| {
                let Some(active) = &seen.active else { return Err(Error::NoActiveRun) };
                let mut a = Append::new(thread.clone(), interruption(&seen.log, &active.id, message.clone()));
                a.conditions = vec![
                    Condition::ActiveRunIs(Some(active.id.clone())),
                    Condition::LastSequenceIs(seen.last_sequence()),
                ];
                Ok((a, active.id.clone()))
            })
            .await?;
        self.cancel_worker(thread);
        self.wake(thread.clone());
        Ok(run)
    }
}
