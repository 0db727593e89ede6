//! Lifecycle states of runs, threads and deployments, and token/cost usage.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Status of a run, as carried by `run_status` events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    WaitingOnHuman,
    Completed,
    Error,
    Interrupted,
}

impl RunStatus {
    /// A terminal run never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Error | Self::Interrupted)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::WaitingOnHuman => "waiting_on_human",
            Self::Completed => "completed",
            Self::Error => "error",
            Self::Interrupted => "interrupted",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// What a run works for. Every kind is an ordinary journaled run: durable, steerable and
/// budgeted like a user's; only what starts it differs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// A person's message.
    #[default]
    User,
    /// The memory observer, after a thread goes idle.
    Observer,
    /// Memory consolidation while the deployment is idle.
    Dream,
    /// A scheduled or webhook-triggered automation.
    Automation,
    /// A step of a goal pursued across sessions.
    Goal,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Observer => "observer",
            Self::Dream => "dream",
            Self::Automation => "automation",
            Self::Goal => "goal",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
    /// A run of the deployment's memory (observer, dream): it sees only its own run and is
    /// offered only the memory tools.
    pub fn is_memory(self) -> bool {
        matches!(self, Self::Observer | Self::Dream)
    }
}

/// What started a run that no person started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunTrigger {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automation_id: Option<String>,
    /// The schedule slot an automation run fired for (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dream_id: Option<String>,
    /// The thread an observer run observed, and the last sequence it saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through_sequence: Option<i64>,
}

/// Status of a thread (derived from its active run).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThreadStatus {
    Idle,
    Running,
    WaitingOnHuman,
    Error,
}

/// Status of a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    Provisioning,
    Ready,
    Error,
    Deleted,
}

impl DeploymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Ready => "ready",
            Self::Error => "error",
            Self::Deleted => "deleted",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// Tokens and cost, summed per model call, run, thread or deployment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cost_usd += other.cost_usd;
    }
}
