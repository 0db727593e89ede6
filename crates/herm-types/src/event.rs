//! The event log record: one entry of a thread's log, which is at once the durable journal,
//! the SSE stream and the audit trail.
//!
//! `EventKind` is persisted, so its shape is versioned: [`EVENT_FORMAT_VERSION`] is stored
//! beside every record and bumped (with a migration in the store) whenever a variant changes
//! incompatibly. Adding an optional field with `#[serde(default)]` is compatible.

use crate::ids::{AutomationId, DeploymentId, DeploymentSeq, EventId, GoalId, RequestId, RunId, Sequence, ThreadId};
use crate::status::{RunKind, RunStatus, RunTrigger, Usage};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Version of the persisted `EventKind` encoding.
pub const EVENT_FORMAT_VERSION: i64 = 1;

/// What a steering request asks of a person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// Allow, deny or edit a tool call.
    Approval,
    /// Answer the agent's clarifying question.
    Question,
}

/// A person's decision on an approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Confirmation {
    Allow,
    Deny,
}

/// How a workspace file changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileChange {
    Created,
    Modified,
    Deleted,
}

/// The state an `mcp_status` event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum McpState {
    /// The server could not be reached or failed: its tools fail until it answers again.
    Unavailable,
}

/// Which output of a command a `tool_output` frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Agent,
}

pub use crate::attachment::{Attachment, AttachmentKind};

/// How a tool call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolOutcome {
    Ok,
    Error,
    Denied,
    /// The call was in flight when its worker died and the tool is not safe to repeat:
    /// nobody knows whether it took effect.
    InterruptedUnknown,
}

impl ToolOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Denied => "denied",
            Self::InterruptedUnknown => "interrupted_unknown",
        }
    }
}

/// Which spending limit stopped a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    /// The run's own `limits.max_run_cost_usd`.
    Run,
    /// The thread's `limits.max_thread_cost_usd` (all its runs together).
    Thread,
    /// The deployment's `limits.max_daily_cost_usd`.
    Deployment,
    /// The customer's daily budget, across its deployments.
    Customer,
}

impl BudgetScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Thread => "thread",
            Self::Deployment => "deployment",
            Self::Customer => "customer",
        }
    }
}

/// A tool call as the model requested it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequestedToolCall {
    pub tool_use_id: String,
    pub tool: String,
    #[schema(value_type = Object)]
    pub arguments: Value,
}

/// A machine-readable error attached to a failed run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunError {
    pub code: String,
    pub message: String,
}

