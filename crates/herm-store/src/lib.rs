//! Durable storage of herm: the [`Store`] trait, its SQLite implementation, the live event
//! bus that publishes committed events in commit order, and the encrypted secrets vault.
//!
//! Architecture invariants:
//! - Every write that changes a thread's story goes through [`Store::append`], which assigns
//!   the per-thread `sequence` and per-deployment `deployment_sequence` inside one transaction
//!   and updates the projections (runs, counters) in that same transaction.
//! - Appends by a run worker carry its [`Lease`]; the store refuses them once the lease is
//!   lost, so a thread has exactly one writer (fencing).
//! - Committed events are published to the [`bus::Bus`] by the store, after commit, in commit
//!   order. Nothing else publishes committed events.
//! - Secret values are stored only as ciphertext in the `secrets` table; this crate never
//!   sees a plaintext except inside [`vault::Vault`].

pub mod bus;
pub mod postgres;
mod records;
pub mod sqlite;
pub mod vault;

pub use records::*;

use async_trait::async_trait;
use herm_types::config::{DeploymentSpec, ProviderSpec};
use herm_types::*;
use std::sync::Arc;

/// Errors of the storage layer. Backend-neutral: a PostgreSQL store reports its failures
/// through the same variants, so callers never see a driver's types.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found")]
    NotFound,
    /// The worker's lease on the thread is gone (expired or taken by another worker).
    #[error("lease lost")]
    LeaseLost,
    /// A conditional write found the thread in a different state than expected.
    #[error("precondition failed: {0}")]
    Conflict(String),
    /// A conditional update found a newer revision of the record than the one it was based on.
    #[error("the record changed since it was read")]
    Stale,
    /// An append marked [`Once`] found its mark already recorded: it happened before.
    #[error("this already happened")]
    Duplicate,
    /// The database refused or failed the operation (driver message, never a value).
    #[error("database error: {0}")]
    Database(String),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("encryption error")]
    Crypto,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("store is shut down")]
    Closed,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a herm node needs from durable storage: the four focused stores below. Held as
/// `Arc<dyn Store>`; the SQLite and (next) PostgreSQL implementations pass the same generic
/// suite.
pub trait Store:
    LogStore
    + ConfigStore
    + AccessStore
    + TimerStore
    + ProactiveStore
    + MemoryStore
    + AttachmentStore
    + WebhookStore
    + DocumentStore
{
}
impl<
    T: LogStore
        + ConfigStore
        + AccessStore
        + TimerStore
        + ProactiveStore
        + MemoryStore
        + AttachmentStore
        + WebhookStore
        + DocumentStore,
> Store for T
{
}

/// A document an API facade keeps for an object herm has no concept of (the Claude Managed
/// Agents facade's agents, environments, vaults and sessions): a JSON body by kind and id,
/// at a version.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub kind: String,
    pub id: String,
    /// 1 for a new document; each write is the next version (or the latest, rewritten).
    pub version: i64,
    pub body: serde_json::Value,
}

/// What a document write does with the versions before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum History {
    /// Keep them, readable by version (an agent's configurations).
    Keep,
    /// Remove them (only the latest state matters).
    Drop,
    /// Replace the latest version's body in place (it must still be the latest).
    Rewrite,
}

/// Facade documents. Every write is conditional: version n+1 lands only if n is the latest,
/// version 1 only if the id is new, a rewrite only if the version is still the latest;
/// otherwise [`Error::Stale`] and nothing is written.
#[async_trait]
pub trait DocumentStore: Send + Sync + 'static {
    async fn put_document(&self, d: Document, history: History) -> Result<()>;
    /// The latest version, or the one asked for.
    async fn get_document(&self, kind: &str, id: &str, version: Option<i64>) -> Result<Option<Document>>;
    /// The latest version of a kind's documents by id, after the cursor id (before it when
    /// `desc`).
    async fn list_documents(
        &self,
        kind: &str,
        after: Option<String>,
        desc: bool,
        limit: usize,
    ) -> Result<Vec<Document>>;
    /// A document's versions, oldest first, after `after`.
    async fn document_versions(&self, kind: &str, id: &str, after: i64, limit: usize) -> Result<Vec<Document>>;
    /// Deletes every version; false if there was none.
    async fn delete_document(&self, kind: &str, id: &str) -> Result<bool>;
}

