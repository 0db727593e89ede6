//! The run state machine: a pure fold over a thread's log that says what the active run must
//! do next. No I/O, no clock: the executor ([`crate::worker`]) performs the returned action
//! and appends its result, and the fold is run again. Resume after a crash is the same code
//! path as the next step of a live run.

use herm_types::event::{Confirmation, RequestedToolCall, Role};
use herm_types::*;
use std::collections::{HashMap, HashSet};

/// Who must act before a tool call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Runs without asking.
    Free,
    /// A person must allow, deny or edit it first (`always_ask`).
    Approval,
    /// It is a question for a person (`ask_user`): the answer is its result.
    Question,
}

/// A tool call that needs a person.
#[derive(Clone, Debug, PartialEq)]
pub struct Ask {
    pub call: RequestedToolCall,
    pub gate: Gate,
}

/// What the active run must do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// The run is queued: mark it running.
    Start,
    /// Make a model call.
    CallModel,
    /// Execute a tool call (with edited arguments if a person edited them); nothing about
    /// this execution is in the log yet.
    RunTool(RequestedToolCall),
    /// A tool call was logged as started but has no result: its worker died mid-call.
    InFlight(RequestedToolCall),
    /// These calls need a person: write their steering requests and wait. Empty when the
    /// requests are written but the run is not yet marked as waiting.
    AskPerson(Vec<Ask>),
    /// A person denied the call: its result says so.
    Denied { call: RequestedToolCall, message: Option<String> },
    /// A person answered the agent's question: the answer is the result.
    Answered { call: RequestedToolCall, answer: String },
    /// The agent ended its turn and no input arrived since.
    Complete,
    /// Stop the run with an error.
    Fail { code: &'static str, message: String },
    /// A budget does not allow the next model call: the run ends `insufficient_credits`.
    OverBudget(BudgetStop),
    /// The run needs nothing now (terminal, or waiting on a person).
    Idle,
}

/// Limits that bound one run.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunLimits {
    pub max_steps: Option<u32>,
    /// The most this run may cost (USD); no model call starts that would pass it.
    pub max_cost_usd: Option<f64>,
    /// The most the run's thread may cost, all its runs together (USD).
    pub thread_max_usd: Option<f64>,
    /// The deployment's daily budget and what it has spent today (this run included).
    pub daily: Option<Budget>,
    /// The customer's daily budget across its deployments, and what they spent today.
    pub customer_daily: Option<Budget>,
}

/// Why a budget refused the next model call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetStop {
    pub scope: herm_types::event::BudgetScope,
    pub limit_usd: f64,
    pub spent_usd: f64,
    /// What the next call is expected to cost: the thread's previous model call (the
    /// conversation only grows, so the next request is at least as long).
    pub next_call_usd: f64,
}

impl BudgetStop {
    /// The run's error message.
    pub fn message(&self) -> String {
        let what = match self.scope {
            herm_types::event::BudgetScope::Run => "the run's cost limit",
            herm_types::event::BudgetScope::Thread => "the conversation's cost limit",
            herm_types::event::BudgetScope::Deployment => "the deployment's daily budget",
            herm_types::event::BudgetScope::Customer => "the customer's daily budget",
        };
        format!(
            "the next model call would pass {what} of {} USD (spent {:.6}, next call about {:.6})",
            self.limit_usd, self.spent_usd, self.next_call_usd
        )
    }
}

/// A spending limit and what has been spent against it, in USD.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    pub limit_usd: f64,
    pub spent_usd: f64,
}

/// A person's response as the fold sees it.
struct Response<'a> {
    result: Option<Confirmation>,
    answer: Option<&'a str>,
    message: Option<&'a str>,
    input: Option<&'a serde_json::Value>,
    seq: i64,
}

/// The first budget the next call (expected to cost `next`) would pass, given what the run
/// and its thread have cost so far. A call whose expected cost reaches a limit does not start.
fn over_budget(limits: RunLimits, run_cost: f64, thread_cost: f64, next: f64) -> Option<BudgetStop> {
    use herm_types::event::BudgetScope;
    let run = limits.max_cost_usd.map(|limit_usd| (BudgetScope::Run, Budget { limit_usd, spent_usd: run_cost }));
    let thread =
        limits.thread_max_usd.map(|limit_usd| (BudgetScope::Thread, Budget { limit_usd, spent_usd: thread_cost }));
    let daily = limits.daily.map(|b| (BudgetScope::Deployment, b));
    let customer = limits.customer_daily.map(|b| (BudgetScope::Customer, b));
    [run, thread, daily, customer]
        .into_iter()
        .flatten()
        .find(|(_, b)| b.spent_usd + next >= b.limit_usd)
        .map(|(scope, b)| BudgetStop { scope, limit_usd: b.limit_usd, spent_usd: b.spent_usd, next_call_usd: next })
}