/// The typed payload of an event; `type` on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A user message; it starts (or is folded into) a run.
    Message {
        role: Role,
        content: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
    },
    /// The full text of one agent message.
    AgentMessage { content: String },
    /// A tool call about to be executed (the write-ahead record of the call).
    ToolCall {
        tool_use_id: String,
        tool: String,
        origin: String,
        #[schema(value_type = Object)]
        arguments: Value,
    },
    /// The result of a tool call.
    ToolResult {
        tool_use_id: String,
        tool: String,
        result: String,
        is_error: bool,
        duration_ms: u64,
        /// Images the tool returned to the model (references to stored bytes).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
        outcome: ToolOutcome,
    },
    /// One completed model call: usage plus what the model asked for next.
    ModelCall {
        model: String,
        input_tokens: u64,
        output_tokens: u64,
        cost_usd: f64,
        duration_ms: u64,
        #[serde(default)]
        tool_calls: Vec<RequestedToolCall>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stop_reason: Option<String>,
        /// The last thread `sequence` the request included: input written later (while the
        /// call streamed) was not seen by the model.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context_sequence: Option<i64>,
        /// The provider reported no usage: the token counts are herm's estimate (about four
        /// characters a token), so budgets still count the call.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        estimated: bool,
    },
    /// The run needs a person: an approval or a clarifying question.
    SteeringRequest {
        request_id: RequestId,
        kind: RequestKind,
        summary: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_use_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Object>)]
        arguments: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        question: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        options: Option<Vec<String>>,
    },
    /// A person's answer to a steering request.
    SteeringResponse {
        request_id: RequestId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Confirmation>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answer: Option<String>,
        /// With a denial: what the model is told.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Object>)]
        input: Option<Value>,
    },
    /// Guidance folded into the active run.
    Steer { message: String },
    /// A request to stop the active run.
    Interrupt {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A run changed status.
    RunStatus {
        status: RunStatus,
        /// What the run works for (`user` for logs written before runs had kinds).
        #[serde(default)]
        kind: RunKind,
        /// What started a run no person started.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trigger: Option<RunTrigger>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<RunError>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
    },
    /// Older turns replaced by a summary: the conversation up to and including
    /// `replaced_through_sequence` is this summary from now on (resume and later runs too).
    Compaction {
        summary: String,
        replaced_through_sequence: i64,
        /// The estimated size of the next request before and after (tokens).
        #[serde(default)]
        tokens_before: u64,
        #[serde(default)]
        tokens_after: u64,
        /// The summarising model call.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        model: String,
        #[serde(default)]
        input_tokens: u64,
        #[serde(default)]
        output_tokens: u64,
        #[serde(default)]
        cost_usd: f64,
        /// The provider reported no usage for the summary: the counts are herm's estimate.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        estimated: bool,
    },
    /// **(herm)** A budget stopped the run before a model call: what was spent against
    /// which limit, and what the next call was expected to cost (the previous call's cost:
    /// a conversation only grows). The run ends `insufficient_credits` in the same commit.
    Budget { scope: BudgetScope, limit_usd: f64, spent_usd: f64, next_call_usd: f64 },
    /// A workspace file changed.
    Filesystem { change: FileChange, path: String },
    /// **(herm)** An MCP server could not be reached: its tools fail (or are not offered)
    /// until it answers again.
    McpStatus { server: String, status: McpState, message: String },
    /// **(herm)** An automation was paused or resumed (by an operator, by the agent, or by
    /// herm after consecutive failed runs).
    AutomationStatus {
        automation_id: AutomationId,
        status: crate::proactive::AutomationState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// **(herm)** A goal changed status.
    GoalStatus {
        goal_id: GoalId,
        status: crate::proactive::GoalStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// **(herm)** The judge's verdict on the agent's claim that a goal is done.
    GoalVerdict {
        goal_id: GoalId,
        run_id: RunId,
        result: crate::proactive::Verdict,
        feedback: String,
        /// What the judge's model call cost.
        #[serde(default)]
        cost_usd: f64,
    },
    /// A streamed text fragment (live only, never committed); `message_id` is the id the
    /// `agent_message` it builds will have when it commits.
    Token {
        delta: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>)]
        message_id: Option<EventId>,
    },
    /// A streamed tool output fragment (live only, never committed).
    ToolOutput { tool_use_id: String, stream: OutputStream, delta: String },
}

impl EventKind {
    /// The `type` tag of this event.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Message { .. } => "message",
            Self::AgentMessage { .. } => "agent_message",
            Self::ToolCall { .. } => "tool_call",
            Self::ToolResult { .. } => "tool_result",
            Self::ModelCall { .. } => "model_call",
            Self::SteeringRequest { .. } => "steering_request",
            Self::SteeringResponse { .. } => "steering_response",
            Self::Steer { .. } => "steer",
            Self::Interrupt { .. } => "interrupt",
            Self::RunStatus { .. } => "run_status",
            Self::Compaction { .. } => "compaction",
            Self::Budget { .. } => "budget",
            Self::Filesystem { .. } => "filesystem",
            Self::McpStatus { .. } => "mcp_status",
            Self::AutomationStatus { .. } => "automation_status",
            Self::GoalStatus { .. } => "goal_status",
            Self::GoalVerdict { .. } => "goal_verdict",
            Self::Token { .. } => "token",
            Self::ToolOutput { .. } => "tool_output",
        }
    }

    /// Live-only kinds are streamed but never written to the log.
    pub fn is_ephemeral(&self) -> bool {
        matches!(self, Self::Token { .. } | Self::ToolOutput { .. })
    }
}

/// An event to append; the store assigns its positions and timestamp.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub id: EventId,
    pub run_id: Option<RunId>,
    pub kind: EventKind,
}

impl NewEvent {
    pub fn new(run_id: Option<RunId>, kind: EventKind) -> Self {
        Self { id: EventId::new(), run_id, kind }
    }
}