/// Whether the webhook outbox keeps an event of this kind (the kinds a webhook can be told
/// of): the SQLite append and PostgreSQL's trigger (`run_status`, `budget`,
/// `automation_status`) keep these.
pub fn kept_for_webhooks(kind: &EventKind) -> bool {
    matches!(kind, EventKind::RunStatus { .. } | EventKind::Budget { .. } | EventKind::AutomationStatus { .. })
}

/// Outbound webhooks: the endpoints, the outbox of committed events they may want (written
/// in the append's own transaction while any webhook exists, so a crash loses none) and the
/// deliveries, each made until accepted or given up.
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    async fn insert_webhook(&self, w: herm_types::webhook::Webhook) -> Result<()>;
    async fn list_webhooks(&self) -> Result<Vec<herm_types::webhook::Webhook>>;
    async fn get_webhook(&self, id: &WebhookId) -> Result<Option<herm_types::webhook::Webhook>>;
    /// Deletes the webhook and its deliveries; false if there was none.
    async fn delete_webhook(&self, id: &WebhookId) -> Result<bool>;
    /// Up to `limit` outbox entries, oldest first, each with its event (`None` when the
    /// event's thread was deleted since).
    async fn outbox(&self, limit: usize) -> Result<Vec<(EventId, Option<Event>)>>;
    /// Records the deliveries of one outbox entry and removes the entry, in one transaction;
    /// a webhook gets an event at most once.
    async fn enqueue_deliveries(&self, event: &EventId, deliveries: Vec<herm_types::webhook::Delivery>) -> Result<()>;
    /// Pending deliveries due at `now`, oldest due first.
    async fn due_deliveries(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<herm_types::webhook::Delivery>>;
    /// Records an attempt (the delivery as it stands after it) if the stored delivery is
    /// still pending after `expected_attempts` attempts; false if another attempt was
    /// recorded first or it is gone.
    async fn record_attempt(&self, d: &herm_types::webhook::Delivery, expected_attempts: u32) -> Result<bool>;
    /// The webhook's deliveries, newest first, before the cursor.
    async fn list_deliveries(
        &self,
        webhook: &WebhookId,
        before: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<herm_types::webhook::Delivery>>;
    /// When the next pending delivery is due.
    async fn next_delivery_at(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>>;
}

/// Attachments: their records, and their bytes stored once per deployment and content.
/// Deleting a thread removes the attachments it carried; deleting a deployment removes all
/// of its attachments; bytes go when no attachment of the deployment holds them.
#[async_trait]
pub trait AttachmentStore: Send + Sync + 'static {
    /// Stores the bytes (durably, before this returns) unless the deployment holds them,
    /// and records the attachment.
    async fn put_attachment(&self, rec: AttachmentRecord, bytes: Vec<u8>) -> Result<()>;
    async fn get_attachment(&self, dep: &DeploymentId, id: &AttachmentId) -> Result<Option<AttachmentRecord>>;
    /// The deployment's stored bytes with this SHA-256 (hex).
    async fn blob(&self, dep: &DeploymentId, sha256: &str) -> Result<Option<Vec<u8>>>;
    /// Removes attachments (of a message that was refused after they were stored) and the
    /// bytes no other attachment holds.
    async fn remove_attachments(&self, dep: &DeploymentId, ids: &[AttachmentId]) -> Result<()>;
}

/// Memories (every change a version), dreams, and small marks (how far a thread was
/// observed, what a deployment's last dream saw).
#[async_trait]
pub trait MemoryStore: Send + Sync + 'static {
    /// Writes a new version if the memory is as `w.expected` says ([`Error::Stale`] if it
    /// moved on, [`Error::NotFound`] if it is gone, [`Error::Conflict`] if the path is taken
    /// by another live memory of the deployment).
    async fn write_memory(&self, w: MemoryWrite) -> Result<MemoryRecord>;
    async fn get_memory(&self, id: &MemoryId) -> Result<Option<MemoryRecord>>;
    /// The live memory at `path`.
    async fn memory_at(&self, dep: &DeploymentId, path: &str) -> Result<Option<MemoryRecord>>;
    /// Live memories, newest first.
    async fn list_memories(&self, dep: &DeploymentId, q: MemoryQuery) -> Result<Vec<MemoryRecord>>;
    /// The deployment's live memories' texts (what runs are shown and searches read).
    async fn memory_texts(&self, dep: &DeploymentId) -> Result<Vec<MemoryText>>;
    /// Every memory of the deployment, deleted ones included (the file sync needs both).
    async fn all_memories(&self, dep: &DeploymentId) -> Result<Vec<MemoryRecord>>;
    /// Oldest first.
    async fn memory_versions(&self, id: &MemoryId) -> Result<Vec<MemoryVersionRecord>>;
    /// Versions a run wrote, in order.
    async fn memory_versions_by_run(&self, run: &RunId) -> Result<Vec<MemoryVersionRecord>>;
    /// Clears a version's content; false if there is no such version.
    async fn redact_memory_version(&self, id: &MemoryId, version: i64) -> Result<bool>;
    /// Removes the memory and every version of it, overwriting the freed pages, and
    /// checkpoints the journal so no copy of its text stays in the data directory.
    async fn purge_memory(&self, id: &MemoryId) -> Result<bool>;
    /// Records what the workspace file holds, if the memory is still at `version`.
    async fn set_memory_file(&self, id: &MemoryId, version: i64, sha: Option<String>) -> Result<bool>;
    /// The highest version sequence of the deployment written by runs other than dreams
    /// (new material for the next dream).
    async fn memory_material(&self, dep: &DeploymentId) -> Result<i64>;

    async fn insert_dream(&self, d: DreamRecord) -> Result<()>;
    async fn get_dream(&self, id: &DreamId) -> Result<Option<DreamRecord>>;
    /// Newest first.
    async fn list_dreams(&self, dep: &DeploymentId, before: Option<DreamId>, limit: usize) -> Result<Vec<DreamRecord>>;

    async fn get_mark(&self, key: &str) -> Result<Option<String>>;
    async fn set_mark(&self, key: &str, value: &str) -> Result<()>;
    /// Sets the mark unless it is set; the value it holds afterwards (the first writer's).
    async fn mark_once(&self, key: &str, value: &str) -> Result<String>;
    /// Whether a run other than a memory run (observer, dream) is unfinished in the deployment.
    async fn work_active(&self, dep: &DeploymentId) -> Result<bool>;
}

