//! Plain records exchanged with the store.

use chrono::{DateTime, Utc};
use herm_types::config::DeploymentSpec;
use herm_types::event::RunError;
use herm_types::*;

#[derive(Clone, Debug)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub name: String,
    /// Hex SHA-256 of the key; the key itself is never stored.
    pub hash: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A vault entry: only ciphertext.
#[derive(Clone)]
pub struct SecretRecord {
    pub id: SecretId,
    pub name: String,
    pub description: Option<String>,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRecord").field("id", &self.id).field("name", &self.name).finish()
    }
}

#[derive(Clone, Debug)]
pub struct DeploymentRecord {
    pub id: DeploymentId,
    pub status: DeploymentStatus,
    pub error: Option<String>,
    pub spec: DeploymentSpec,
    pub default_thread_id: ThreadId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Increases by one with every spec change: the optimistic-concurrency condition of
    /// [`crate::ConfigStore::update_deployment_spec`] and the API's `ETag`.
    pub revision: i64,
}

#[derive(Clone, Debug, Default)]
pub struct DeploymentQuery {
    pub customer_id: Option<String>,
    pub status: Option<DeploymentStatus>,
    /// Return deployments with an id strictly less than this (newest first).
    pub before: Option<DeploymentId>,
    pub limit: usize,
}

#[derive(Clone, Debug)]
pub struct NewThread {
    pub id: ThreadId,
    pub deployment_id: DeploymentId,
    pub title: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ThreadRecord {
    pub id: ThreadId,
    pub deployment_id: DeploymentId,
    pub title: Option<String>,
    pub status: ThreadStatus,
    pub message_count: u64,
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub last_sequence: i64,
}

#[derive(Clone, Debug)]
pub struct ThreadQuery {
    pub deployment_id: DeploymentId,
    /// Return threads with an id strictly less than this (newest first).
    pub before: Option<ThreadId>,
    pub limit: usize,
}

#[derive(Clone, Debug)]
pub struct RunRecord {
    pub id: RunId,
    pub thread_id: ThreadId,
    pub deployment_id: DeploymentId,
    pub status: RunStatus,
    pub kind: RunKind,
    pub trigger: Option<RunTrigger>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub steps: u32,
    pub usage: Usage,
    pub error: Option<RunError>,
}

/// A worker's hold on a thread. `epoch` increases on every acquisition and fences stale
/// writers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub thread_id: ThreadId,
    pub owner: String,
    pub epoch: i64,
}

/// A condition checked inside the append transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The thread's oldest non-terminal run is exactly this (or there is none).
    ActiveRunIs(Option<RunId>),
    /// No event was appended after this sequence.
    LastSequenceIs(i64),
}

/// One atomic append to a thread's log.
#[derive(Clone, Debug)]
pub struct Append {
    pub thread_id: ThreadId,
    pub lease: Option<Lease>,
    pub conditions: Vec<Condition>,
    /// Creates this run in the same transaction.
    pub new_run: Option<NewRun>,
    pub events: Vec<NewEvent>,
    /// Records, in the same transaction, that this append happened once: a second append
    /// with the same mark is refused with [`crate::Error::Duplicate`].
    pub once: Option<Once>,
}

impl Append {
    pub fn new(thread_id: ThreadId, events: Vec<NewEvent>) -> Self {
        Self { thread_id, lease: None, conditions: Vec::new(), new_run: None, events, once: None }
    }
}

/// What makes an append happen at most once.
#[derive(Clone, Debug)]
pub enum Once {
    /// An automation's firing (a schedule slot, a webhook delivery, a run-now).
    Firing(NewFiring),
    /// Any other single event of the proactive loops (a goal's n-th run, a verdict).
    Key { key: String, run_id: Option<RunId> },
}

