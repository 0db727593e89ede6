//! A herm thread's log as CMA session events. A fold: each herm event becomes zero or more
//! CMA events, in log order, with ids that are herm's event ids (plus a suffix for the few
//! CMA events herm has no record of, like a model request's start), so the list and the
//! stream, which both run this fold, carry the same ids in the same order. Pure.
//!
//! The map: a user message → `user.message`; a run running → `session.status_running`; a
//! gated tool call's steering request → `agent.tool_use` (or `agent.mcp_tool_use`) with
//! `evaluated_permission: ask`, and the run waiting → `session.status_idle` with
//! `requires_action` naming those events; an `ask_user` question → `agent.custom_tool_use`
//! answered by `user.custom_tool_result`; a free tool call → `agent.tool_use` with `allow`
//! (a gated call's later write-ahead record shows nothing: its use was shown when it was
//! asked); a response → `user.tool_confirmation`; a result → `agent.tool_result`; a model
//! call → `span.model_request_start`/`_end`; a compaction →
//! `agent.thread_context_compacted`; a run's end → `session.status_idle` (`end_turn`,
//! `retries_exhausted` after a `session.error`, or `budget_reached`). Outcomes are herm goals
//! on the session's thread: the goal's start → the `user.define_outcome` echo, each judge's
//! verdict → `span.outcome_evaluation_start`/`_end` (`satisfied`, `needs_revision`), the goal
//! running out → `max_iterations_reached` (`failed`, `interrupted` when it fails or is
//! cancelled); the message that starts a goal's run is herm's, not the user's: not shown.
//! A user message is held until the next event says whose run it starts.

use crate::tools::{Shown, shown};
use crate::wire::rfc3339;
use herm_types::event::{Confirmation, RequestKind, Role};
use herm_types::proactive::{GoalStatus, Verdict};
use herm_types::*;
use serde_json::{Value, json};
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq)]
enum UseKind {
    Builtin,
    Mcp,
    Question,
}

#[derive(Clone, Debug)]
struct Use {
    event_id: String,
    kind: UseKind,
}

/// Tokens and cost so far (a session's `usage`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

/// What an outcome was defined as (its herm goal's objective, criteria and runs).
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub description: String,
    pub rubric: String,
    pub max_iterations: u32,
}

/// The fold's state: which CMA event showed each tool use, which wait for a person, whether
/// the current model request's start was shown, the outcomes defined on the thread.
#[derive(Clone, Debug, Default)]
pub struct Projector {
    outcomes: HashMap<String, Outcome>,
    /// Evaluations so far per outcome, and the latest (result, explanation); outcomes whose
    /// start was shown.
    iterations: HashMap<String, u32>,
    latest: HashMap<String, (String, String)>,
    shown_outcomes: std::collections::HashSet<String>,
    held: Option<Event>,
    uses: HashMap<String, Use>,
    requests: HashMap<String, String>,
    pending: Vec<String>,
    open_request: bool,
    start_id: Option<String>,
    usage: Usage,
}

fn base(id: &str, ty: &str, e: &Event) -> Value {
    json!({"id": id, "type": ty, "processed_at": rfc3339(e.created_at)})
}

fn with(mut v: Value, fields: Value) -> Value {
    if let (Some(m), Value::Object(f)) = (v.as_object_mut(), fields) {
        m.extend(f);
    }
    v
}

fn text(s: &str) -> Value {
    json!([{"type": "text", "text": s}])
}

/// A user message's blocks: its text, then its images and documents. One sent as a URL shows
/// the URL; one sent as base64 names its herm attachment (the facade puts the bytes back).
fn user_blocks(content: &str, attachments: &[herm_types::attachment::Attachment]) -> Value {
    use herm_types::attachment::AttachmentKind;
    let mut out = if content.is_empty() { vec![] } else { vec![json!({"type": "text", "text": content})] };
    for a in attachments {
        let ty = if a.kind == AttachmentKind::Image { "image" } else { "document" };
        let source = match (&a.url, &a.attachment_id) {
            (Some(url), _) => json!({"type": "url", "url": url}),
            (None, Some(id)) => json!({"type": "base64", "media_type": a.media_type, "attachment_id": id.as_str()}),
            (None, None) => json!({"type": "base64", "media_type": a.media_type}),
        };
        let mut block = json!({"type": ty, "source": source});
        if let (Some(name), "document") = (&a.name, ty) {
            block["title"] = json!(name);
        }
        out.push(block);
    }
    Value::Array(out)
}