/// Automations, their firings, and goals. Changes are conditional on the record's
/// revision ([`Error::Stale`] when another write came first).
#[async_trait]
pub trait ProactiveStore: Send + Sync + 'static {
    async fn insert_automation(&self, a: AutomationRecord) -> Result<()>;
    async fn get_automation(&self, id: &AutomationId) -> Result<Option<AutomationRecord>>;
    /// A deployment's automations, newest first, after the cursor.
    async fn list_automations(
        &self,
        dep: &DeploymentId,
        before: Option<AutomationId>,
        limit: usize,
    ) -> Result<Vec<AutomationRecord>>;
    /// Writes `a` if the stored record is still at `expected_revision`; the new revision.
    async fn update_automation(&self, a: &AutomationRecord, expected_revision: i64) -> Result<i64>;
    /// Deletes the automation (and its history) if still at `expected_revision` when given.
    async fn delete_automation(&self, id: &AutomationId, expected_revision: Option<i64>) -> Result<()>;
    /// Records a firing that started nothing (a skipped slot); false if the key was recorded.
    async fn insert_firing(&self, f: NewFiring) -> Result<bool>;
    async fn get_firing(&self, automation: &AutomationId, key: &str) -> Result<Option<FiringRecord>>;
    /// Newest first.
    async fn list_firings(&self, automation: &AutomationId, limit: usize) -> Result<Vec<FiringRecord>>;
    /// The run recorded with a [`Once::Key`], if that key was recorded.
    async fn once_run(&self, key: &str) -> Result<Option<Option<RunId>>>;

    async fn insert_goal(&self, g: GoalRecord) -> Result<()>;
    async fn get_goal(&self, id: &GoalId) -> Result<Option<GoalRecord>>;
    /// A deployment's goals, newest first, after the cursor.
    async fn list_goals(&self, dep: &DeploymentId, before: Option<GoalId>, limit: usize) -> Result<Vec<GoalRecord>>;
    /// Writes `g` if the stored record is still at `expected_revision`; the new revision.
    async fn update_goal(&self, g: &GoalRecord, expected_revision: i64) -> Result<i64>;
    /// Runs started for the goal, oldest first.
    async fn goal_runs(&self, goal: &GoalId) -> Result<Vec<RunRecord>>;
}