/// An automation as stored.
#[derive(Clone, Debug)]
pub struct AutomationRecord {
    pub id: AutomationId,
    pub deployment_id: DeploymentId,
    pub spec: herm_types::proactive::AutomationSpec,
    pub enabled: bool,
    pub paused_reason: Option<String>,
    /// Hex SHA-256 of the webhook trigger's token (the token is never stored).
    pub token_hash: Option<String>,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A firing to record: `key` is unique per automation (the slot, `webhook:<delivery>`,
/// `manual:<run>`).
#[derive(Clone, Debug)]
pub struct NewFiring {
    pub automation_id: AutomationId,
    pub key: String,
    pub slot_at: Option<DateTime<Utc>>,
    pub source: herm_types::proactive::FiringSource,
    /// `Fired` or `Skipped` (a failure is read from the run).
    pub skipped: bool,
    pub run_id: Option<RunId>,
    pub thread_id: Option<ThreadId>,
    pub reason: Option<String>,
}

/// A recorded firing with its run's current status.
#[derive(Clone, Debug)]
pub struct FiringRecord {
    pub firing: NewFiring,
    pub run_status: Option<RunStatus>,
    pub created_at: DateTime<Utc>,
}

/// A goal as stored.
#[derive(Clone, Debug)]
pub struct GoalRecord {
    pub id: GoalId,
    pub deployment_id: DeploymentId,
    pub thread_id: ThreadId,
    pub spec: herm_types::proactive::GoalSpec,
    pub status: herm_types::proactive::GoalStatus,
    pub state: herm_types::proactive::GoalState,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub thread_id: Option<ThreadId>,
    pub run_id: Option<RunId>,
}

/// The state of an idempotency key when a request begins.
#[derive(Clone, Debug, PartialEq)]
pub enum IdemBegin {
    /// First use: the caller performs the request and then finishes or aborts the key.
    Fresh,
    /// Already done with the same body: replay this response.
    Replay { status: u16, body: Vec<u8> },
    /// Used before with a different body.
    Mismatch,
    /// The first request with this key is still being processed.
    InProgress,
}

/// A run created by an [`Append`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRun {
    pub id: RunId,
    pub status: RunStatus,
    pub kind: RunKind,
    pub trigger: Option<RunTrigger>,
}

impl NewRun {
    /// A run started by a person's message.
    pub fn user(id: RunId, status: RunStatus) -> Self {
        Self { id, status, kind: RunKind::User, trigger: None }
    }
}

/// The outcome of revoking an API key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    Revoked,
    /// No live key has that id.
    NotFound,
    /// It is the last live key with the `admin` scope: revoking it would lock everyone out.
    LastAdmin,
}

/// A timer to set: `key` names it (one timer per key), `kind` says who handles it.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTimer {
    pub key: String,
    pub kind: String,
    pub due_at: DateTime<Utc>,
    pub payload: serde_json::Value,
}

/// A timer as claimed by one node for one firing.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedTimer {
    pub key: String,
    pub kind: String,
    pub due_at: DateTime<Utc>,
    pub payload: serde_json::Value,
    /// Increases with every claim and every reset: a finish names the claim it ends.
    pub epoch: i64,
}

/// A memory as stored: its current version (a deleted one keeps its history until purged).
#[derive(Clone, Debug)]
pub struct MemoryRecord {
    pub id: MemoryId,
    pub deployment_id: DeploymentId,
    pub path: String,
    /// `None` once deleted.
    pub content: Option<String>,
    pub source: herm_types::memory::MemorySource,
    pub version: i64,
    /// What the workspace file held (SHA-256, hex) when the two last agreed.
    pub file_sha: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A live memory's text, as a run's prompt and searches read it.
#[derive(Clone, Debug)]
pub struct MemoryText {
    pub path: String,
    pub content: String,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

/// What a memory write expects to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// No memory with this id (a create; the path must be free too).
    Absent,
    /// The memory at exactly this version.
    Version(i64),
}

/// One change of a memory: a new version.
#[derive(Clone, Debug)]
pub struct MemoryWrite {
    pub deployment_id: DeploymentId,
    pub memory_id: MemoryId,
    pub path: String,
    /// `None` deletes (the history stays, as a `deleted` version).
    pub content: Option<String>,
    pub source: herm_types::memory::MemorySource,
    pub run_id: Option<RunId>,
    pub expected: Expected,
    /// The workspace file now holds this (set when the write comes from the file).
    pub file_sha: Option<String>,
}

/// A memory version as stored.
#[derive(Clone, Debug)]
pub struct MemoryVersionRecord {
    pub memory_id: MemoryId,
    pub version: herm_types::memory::MemoryVersion,
}

/// Which of a deployment's memories to list.
#[derive(Clone, Debug, Default)]
pub struct MemoryQuery {
    /// Case-insensitive substring of the path or the content.
    pub q: Option<String>,
    /// Path prefix.
    pub prefix: Option<String>,
    pub before: Option<MemoryId>,
    pub limit: usize,
}

/// A dream as stored (its status comes from its run).
#[derive(Clone, Debug)]
pub struct DreamRecord {
    pub id: DreamId,
    pub deployment_id: DeploymentId,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    /// The dream's run, once started, and its status.
    pub run: Option<(RunId, RunStatus)>,
}

/// A stored attachment: the reference the log carries, and where it was first used.
#[derive(Clone, Debug, PartialEq)]
pub struct AttachmentRecord {
    pub deployment_id: DeploymentId,
    /// The thread whose message or tool result carries it; its bytes go with the thread.
    pub thread_id: Option<ThreadId>,
    /// With `attachment_id` set.
    pub reference: herm_types::attachment::Attachment,
    pub created_at: DateTime<Utc>,
}