/// A committed event. On the wire it also names its trace and span (`trace_id`, `span_id`,
/// W3C hex, derived from its run: see [`crate::trace`]) when it belongs to a run.
#[derive(Clone, Debug, PartialEq, Deserialize, ToSchema)]
pub struct Event {
    pub id: EventId,
    #[schema(value_type = i64)]
    pub sequence: Sequence,
    /// Position in the deployment's combined stream; the SSE cursor of the deployment stream.
    #[schema(value_type = i64)]
    pub deployment_sequence: DeploymentSeq,
    pub deployment_id: DeploymentId,
    pub thread_id: ThreadId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            id: &'a EventId,
            sequence: Sequence,
            deployment_sequence: DeploymentSeq,
            deployment_id: &'a DeploymentId,
            thread_id: &'a ThreadId,
            #[serde(skip_serializing_if = "Option::is_none")]
            run_id: Option<&'a RunId>,
            created_at: chrono::DateTime<chrono::Utc>,
            #[serde(skip_serializing_if = "Option::is_none")]
            trace_id: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            span_id: Option<String>,
            #[serde(flatten)]
            kind: &'a EventKind,
        }
        let (trace_id, span_id) = crate::trace::of_event(self).unzip();
        Wire {
            id: &self.id,
            sequence: self.sequence,
            deployment_sequence: self.deployment_sequence,
            deployment_id: &self.deployment_id,
            thread_id: &self.thread_id,
            run_id: self.run_id.as_ref(),
            created_at: self.created_at,
            trace_id,
            span_id,
            kind: &self.kind,
        }
        .serialize(s)
    }
}

/// A frame on the live bus: a committed event or an ephemeral fragment.
#[derive(Clone, Debug)]
pub enum LiveFrame {
    Committed(std::sync::Arc<Event>),
    Ephemeral(std::sync::Arc<EphemeralFrame>),
}

/// A live-only fragment (token or tool output), sent without an SSE id.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EphemeralFrame {
    pub deployment_id: DeploymentId,
    pub thread_id: ThreadId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl LiveFrame {
    pub fn thread_id(&self) -> &ThreadId {
        match self {
            Self::Committed(e) => &e.thread_id,
            Self::Ephemeral(e) => &e.thread_id,
        }
    }
    pub fn run_id(&self) -> Option<&RunId> {
        match self {
            Self::Committed(e) => e.run_id.as_ref(),
            Self::Ephemeral(e) => e.run_id.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_wire_shape_is_flat_with_type_tag() {
        let e = Event {
            id: EventId::new(),
            sequence: Sequence(3),
            deployment_sequence: DeploymentSeq(9),
            deployment_id: DeploymentId::new(),
            thread_id: ThreadId::new(),
            run_id: None,
            created_at: crate::now(),
            kind: EventKind::AgentMessage { content: "hi".into() },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "agent_message");
        assert_eq!(v["sequence"], 3);
        assert_eq!(v["content"], "hi");
        assert!(v.get("run_id").is_none());
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    /// Payloads written before these fields were typed (plain strings) read back as the
    /// enums and serialize to the same JSON: no migration of stored events is needed.
    #[test]
    fn typed_payloads_read_what_the_string_format_wrote() {
        let old = [
            serde_json::json!({"type": "steering_request", "request_id": "req_0000000000000000000001", "kind": "approval", "summary": "s", "tool": "t"}),
            serde_json::json!({"type": "steering_request", "request_id": "req_0000000000000000000001", "kind": "question", "summary": "s", "question": "q?"}),
            serde_json::json!({"type": "steering_response", "request_id": "req_0000000000000000000001", "result": "deny", "message": "no"}),
            serde_json::json!({"type": "steering_response", "request_id": "req_0000000000000000000001", "result": "allow"}),
            serde_json::json!({"type": "filesystem", "change": "modified", "path": "a.txt"}),
            serde_json::json!({"type": "mcp_status", "server": "s", "status": "unavailable", "message": "down"}),
            serde_json::json!({"type": "tool_output", "tool_use_id": "t", "stream": "stderr", "delta": "x"}),
        ];
        // A run_status of the previous version has no kind: it reads as a user's run.
        let k: EventKind =
            serde_json::from_value(serde_json::json!({"type": "run_status", "status": "running"})).unwrap();
        assert!(matches!(k, EventKind::RunStatus { kind: RunKind::User, trigger: None, .. }));
        for v in old {
            let k: EventKind = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(serde_json::to_value(&k).unwrap(), v);
        }
        let k: EventKind = serde_json::from_value(serde_json::json!({"type": "steering_response", "request_id": "req_0000000000000000000001", "result": "deny"})).unwrap();
        assert!(matches!(k, EventKind::SteeringResponse { result: Some(Confirmation::Deny), .. }));
        assert!(
            serde_json::from_value::<EventKind>(
                serde_json::json!({"type": "filesystem", "change": "renamed", "path": "a"})
            )
            .is_err()
        );
    }
}