/// API keys, the secrets vault (ciphertext only) and idempotency records: who may call, with
/// what, and what they were already answered.
#[async_trait]
pub trait AccessStore: Send + Sync + 'static {
    async fn insert_api_key(&self, key: ApiKeyRecord) -> Result<()>;
    /// Makes the key with this hash live with these scopes: inserted if new, un-revoked if it
    /// was revoked (an operator's `HERM_ADMIN_KEY` always works after a restart).
    async fn ensure_api_key(&self, key: ApiKeyRecord) -> Result<()>;
    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>>;
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>>;
    /// Revokes a live key, unless it is the last live key with the `admin` scope (checked
    /// in the same transaction, so two racing revocations cannot both pass).
    async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<Revocation>;

    async fn insert_secret(&self, s: SecretRecord) -> Result<()>;
    async fn get_secret(&self, id: &SecretId) -> Result<Option<SecretRecord>>;
    async fn list_secrets(&self) -> Result<Vec<SecretRecord>>;
    async fn delete_secret(&self, id: &SecretId) -> Result<bool>;

    async fn idempotency_begin(&self, scope: &str, key: &str, fingerprint: &str) -> Result<IdemBegin>;
    async fn idempotency_finish(&self, scope: &str, key: &str, status: u16, body: &[u8]) -> Result<()>;
    async fn idempotency_abort(&self, scope: &str, key: &str) -> Result<()>;
}

/// Deployments and node configuration kept in the database (providers).
#[async_trait]
pub trait ConfigStore: Send + Sync + 'static {
    async fn put_provider(&self, name: &str, spec: &ProviderSpec) -> Result<()>;
    async fn list_providers(&self) -> Result<Vec<(String, ProviderSpec)>>;
    async fn delete_provider(&self, name: &str) -> Result<bool>;

    /// Creates the deployment (at revision 1) and its default thread atomically.
    async fn create_deployment(&self, d: DeploymentRecord) -> Result<()>;
    async fn get_deployment(&self, id: &DeploymentId) -> Result<Option<DeploymentRecord>>;
    async fn list_deployments(&self, q: DeploymentQuery) -> Result<Vec<DeploymentRecord>>;
    /// Replaces the spec if the deployment is still at `expected_revision`; returns the new
    /// revision. [`Error::Stale`] if another write came first, [`Error::NotFound`] if gone.
    async fn update_deployment_spec(
        &self,
        id: &DeploymentId,
        spec: &DeploymentSpec,
        expected_revision: i64,
    ) -> Result<i64>;
    async fn set_deployment_status(
        &self,
        id: &DeploymentId,
        status: DeploymentStatus,
        error: Option<String>,
    ) -> Result<()>;
    /// Deletes the deployment (its unfinished runs stop, its threads go), if it is still at
    /// `expected_revision` when one is given: [`Error::Stale`] otherwise.
    async fn delete_deployment(&self, id: &DeploymentId, expected_revision: Option<i64>) -> Result<()>;
    /// Deployments still `provisioning` (to finish after a restart).
    async fn provisioning_deployments(&self) -> Result<Vec<DeploymentId>>;

    /// The customer's limits (the default, none, when never set).
    async fn customer_limits(&self, customer: &str) -> Result<herm_types::webhook::CustomerLimits>;
    /// Replaces the customer's limits (no limit set removes the record).
    async fn put_customer_limits(&self, customer: &str, l: &herm_types::webhook::CustomerLimits) -> Result<()>;
}

