//! The run state machine: a pure fold over a thread's log that says what the active run must
//! do next. No I/O, no clock: the executor ([`crate::worker`]) performs the returned action
//! and appends its result, and the fold is run again. Resume after a crash is the same code
//! path as the next step of a live run.

use herm_types::event::{RequestedToolCall, Role};
use herm_types::*;
use std::collections::{HashMap, HashSet};

/// What the active run must do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// The run is queued: mark it running.
    Start,
    /// Make a model call.
    CallModel,
    /// Execute a tool call the model requested; nothing about it is in the log yet.
    RunTool(RequestedToolCall),
    /// A tool call was logged as started but has no result: its worker died mid-call.
    InFlight(RequestedToolCall),
    /// The agent ended its turn and no input arrived since.
    Complete,
    /// Stop the run with an error.
    Fail { code: &'static str, message: String },
    /// The run needs nothing now (terminal, or waiting on a person).
    Idle,
}

/// Limits that bound one run.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunLimits {
    pub max_steps: Option<u32>,
}

/// Folds the log and decides the next action of `run`.
pub fn decide(log: &[Event], run: &RunId, limits: RunLimits) -> Next {
    let mut status = RunStatus::Queued;
    let mut steps = 0u32;
    // The last model call of this run: the tool calls it asked for.
    let mut requested: Option<Vec<RequestedToolCall>> = None;
    let mut started: HashSet<&str> = HashSet::new();
    let mut finished: HashSet<&str> = HashSet::new();
    // Sequence of the last input the model has seen, and of the newest input of the run.
    let (mut seen, mut newest_input) = (0i64, 0i64);
    for e in log.iter().filter(|e| e.run_id.as_ref() == Some(run)) {
        match &e.kind {
            EventKind::RunStatus { status: s, .. } => status = *s,
            EventKind::ModelCall { tool_calls, context_sequence, .. } => {
                steps += 1;
                requested = Some(tool_calls.clone());
                started.clear();
                finished.clear();
                seen = context_sequence.unwrap_or(e.sequence.0);
            }
            EventKind::ToolCall { tool_use_id, .. } => {
                started.insert(tool_use_id);
            }
            EventKind::ToolResult { tool_use_id, .. } => {
                finished.insert(tool_use_id);
            }
            EventKind::Message { role: Role::User, .. } | EventKind::Steer { .. } => newest_input = e.sequence.0,
            _ => {}
        }
    }
    match status {
        RunStatus::Queued => return Next::Start,
        RunStatus::Running => {}
        _ => return Next::Idle,
    }
    let call_model = |steps: u32| match limits.max_steps {
        Some(max) if steps >= max => {
            Next::Fail { code: "max_steps_exceeded", message: format!("the run reached its limit of {max} steps") }
        }
        _ => Next::CallModel,
    };
    let Some(calls) = requested else { return call_model(steps) };
    for c in &calls {
        if finished.contains(c.tool_use_id.as_str()) {
            continue;
        }
        return if started.contains(c.tool_use_id.as_str()) {
            Next::InFlight(c.clone())
        } else {
            Next::RunTool(c.clone())
        };
    }
    if !calls.is_empty() || newest_input > seen { call_model(steps) } else { Next::Complete }
}

/// Sums the usage of a run's model calls.
pub fn run_usage(log: &[Event], run: &RunId) -> Usage {
    let mut u = Usage::default();
    for e in log.iter().filter(|e| e.run_id.as_ref() == Some(run)) {
        if let EventKind::ModelCall { input_tokens, output_tokens, cost_usd, .. } = &e.kind {
            u.add(&Usage { input_tokens: *input_tokens, output_tokens: *output_tokens, cost_usd: *cost_usd });
        }
    }
    u
}

/// For each run, the sequence at which it started running (queued messages join the
/// conversation there, not where they were written).
pub(crate) fn run_starts(log: &[Event]) -> HashMap<&RunId, i64> {
    let mut m = HashMap::new();
    for e in log {
        if let (Some(r), EventKind::RunStatus { status: RunStatus::Running, .. }) = (&e.run_id, &e.kind) {
            m.entry(r).or_insert(e.sequence.0);
        }
    }
    m
}

/// The thread's active run: the earliest run (in log order) whose status is not terminal.
pub fn active_run(log: &[Event]) -> Option<RunId> {
    let mut order: Vec<&RunId> = Vec::new();
    let mut status: HashMap<&RunId, RunStatus> = HashMap::new();
    for e in log {
        if let (Some(r), EventKind::RunStatus { status: s, .. }) = (&e.run_id, &e.kind) {
            if !status.contains_key(r) {
                order.push(r);
            }
            status.insert(r, *s);
        }
    }
    order.into_iter().find(|r| status.get(r).is_some_and(|s| !s.is_terminal())).cloned()
}

#[cfg(test)]
mod tests;