/// CMA's `session.error` type for a herm run error code.
pub fn error_type(code: &str) -> &'static str {
    match code {
        "insufficient_credits" => "billing_error",
        "max_steps_exceeded" => "tool_use_limit_reached_error",
        c if c.contains("overloaded") => "model_overloaded_error",
        c if c.contains("rate_limit") => "model_rate_limited_error",
        c if c.starts_with("model") || c.starts_with("provider") || c.contains("upstream") => {
            "model_request_failed_error"
        }
        _ => "unknown_error",
    }
}

impl Projector {
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// A projector that knows these outcomes (goal id → what was defined).
    pub fn with_outcomes(outcomes: HashMap<String, Outcome>) -> Self {
        Self { outcomes, ..Self::default() }
    }

    /// Whether the outcome of goal `id` is known (a stream adds those defined after it opened).
    pub fn knows_outcome(&self, id: &str) -> bool {
        self.outcomes.contains_key(id)
    }

    pub fn add_outcome(&mut self, id: String, o: Outcome) {
        self.outcomes.insert(id, o);
    }

    /// Where each outcome stands, as the log says (a session's `outcome_evaluations`).
    pub fn outcome_evaluations(&self) -> Vec<Value> {
        let mut ids: Vec<&String> = self.outcomes.keys().collect();
        ids.sort();
        ids.into_iter()
            .map(|id| {
                let (result, explanation) = match self.latest.get(id) {
                    // Another cycle follows a revision.
                    Some((r, _)) if r == "needs_revision" => ("running", self.latest[id].1.as_str()),
                    Some((r, e)) => (r.as_str(), e.as_str()),
                    None => ("running", ""),
                };
                json!({
                    "type": "outcome_evaluation", "outcome_id": id, "description": self.outcomes[id].description,
                    "result": result, "iteration": self.iterations.get(id).copied().unwrap_or(0).saturating_sub(1),
                    "explanation": (!explanation.is_empty()).then_some(explanation),
                })
            })
            .collect()
    }

    /// The CMA events of one herm event, in order. A user message comes out with the event
    /// after it (the run status that says whose run it starts) or with [`Self::finish`].
    pub fn event(&mut self, e: &Event) -> Vec<Value> {
        let mut out = Vec::new();
        if let Some(h) = self.held.take() {
            let goal_run = e.run_id.is_some()
                && e.run_id == h.run_id
                && matches!(e.kind, EventKind::RunStatus { kind: RunKind::Goal, .. });
            if !goal_run {
                out.extend(self.map(&h));
            }
        }
        if matches!(e.kind, EventKind::Message { role: Role::User, .. }) && e.run_id.is_some() {
            self.held = Some(e.clone());
            return out;
        }
        out.extend(self.map(e));
        out
    }

    /// What is still held back (a user message at the end of the log).
    pub fn finish(&mut self) -> Vec<Value> {
        match self.held.take() {
            Some(h) => self.map(&h),
            None => vec![],
        }
    }