/// Threads, runs, the event log and the leases that give each thread one writer.
#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    async fn create_thread(&self, t: NewThread) -> Result<()>;
    async fn get_thread(&self, id: &ThreadId) -> Result<Option<ThreadRecord>>;
    async fn list_threads(&self, q: ThreadQuery) -> Result<Vec<ThreadRecord>>;
    async fn set_thread_title(&self, id: &ThreadId, title: &str) -> Result<bool>;
    async fn delete_thread(&self, id: &ThreadId) -> Result<bool>;
    async fn get_run(&self, id: &RunId) -> Result<Option<RunRecord>>;
    /// The oldest non-terminal run of the thread, if any.
    async fn active_run(&self, thread: &ThreadId) -> Result<Option<RunRecord>>;
    /// What the deployment's runs started at or after `since` have cost, in USD.
    async fn deployment_cost_since(&self, dep: &DeploymentId, since: chrono::DateTime<chrono::Utc>) -> Result<f64>;
    /// What the runs of the customer's deployments started at or after `since` have cost.
    async fn customer_cost_since(&self, customer: &str, since: chrono::DateTime<chrono::Utc>) -> Result<f64>;
    /// How many runs are queued, running and waiting on a person, in that order.
    async fn active_run_counts(&self) -> Result<[u64; 3]>;
    /// Tokens and cost of the deployment's model calls and compaction summaries in
    /// `[from, to)`, grouped, in key order.
    async fn usage(
        &self,
        dep: &DeploymentId,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        by: herm_types::api::UsageGroup,
    ) -> Result<Vec<herm_types::api::UsageRow>>;

    /// Appends events atomically (all or none) and publishes them after commit.
    async fn append(&self, a: Append) -> Result<Vec<Arc<Event>>>;
    /// The thread's last sequence when this store knows it without reading (an append to
    /// it committed through this store since it opened); `None` when it does not. A worker
    /// whose log ends there skips reading the thread again.
    fn thread_head(&self, _thread: &ThreadId) -> Option<i64> {
        None
    }
    /// Events of a thread with `sequence > after`, oldest first.
    async fn thread_events(&self, thread: &ThreadId, after: i64, limit: usize) -> Result<Vec<Event>>;
    /// Events of a deployment with `deployment_sequence > after`, oldest first.
    async fn deployment_events(
        &self,
        dep: &DeploymentId,
        after: i64,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Event>>;
    /// All events of one run's thread needed to rebuild the run (the whole thread log).
    async fn run_log(&self, thread: &ThreadId) -> Result<Vec<Event>>;

    /// Takes the thread's lease if it is free, expired, or already ours.
    async fn acquire_lease(&self, thread: &ThreadId, owner: &str, ttl_ms: i64) -> Result<Option<Lease>>;
    async fn renew_lease(&self, lease: &Lease, ttl_ms: i64) -> Result<bool>;
    async fn release_lease(&self, lease: &Lease) -> Result<()>;
    /// Frees every lease whose owner starts with `owner_prefix` (a restarted node's own).
    async fn release_leases_with_prefix(&self, owner_prefix: &str) -> Result<u64>;
    /// Threads with a queued or running run and no live lease.
    async fn runnable_threads(&self, limit: usize) -> Result<Vec<ThreadId>>;
}

/// Durable timers: a due time per key, claimed by exactly one node at a time and finished
/// only by the claim that took it, so each firing is handled once across restarts and nodes.
#[async_trait]
pub trait TimerStore: Send + Sync + 'static {
    /// Sets (or moves) the timer `key` to fire at `due_at`; an existing claim is dropped.
    async fn set_timer(&self, t: NewTimer) -> Result<()>;
    /// Removes the timer; false if there was none.
    async fn cancel_timer(&self, key: &str) -> Result<bool>;
    /// Claims up to `limit` timers due at `now` that nobody holds (or whose holder's claim
    /// expired), for `claim_ttl_ms`.
    async fn claim_due_timers(
        &self,
        owner: &str,
        now: chrono::DateTime<chrono::Utc>,
        claim_ttl_ms: i64,
        limit: usize,
    ) -> Result<Vec<ClaimedTimer>>;
    /// Ends a claimed firing: the timer is deleted, or moved to `next_due_at`. Refused with
    /// [`Error::Stale`] if the claim is no longer the one given (the timer was reset or
    /// claimed again meanwhile).
    async fn finish_timer(
        &self,
        claim: &ClaimedTimer,
        next_due_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<()>;
    /// The timer, if set.
    async fn get_timer(&self, key: &str) -> Result<Option<ClaimedTimer>>;
    /// Drops the claims held by owners whose name starts with `owner_prefix` (a node's
    /// earlier incarnations, at its start), so their timers fire now instead of after the
    /// claim's time-to-live. Returns how many were dropped.
    async fn release_timer_claims_with_prefix(&self, owner_prefix: &str) -> Result<u64>;
    /// The earliest due time of a timer nobody holds (so the scheduler can sleep until it).
    async fn next_due_at(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>>;
    /// How many timers are due at `now` and held by nobody.
    async fn due_timer_count(&self, now: chrono::DateTime<chrono::Utc>) -> Result<u64>;
}