/// Folds the log and decides the next action of `run`. `gate` says which tools need a
/// person (from the deployment's policies at the time of the call).
pub fn decide(log: &[Event], run: &RunId, limits: RunLimits, gate: &dyn Fn(&str) -> Gate) -> Next {
    let mut status = RunStatus::Queued;
    let mut steps = 0u32;
    let mut cost = 0f64;
    // What the thread's latest model call cost (any run): the next one costs at least that;
    // and what all its calls cost.
    let (mut last_call, mut thread_cost) = (0f64, 0f64);
    for e in log {
        match &e.kind {
            EventKind::ModelCall { cost_usd, .. } => {
                last_call = *cost_usd;
                thread_cost += cost_usd;
            }
            EventKind::Compaction { cost_usd, .. } => thread_cost += cost_usd,
            _ => {}
        }
    }
    // The last model call of this run: the tool calls it asked for.
    let mut requested: Option<Vec<RequestedToolCall>> = None;
    // Per tool call of the current turn: last start, result, latest steering request.
    let mut started: HashMap<&str, i64> = HashMap::new();
    let mut finished: HashSet<&str> = HashSet::new();
    let mut requests: HashMap<&str, &RequestId> = HashMap::new();
    let mut responses: HashMap<&RequestId, Response> = HashMap::new();
    // Sequence of the last input the model has seen, and of the newest input of the run.
    let (mut seen, mut newest_input) = (0i64, 0i64);
    for e in log.iter().filter(|e| e.run_id.as_ref() == Some(run)) {
        match &e.kind {
            EventKind::RunStatus { status: s, .. } => status = *s,
            EventKind::ModelCall { tool_calls, context_sequence, cost_usd, .. } => {
                steps += 1;
                cost += cost_usd;
                requested = Some(tool_calls.clone());
                started.clear();
                finished.clear();
                requests.clear();
                seen = context_sequence.unwrap_or(e.sequence.0);
            }
            EventKind::Compaction { cost_usd, .. } => cost += cost_usd,
            EventKind::ToolCall { tool_use_id, .. } => {
                started.insert(tool_use_id, e.sequence.0);
            }
            EventKind::ToolResult { tool_use_id, .. } => {
                finished.insert(tool_use_id);
            }
            EventKind::SteeringRequest { request_id, tool_use_id: Some(t), .. } => {
                requests.insert(t, request_id);
            }
            EventKind::SteeringResponse { request_id, result, answer, message, input } => {
                let r = Response {
                    result: *result,
                    answer: answer.as_deref(),
                    message: message.as_deref(),
                    input: input.as_ref(),
                    seq: e.sequence.0,
                };
                responses.insert(request_id, r);
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
    let call_model = |steps: u32| match limits {
        RunLimits { max_steps: Some(max), .. } if steps >= max => {
            Next::Fail { code: "max_steps_exceeded", message: format!("the run reached its limit of {max} steps") }
        }
        _ => over_budget(limits, cost, thread_cost, last_call).map_or(Next::CallModel, Next::OverBudget),
    };
    let Some(calls) = requested else { return call_model(steps) };
    let mut asks: Vec<Ask> = Vec::new();
    let mut unanswered = false;
    for c in &calls {
        let id = c.tool_use_id.as_str();
        if finished.contains(id) {
            continue;
        }
        let start = started.get(id).copied();
        let request = requests.get(id).copied();
        // A response counts only if it came after the call last started: a start consumes
        // an approval, so a call interrupted after its approval needs approval again.
        let resp = request.and_then(|r| responses.get(r)).filter(|r| start.is_none_or(|s| r.seq > s));
        let g = gate(&c.tool);
        let needs_person = match (g, &resp) {
            (Gate::Free, _) | (_, Some(_)) => false,
            // Started and unanswered: the in-flight rules decide (repeat, or unknown outcome).
            (Gate::Approval, None) => start.is_none(),
            (Gate::Question, None) => true,
        };
        if needs_person {
            // Asked already (the request stands, unanswered) or to be asked now.
            match request.filter(|_| start.is_none()) {
                Some(_) => unanswered = true,
                None => asks.push(Ask { call: c.clone(), gate: g }),
            }
            continue;
        }
        if !asks.is_empty() || unanswered {
            // Later calls wait until every person-gated call before them is settled.
            continue;
        }
        return match (g, resp) {
            (Gate::Free, _) if start.is_some() => Next::InFlight(c.clone()),
            (Gate::Free, _) => Next::RunTool(c.clone()),
            (Gate::Question, Some(r)) => {
                Next::Answered { call: c.clone(), answer: r.answer.unwrap_or_default().into() }
            }
            (Gate::Approval, Some(r)) if r.result == Some(Confirmation::Deny) => {
                Next::Denied { call: c.clone(), message: r.message.map(str::to_owned) }
            }
            (Gate::Approval, Some(r)) => {
                let mut edited = c.clone();
                if let Some(input) = r.input {
                    edited.arguments = input.clone();
                }
                Next::RunTool(edited)
            }
            (_, None) => Next::InFlight(c.clone()),
        };
    }
    if !asks.is_empty() || unanswered {
        return Next::AskPerson(asks);
    }
    if !calls.is_empty() || newest_input > seen { call_model(steps) } else { Next::Complete }
}

/// Sums the usage of a run's model calls.
pub fn run_usage(log: &[Event], run: &RunId) -> Usage {
    let mut u = Usage::default();
    for e in log.iter().filter(|e| e.run_id.as_ref() == Some(run)) {
        match &e.kind {
            EventKind::ModelCall { input_tokens, output_tokens, cost_usd, .. }
            | EventKind::Compaction { input_tokens, output_tokens, cost_usd, .. } => {
                u.add(&Usage { input_tokens: *input_tokens, output_tokens: *output_tokens, cost_usd: *cost_usd })
            }
            _ => {}
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

pub mod records;

#[cfg(test)]
mod tests;

/// What started `run`: the kind and trigger its first `run_status` carries (a user's run for
/// logs written before runs had kinds). Every later `run_status` of the run repeats them.
pub fn run_origin(log: &[Event], run: &RunId) -> (RunKind, Option<RunTrigger>) {
    log.iter()
        .filter(|e| e.run_id.as_ref() == Some(run))
        .find_map(|e| match &e.kind {
            EventKind::RunStatus { kind, trigger, .. } => Some((*kind, trigger.clone())),
            _ => None,
        })
        .unwrap_or_default()
}
