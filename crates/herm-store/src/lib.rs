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
mod records;
pub mod sqlite;
pub mod vault;

pub use records::*;

use async_trait::async_trait;
use herm_types::config::{DeploymentSpec, ProviderSpec};
use herm_types::*;
use std::sync::Arc;

/// Errors of the storage layer.
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
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
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

/// The durable store. Object-safe so callers hold `Arc<dyn Store>`; the SQLite and
/// (future) PostgreSQL implementations pass the same generic test-suite.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- API keys ---
    async fn insert_api_key(&self, key: ApiKeyRecord) -> Result<()>;
    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>>;
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>>;
    /// Returns false when no live key had that id.
    async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<bool>;

    // --- secrets (ciphertext only) ---
    async fn insert_secret(&self, s: SecretRecord) -> Result<()>;
    async fn get_secret(&self, id: &SecretId) -> Result<Option<SecretRecord>>;
    async fn list_secrets(&self) -> Result<Vec<SecretRecord>>;
    async fn delete_secret(&self, id: &SecretId) -> Result<bool>;

    // --- providers ---
    async fn put_provider(&self, name: &str, spec: &ProviderSpec) -> Result<()>;
    async fn list_providers(&self) -> Result<Vec<(String, ProviderSpec)>>;
    async fn delete_provider(&self, name: &str) -> Result<bool>;

    // --- deployments ---
    /// Creates the deployment and its default thread atomically.
    async fn create_deployment(&self, d: DeploymentRecord) -> Result<()>;
    async fn get_deployment(&self, id: &DeploymentId) -> Result<Option<DeploymentRecord>>;
    async fn list_deployments(&self, q: DeploymentQuery) -> Result<Vec<DeploymentRecord>>;
    async fn update_deployment_spec(&self, id: &DeploymentId, spec: &DeploymentSpec) -> Result<()>;
    async fn set_deployment_status(
        &self,
        id: &DeploymentId,
        status: DeploymentStatus,
        error: Option<String>,
    ) -> Result<()>;
    /// Deployments still `provisioning` (to finish after a restart).
    async fn provisioning_deployments(&self) -> Result<Vec<DeploymentId>>;

    // --- threads and runs ---
    async fn create_thread(&self, t: NewThread) -> Result<()>;
    async fn get_thread(&self, id: &ThreadId) -> Result<Option<ThreadRecord>>;
    async fn list_threads(&self, q: ThreadQuery) -> Result<Vec<ThreadRecord>>;
    async fn set_thread_title(&self, id: &ThreadId, title: &str) -> Result<bool>;
    async fn delete_thread(&self, id: &ThreadId) -> Result<bool>;
    async fn get_run(&self, id: &RunId) -> Result<Option<RunRecord>>;
    /// The oldest non-terminal run of the thread, if any.
    async fn active_run(&self, thread: &ThreadId) -> Result<Option<RunRecord>>;

    // --- the log ---
    /// Appends events atomically (all or none) and publishes them after commit.
    async fn append(&self, a: Append) -> Result<Vec<Arc<Event>>>;
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

    // --- leases ---
    /// Takes the thread's lease if it is free, expired, or already ours.
    async fn acquire_lease(&self, thread: &ThreadId, owner: &str, ttl_ms: i64) -> Result<Option<Lease>>;
    async fn renew_lease(&self, lease: &Lease, ttl_ms: i64) -> Result<bool>;
    async fn release_lease(&self, lease: &Lease) -> Result<()>;
    /// Frees every lease whose owner starts with `owner_prefix` (a restarted node's own).
    async fn release_leases_with_prefix(&self, owner_prefix: &str) -> Result<u64>;
    /// Threads with a queued or running run and no live lease.
    async fn runnable_threads(&self, limit: usize) -> Result<Vec<ThreadId>>;

    // --- idempotency ---
    async fn idempotency_begin(&self, scope: &str, key: &str, fingerprint: &str) -> Result<IdemBegin>;
    async fn idempotency_finish(&self, scope: &str, key: &str, status: u16, body: &[u8]) -> Result<()>;
    async fn idempotency_abort(&self, scope: &str, key: &str) -> Result<()>;
}