    fn map(&mut self, e: &Event) -> Vec<Value> {
        let id = e.id.as_str();
        match &e.kind {
            EventKind::Message { role: Role::User, content, attachments } => {
                vec![with(base(id, "user.message", e), json!({"content": user_blocks(content, attachments)}))]
            }
            EventKind::GoalStatus { goal_id, status, .. } => self.goal_status(e, goal_id.as_str(), *status),
            EventKind::GoalVerdict { goal_id, result, feedback, .. } => {
                let result = if *result == Verdict::Pass { "satisfied" } else { "needs_revision" };
                self.evaluation(e, goal_id.as_str(), result, feedback)
            }
            EventKind::RunStatus { status, error, .. } => self.status(e, *status, error.as_ref()),
            EventKind::AgentMessage { content } => {
                let mut out = self.open(e);
                out.push(with(base(id, "agent.message", e), json!({"content": text(content)})));
                out
            }
            EventKind::ModelCall { input_tokens, output_tokens, cost_usd, .. } => {
                self.usage.input_tokens += input_tokens;
                self.usage.output_tokens += output_tokens;
                self.usage.cost_usd += cost_usd;
                let mut out = self.open(e);
                self.open_request = false;
                out.push(with(
                    base(&format!("{id}_end"), "span.model_request_end", e),
                    json!({
                        "model_request_start_id": self.start_id.take().unwrap_or_default(),
                        "model_usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
                        "is_error": false,
                    }),
                ));
                out
            }
            EventKind::Compaction { input_tokens, output_tokens, cost_usd, .. } => {
                self.usage.input_tokens += input_tokens;
                self.usage.output_tokens += output_tokens;
                self.usage.cost_usd += cost_usd;
                vec![base(id, "agent.thread_context_compacted", e)]
            }
            EventKind::ToolCall { tool_use_id, tool, arguments, .. } => {
                if self.uses.contains_key(tool_use_id) {
                    return vec![];
                }
                let (ev, kind) = tool_use(id, e, tool, arguments, "allow", "always_allow");
                self.uses.insert(tool_use_id.clone(), Use { event_id: id.into(), kind });
                vec![ev]
            }
            EventKind::SteeringRequest {
                request_id, kind, tool, tool_use_id, arguments, question, options, ..
            } => {
                let key = tool_use_id.clone().unwrap_or_else(|| request_id.to_string());
                self.requests.insert(request_id.to_string(), key.clone());
                self.pending.push(id.into());
                match kind {
                    RequestKind::Question => {
                        self.uses.insert(key, Use { event_id: id.into(), kind: UseKind::Question });
                        let mut input = json!({"question": question.clone().unwrap_or_default()});
                        if let Some(o) = options {
                            input["options"] = json!(o);
                        }
                        vec![with(base(id, "agent.custom_tool_use", e), json!({"name": "ask_user", "input": input}))]
                    }
                    RequestKind::Approval => {
                        let args = arguments.clone().unwrap_or(json!({}));
                        let (ev, kind) =
                            tool_use(id, e, tool.as_deref().unwrap_or_default(), &args, "ask", "always_ask");
                        self.uses.insert(key, Use { event_id: id.into(), kind });
                        vec![ev]
                    }
                }
            }
            EventKind::SteeringResponse { request_id, result, answer, message, .. } => {
                let Some(u) = self.requests.get(request_id.as_str()).and_then(|k| self.uses.get(k)).cloned() else {
                    return vec![];
                };
                self.pending.retain(|p| *p != u.event_id);
                if u.kind == UseKind::Question {
                    return vec![with(
                        base(id, "user.custom_tool_result", e),
                        json!({"custom_tool_use_id": u.event_id, "content": text(answer.as_deref().unwrap_or_default()), "is_error": false}),
                    )];
                }
                let allow = *result != Some(Confirmation::Deny);
                let mut f = json!({"tool_use_id": u.event_id, "result": if allow { "allow" } else { "deny" }});
                if let (false, Some(m)) = (allow, message) {
                    f["deny_message"] = json!(m);
                }
                vec![with(base(id, "user.tool_confirmation", e), f)]
            }
            EventKind::ToolResult { tool_use_id, result, is_error, .. } => {
                let u = self.uses.get(tool_use_id).cloned();
                let content = text(result);
                match u {
                    Some(Use { kind: UseKind::Question, .. }) => vec![],
                    Some(Use { kind: UseKind::Mcp, event_id }) => vec![with(
                        base(id, "agent.mcp_tool_result", e),
                        json!({"mcp_tool_use_id": event_id, "content": content, "is_error": is_error}),
                    )],
                    Some(Use { event_id, .. }) => vec![with(
                        base(id, "agent.tool_result", e),
                        json!({"tool_use_id": event_id, "content": content, "is_error": is_error}),
                    )],
                    None => vec![with(
                        base(id, "agent.tool_result", e),
                        json!({"tool_use_id": tool_use_id, "content": content, "is_error": is_error}),
                    )],
                }
            }
            EventKind::Interrupt { .. } => vec![base(id, "user.interrupt", e)],
            EventKind::McpStatus { server, status, message }
                if serde_json::to_value(status).ok() == Some(json!("unavailable")) =>
            {
                vec![with(
                    base(id, "session.error", e),
                    json!({"error": {"type": "mcp_connection_failed_error", "message": message, "mcp_server_name": server,
                        "retry_status": {"type": "retrying"}}}),
                )]
            }
            _ => vec![],
        }
    }

    fn goal_status(&mut self, e: &Event, goal: &str, status: GoalStatus) -> Vec<Value> {
        let Some(o) = self.outcomes.get(goal).cloned() else { return vec![] };
        match status {
            GoalStatus::Active if self.shown_outcomes.insert(goal.to_owned()) => vec![with(
                base(e.id.as_str(), "user.define_outcome", e),
                json!({"description": o.description, "rubric": {"type": "text", "content": o.rubric},
                    "max_iterations": o.max_iterations, "outcome_id": goal}),
            )],
            GoalStatus::Exhausted => self.evaluation(e, goal, "max_iterations_reached", "the outcome's runs ran out"),
            GoalStatus::Failed => self.evaluation(e, goal, "failed", "the outcome cannot be pursued any further"),
            GoalStatus::Cancelled => self.evaluation(e, goal, "interrupted", "the outcome was cancelled"),
            _ => vec![],
        }
    }

    /// One evaluation of an outcome: its start and its end, with the result.
    fn evaluation(&mut self, e: &Event, goal: &str, result: &str, explanation: &str) -> Vec<Value> {
        if !self.outcomes.contains_key(goal) {
            return vec![];
        }
        let n = self.iterations.entry(goal.to_owned()).or_default();
        let iteration = *n;
        *n += 1;
        self.latest.insert(goal.to_owned(), (result.to_owned(), explanation.to_owned()));
        let start = format!("{}_start", e.id.as_str());
        vec![
            with(base(&start, "span.outcome_evaluation_start", e), json!({"outcome_id": goal, "iteration": iteration})),
            with(
                base(e.id.as_str(), "span.outcome_evaluation_end", e),
                json!({"outcome_id": goal, "iteration": iteration, "outcome_evaluation_start_id": start,
                    "result": result, "explanation": explanation,
                    "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0}}),
            ),
        ]
    }

    /// `span.model_request_start`, once per model request, before what it produced.
    fn open(&mut self, e: &Event) -> Vec<Value> {
        if self.open_request {
            return vec![];
        }
        self.open_request = true;
        let sid = format!("{}_start", e.id.as_str());
        self.start_id = Some(sid.clone());
        vec![base(&sid, "span.model_request_start", e)]
    }

    fn status(&mut self, e: &Event, status: RunStatus, error: Option<&event::RunError>) -> Vec<Value> {
        let id = e.id.as_str();
        let idle = |reason: Value| with(base(id, "session.status_idle", e), json!({"stop_reason": reason}));
        match status {
            RunStatus::Queued => vec![],
            RunStatus::Running => vec![base(id, "session.status_running", e)],
            RunStatus::WaitingOnHuman => {
                vec![idle(json!({"type": "requires_action", "event_ids": self.pending.clone()}))]
            }
            RunStatus::Completed | RunStatus::Interrupted => {
                self.settle();
                vec![idle(json!({"type": "end_turn"}))]
            }
            RunStatus::Error => {
                self.settle();
                let (code, message) = error.map(|r| (r.code.as_str(), r.message.as_str())).unwrap_or(("unknown", ""));
                let ty = error_type(code);
                let err = with(
                    base(&format!("{id}_error"), "session.error", e),
                    json!({"error": {"type": ty, "message": message, "herm_code": code, "retry_status": {"type": "exhausted"}}}),
                );
                let reason = if ty == "billing_error" { "budget_reached" } else { "retries_exhausted" };
                vec![err, idle(json!({"type": reason}))]
            }
        }
    }

    /// A run ended: nothing waits any more and no request is open.
    fn settle(&mut self) {
        self.pending.clear();
        self.open_request = false;
        self.start_id = None;
    }
}

fn tool_use(id: &str, e: &Event, tool: &str, args: &Value, permission: &str, evaluation: &str) -> (Value, UseKind) {
    let eval = json!({"evaluated_permission": permission, "evaluation": {"type": evaluation}});
    match shown(tool, args) {
        Shown::Mcp { server, name, input } => (
            with(
                with(
                    base(id, "agent.mcp_tool_use", e),
                    json!({"mcp_server_name": server, "name": name, "input": input}),
                ),
                eval,
            ),
            UseKind::Mcp,
        ),
        Shown::Builtin { name, input } => {
            (with(with(base(id, "agent.tool_use", e), json!({"name": name, "input": input})), eval), UseKind::Builtin)
        }
    }
}

/// The whole log as CMA events.
pub fn all(log: &[Event]) -> (Vec<Value>, Projector) {
    fold(log, Projector::default())
}

/// The whole log as CMA events, with `p`'s knowledge (outcomes) to start from.
pub fn fold(log: &[Event], mut p: Projector) -> (Vec<Value>, Projector) {
    let mut out: Vec<Value> = log.iter().flat_map(|e| p.event(e)).collect();
    out.extend(p.finish());
    (out, p)
}

#[cfg(test)]
mod tests;
