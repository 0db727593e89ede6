//! The durable agent engine: the pure run state machine ([`machine`]), the history builder,
//! the tool registry, and the executor that runs threads under a lease and journals every
//! model and tool call to the log before acting on it.
//!
//! The engine is also the application layer: every interface (the HTTP server, the CLI, the
//! scheduler) calls its methods ([`deployments`], [`threads`], [`access`], [`workspace`],
//! submitting, steering, answering, interrupting), and nothing else reads or writes the store.
//!
//! Architecture invariants:
//! - The machine and history modules perform no I/O.
//! - A worker appends only while holding the thread's lease, and every append is conditioned
//!   on the run it works for still being the thread's active run, so a stopped or superseded
//!   worker cannot write.
//! - Nothing is kept in memory between steps that is not in the log: a worker can die at any
//!   instruction and another resumes from the log alone.
//! - Secret values are resolved host-side at the moment of use and pass through the
//!   [`redact::Redactor`] before anything reaches the log or the bus.

pub mod access;
pub mod attachments;
pub mod automations;
pub mod builtin;
pub mod compaction;
mod conditional;
pub mod deployments;
mod documents;
pub mod goals;
pub mod history;
pub mod interrupt;
pub mod machine;
pub mod mcp;
pub mod memory;
pub mod metrics;
mod observe;
pub mod providers;
pub mod redact;
mod revise;
mod sandboxes;
pub mod schedule;
pub mod secrets;
pub mod skills;
pub mod spans;
pub mod steering;
mod submit;
pub mod threads;
pub mod timers;
pub mod tools;
mod usage;
pub mod webhooks;
mod worker;
pub mod workspace;

pub use sandboxes::InUse;
pub use submit::{Origin, Submitted};

use herm_llm::{HttpSettings, RetryPolicy};
use herm_store::bus::Bus;
use herm_store::vault::Vault;
use herm_store::{Store, bus};
use herm_types::*;
use parking_lot::Mutex;
use providers::Providers;
use secrets::Secrets;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Errors of the engine: what an interface (HTTP, CLI, scheduler) must tell its caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(herm_store::Error),
    #[error(transparent)]
    Sandbox(#[from] herm_sandbox::Error),
    #[error("model not configured: {0}")]
    ModelNotConfigured(String),
    /// The named thing does not exist (or belongs to another deployment).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is malformed or breaks a rule of its own.
    #[error("{0}")]
    Validation(String),
    /// Fields that are invalid, each with its path.
    #[error("the request has invalid fields")]
    Invalid(Vec<herm_types::config::FieldError>),
    /// Secret references that do not resolve.
    #[error("a secret reference does not resolve")]
    InvalidSecretRef(Vec<herm_types::config::FieldError>),
    /// A skill that could not be fetched or parsed.
    #[error("a skill could not be fetched or parsed")]
    InvalidSkill(herm_types::config::FieldError),
    /// Fields set to values this server cannot act on yet (accepted-and-ignored is never
    /// an option).
    #[error("unsupported configuration")]
    Unsupported(Vec<herm_types::config::FieldError>),
    /// An attachment the model cannot take.
    #[error("{0}")]
    UnsupportedAttachment(String),
    /// An attachment whose bytes could not be had or are not what they must be.
    #[error("{0}")]
    InvalidAttachment(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The caller's `If-Match` revision is not the current one.
    #[error("the resource changed since the given revision")]
    PreconditionFailed,
    /// Revoking this key would leave no live admin key.
    #[error("this is the last active admin key")]
    LastAdminKey,
    /// The deployment has no sandbox on this node.
    #[error("this deployment has no sandbox on this server")]
    NoSandbox,
    /// Sealing a secret failed (a broken vault, never a client mistake).
    #[error("the vault could not seal the value")]
    Vault,
    #[error("deployment is not ready")]
    NotReady,
    #[error("a run is active on this thread")]
    ThreadBusy,
    #[error("the thread is too busy to accept the message now; retry")]
    Contended,
    #[error("no run is active on this thread")]
    NoActiveRun,
    #[error("the request is not pending")]
    NotPending,
    #[error("the edited input does not match the tool's schema")]
    InvalidInput(Vec<herm_types::config::FieldError>),
    #[error("{0}")]
    WrongReply(&'static str),
    /// The credential given (a webhook trigger's token) is not valid.
    #[error("invalid or missing token")]
    Unauthorized,
    /// A goal's judge could not be asked (no model, or the provider refused).
    #[error("{0}")]
    Unjudged(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<herm_store::Error> for Error {
    fn from(e: herm_store::Error) -> Self {
        match e {
            herm_store::Error::NotFound => Error::NotFound("resource"),
            other => Error::Store(other),
        }
    }
}

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Stable name of this node; leases are owned by `node_id:incarnation`.
    pub node_id: String,
    /// Free this node's leases from earlier incarnations at start (safe only when this
    /// process holds the data directory exclusively, as the SQLite store does).
    pub reclaim_own_leases: bool,
    pub lease_ttl: Duration,
    /// How often to look for runnable threads with no live lease.
    pub scan_interval: Duration,
    pub retry: RetryPolicy,
    pub http: HttpSettings,
    pub max_tokens: u32,
    /// Model for deployments that name none.
    pub default_model: Option<String>,
    /// Step limit for deployments that set none.
    pub default_max_steps: u32,
    /// Sandbox defaults for deployments that set none.
    pub sandbox: SandboxDefaults,
    pub mcp: mcp::McpOptions,
    /// Where the scheduler and the timers read the time.
    pub clock: Clock,
    /// Memory: what a run is shown, when threads are observed and deployments dream, when
    /// conversations are compacted.
    pub memory: memory::load::MemoryOptions,
    /// How attachments sent as URLs are fetched.
    pub fetch: attachments::fetch::FetchOptions,
    /// How webhook deliveries are made and retried.
    pub webhooks: webhooks::WebhookOptions,
}

/// Where the engine reads the current time for timers and schedules.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    #[default]
    System,
    /// Tests: the time written in this file (RFC 3339), the system time while it has none.
    File(std::path::PathBuf),
}

/// Sandbox settings a deployment does not choose itself.
#[derive(Clone, Debug)]
pub struct SandboxDefaults {
    pub image: String,
    pub memory_mb: u64,
    pub cpus: f64,
    pub pids_limit: i64,
    /// Longest a `shell` call may run when the model asks for none.
    pub shell_timeout: Duration,
    /// A sandbox unused this long is stopped (it starts again on demand).
    pub idle_stop: Duration,
}

impl Default for SandboxDefaults {
    fn default() -> Self {
        Self {
            image: "herm-sandbox:default".into(),
            memory_mb: 1024,
            cpus: 1.0,
            pids_limit: 256,
            shell_timeout: Duration::from_secs(120),
            idle_stop: Duration::from_secs(15 * 60),
        }
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            node_id: "local".into(),
            reclaim_own_leases: true,
            lease_ttl: Duration::from_secs(30),
            scan_interval: Duration::from_secs(2),
            retry: RetryPolicy::default(),
            http: HttpSettings::default(),
            max_tokens: 4096,
            default_model: None,
            default_max_steps: 100,
            sandbox: SandboxDefaults::default(),
            mcp: mcp::McpOptions::default(),
            clock: Clock::System,
            memory: Default::default(),
            fetch: Default::default(),
            webhooks: Default::default(),
        }
    }
}

/// Base64 of recently shown attachments kept in memory, across deployments.
const MEDIA_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// A running worker for one thread.
struct Slot {
    /// Set when new work arrived while the worker was running: it looks again before exiting.
    rewake: bool,
    cancel: CancellationToken,
}

/// Cheap-to-clone handle to the engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    bus: Bus,
    secrets: Secrets,
    providers: Providers,
    opts: EngineOptions,
    owner: String,
    workers: Mutex<HashMap<ThreadId, Slot>>,
    http: reqwest::Client,
    mcp: mcp::McpHub,
    /// Where tools come from, in the order the model is offered them.
    sources: Vec<Box<dyn tools::source::ToolSource>>,
    sandbox: Option<Arc<dyn herm_sandbox::Sandbox>>,
    usage: Arc<sandboxes::Usage>,
    shutdown: CancellationToken,
    tasks: tokio_util::task::TaskTracker,
    /// Wakes the timer loop when a timer is set (it may be due before the loop's next look).
    timer_wake: tokio::sync::Notify,
    /// Threads given runs by timer handlers, woken when their batch is fired.
    deferred_wakes: Mutex<Vec<ThreadId>>,
    /// One memory file sync at a time per deployment.
    memory_sync: Mutex<HashMap<DeploymentId, Arc<tokio::sync::Mutex<()>>>>,
    fetcher: attachments::fetch::Fetcher,
    media: attachments::MediaCache,
    /// Wakes the webhook dispatcher when an event a webhook may want commits.
    webhook_wake: Arc<tokio::sync::Notify>,
    /// Who fires the timers a facade set (see [`timers::FacadeTimers`]).
    facade_timers: Mutex<Option<Arc<dyn timers::FacadeTimers>>>,
    /// Thread logs between worker sessions.
    logs: worker::logs::LogCache,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Bus,
        vault: Arc<Vault>,
        providers: Providers,
        sandbox: Option<Arc<dyn herm_sandbox::Sandbox>>,
        opts: EngineOptions,
    ) -> Self {
        let owner = format!("{}:{}", opts.node_id, EventId::new().as_str().trim_start_matches("evt_"));
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build().unwrap_or_default();
        let secrets = Secrets::new(store.clone(), vault);
        let mcp = mcp::McpHub::new(opts.mcp.clone(), secrets.clone(), http.clone());
        let opts_fetch = opts.fetch.clone();
        let webhook_wake = Arc::new(tokio::sync::Notify::new());
        bus.set_tap(observe::tap(webhook_wake.clone()));
        Self {
            inner: Arc::new(Inner {
                secrets,
                mcp,
                sources: vec![
                    Box::new(builtin::SandboxTools),
                    Box::new(tools::connectors::ConnectorTools),
                    Box::new(tools::agent::AgentTools),
                    Box::new(mcp::McpTools),
                    Box::new(automations::tools::AutomationTools),
                    Box::new(goals::tools::GoalTools),
                    Box::new(memory::tools::MemoryTools),
                    Box::new(memory::mounts::MountTools),
                ],
                store,
                bus,
                providers,
                opts,
                owner,
                workers: Mutex::new(HashMap::new()),
                http,
                sandbox,
                usage: Arc::default(),
                shutdown: CancellationToken::new(),
                tasks: tokio_util::task::TaskTracker::new(),
                timer_wake: tokio::sync::Notify::new(),
                facade_timers: Mutex::new(None),
                deferred_wakes: Mutex::new(Vec::new()),
                memory_sync: Mutex::new(HashMap::new()),
                fetcher: attachments::fetch::Fetcher::new(opts_fetch),
                media: attachments::MediaCache::new(MEDIA_CACHE_BYTES),
                webhook_wake,
                logs: Default::default(),
            }),
        }
    }

    /// The store, for the engine's own modules only: every interface goes through the
    /// engine's methods (the one-door rule), so this is not public.
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }
    pub(crate) fn bus(&self) -> &bus::Bus {
        &self.inner.bus
    }
    pub fn providers(&self) -> &Providers {
        &self.inner.providers
    }
    pub fn secrets(&self) -> &Secrets {
        &self.inner.secrets
    }
    /// This incarnation's owner name (`node_id:incarnation`) for leases and timer claims.
    pub(crate) fn owner(&self) -> &str {
        &self.inner.owner
    }
    pub fn options(&self) -> &EngineOptions {
        &self.inner.opts
    }
    pub(crate) fn inner_fetcher(&self) -> &attachments::fetch::Fetcher {
        &self.inner.fetcher
    }
    pub(crate) fn media_cache(&self) -> &attachments::MediaCache {
        &self.inner.media
    }

    /// The time timers and schedules go by (the system clock unless a test clock is set).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        match &self.inner.opts.clock {
            Clock::System => now(),
            Clock::File(path) => std::fs::read_to_string(path)
                .ok()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s.trim()).ok())
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_else(now),
        }
    }

    /// Resumes what the log says is unfinished and starts the background scanner and the
    /// timer loop.
    pub async fn start(&self) -> Result<()> {
        if self.inner.opts.reclaim_own_leases {
            let n = self.inner.store.release_leases_with_prefix(&format!("{}:", self.inner.opts.node_id)).await?;
            if n > 0 {
                tracing::info!(leases = n, "reclaimed leases of an earlier incarnation of this node");
            }
            let n = self.inner.store.release_timer_claims_with_prefix(&format!("{}:", self.inner.opts.node_id)).await?;
            if n > 0 {
                tracing::info!(timers = n, "released timer claims of an earlier incarnation of this node");
            }
        }
        self.reconcile_sandboxes().await;
        for dep in self.inner.store.provisioning_deployments().await? {
            self.provision(dep);
        }
        self.scan().await?;
        let timers = self.clone();
        self.inner.tasks.spawn(async move { timers.timer_loop().await });
        let hooks = self.clone();
        self.inner.tasks.spawn(async move { hooks.webhook_loop().await });
        let me = self.clone();
        self.inner.tasks.spawn(async move {
            let mut tick = tokio::time::interval(me.inner.opts.scan_interval);
            loop {
                tokio::select! {
                    _ = me.inner.shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(e) = me.scan().await {
                            tracing::warn!(error = %e, "scan for runnable threads failed");
                        }
                        me.inner.mcp.close_idle();
                    }
                }
            }
        });
        Ok(())
    }

    async fn scan(&self) -> Result<()> {
        for t in self.inner.store.runnable_threads(1000).await? {
            self.wake(t);
        }
        Ok(())
    }

    /// A run of a proactive loop ended or waits for a person (its worker says so): the loop
    /// reacts now rather than at its next check.
    pub(crate) async fn run_status_changed(&self, run: &RunId) {
        let Ok(Some(r)) = self.inner.store.get_run(run).await else { return };
        match r.kind {
            RunKind::Automation => self.automation_run_ended(&r).await,
            RunKind::Goal => self.goal_run_changed(&r).await,
            _ => {}
        }
    }

    /// Makes sure a worker looks at the thread soon.
    pub fn wake(&self, thread: ThreadId) {
        if self.inner.shutdown.is_cancelled() {
            return;
        }
        let cancel = {
            let mut w = self.inner.workers.lock();
            if let Some(slot) = w.get_mut(&thread) {
                slot.rewake = true;
                return;
            }
            let cancel = self.inner.shutdown.child_token();
            w.insert(thread.clone(), Slot { rewake: false, cancel: cancel.clone() });
            cancel
        };
        let me = self.clone();
        self.inner.tasks.spawn(async move { worker::run(me, thread, cancel).await });
    }

    /// Stops the worker of a thread at its next await point, if one runs here.
    pub fn cancel_worker(&self, thread: &ThreadId) {
        if let Some(s) = self.inner.workers.lock().get(thread) {
            s.cancel.cancel();
        }
    }

    /// Called by a worker about to exit. `Some(token)` means more work arrived: keep going
    /// under the returned (fresh, if the old one was cancelled) token.
    fn worker_should_continue(&self, thread: &ThreadId) -> Option<CancellationToken> {
        let mut w = self.inner.workers.lock();
        match w.get_mut(thread) {
            Some(s) if s.rewake && !self.inner.shutdown.is_cancelled() => {
                s.rewake = false;
                if s.cancel.is_cancelled() {
                    s.cancel = self.inner.shutdown.child_token();
                }
                Some(s.cancel.clone())
            }
            _ => {
                w.remove(thread);
                None
            }
        }
    }

    /// Number of threads with a worker in this process.
    pub fn active_workers(&self) -> usize {
        self.inner.workers.lock().len()
    }

    /// Finishes provisioning a deployment in the background: its sandbox is created and
    /// started, and only then is it `ready` (or `error`, with the reason).
    pub fn provision(&self, dep: DeploymentId) {
        let me = self.clone();
        self.inner.tasks.spawn(async move {
            let outcome = me.provision_sandbox(&dep).await;
            let (status, error) = match outcome {
                Ok(()) => (DeploymentStatus::Ready, None),
                Err(e) => {
                    tracing::warn!(deployment = %dep, error = %e, "provisioning failed");
                    (DeploymentStatus::Error, Some(e))
                }
            };
            if let Err(e) = me.inner.store.set_deployment_status(&dep, status, error).await {
                tracing::warn!(deployment = %dep, error = %e, "could not record the provisioning outcome");
            }
        });
    }

    async fn provision_sandbox(&self, dep: &DeploymentId) -> Result<(), String> {
        let Some(d) = self.inner.store.get_deployment(dep).await.map_err(|e| e.to_string())? else { return Ok(()) };
        match (&self.inner.sandbox, d.spec.sandbox.enabled) {
            (Some(sb), true) => sb.ensure(dep, &self.sandbox_config(&d.spec)).await.map_err(|e| e.to_string()),
            // Without a backend the deployment runs without sandbox tools (logged at start).
            _ => Ok(()),
        }
    }

    /// The HTTP client for connector tools and skill fetches.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The sandbox backend, if one is available on this node.
    pub fn sandbox(&self) -> Option<&Arc<dyn herm_sandbox::Sandbox>> {
        self.inner.sandbox.as_ref()
    }

    /// How a deployment's sandbox is built.
    pub fn sandbox_config(&self, spec: &herm_types::config::DeploymentSpec) -> herm_sandbox::SandboxConfig {
        let d = &self.inner.opts.sandbox;
        herm_sandbox::SandboxConfig {
            image: spec.sandbox.image.clone().unwrap_or_else(|| d.image.clone()),
            network: spec.sandbox.network != "off",
            memory_mb: spec.sandbox.memory_mb.unwrap_or(d.memory_mb),
            cpus: spec.sandbox.cpus.unwrap_or(d.cpus),
            pids_limit: d.pids_limit,
        }
    }

    /// The tools of a deployment on this node, from every tool source (sandbox tools only
    /// where a sandbox can run; MCP servers connected on first use, then cached).
    pub async fn tools(&self, dep: &DeploymentId, spec: &herm_types::config::DeploymentSpec) -> tools::ToolSet {
        self.tools_and_outages(dep, spec, None).await.tools
    }

    /// [`Self::tools`] as a run of `kind` sees them (all of them for `None`), the parts of
    /// sources that offer nothing right now, with the reason, and whether any may offer
    /// otherwise at the next look.
    pub async fn tools_and_outages(
        &self,
        dep: &DeploymentId,
        spec: &herm_types::config::DeploymentSpec,
        kind: Option<RunKind>,
    ) -> tools::Offered {
        let (mut all, mut outages, mut live) = (Vec::new(), Vec::new(), false);
        for source in &self.inner.sources {
            let offer = source.offer(self, dep, spec).await;
            all.extend(offer.tools.into_iter().filter(|t| kind.is_none_or(|k| t.serves(k))));
            outages.extend(offer.unavailable);
            live |= offer.live;
        }
        tools::Offered { tools: tools::ToolSet::new(spec, all), outages, live }
    }

    /// The MCP client of this node.
    pub fn mcp(&self) -> &mcp::McpHub {
        &self.inner.mcp
    }

    /// Starts the deployment's sandbox if needed and returns the backend.
    pub async fn running_sandbox(
        &self,
        dep: &DeploymentId,
        spec: &herm_types::config::DeploymentSpec,
    ) -> Result<Arc<dyn herm_sandbox::Sandbox>, herm_sandbox::Error> {
        let sb = match (&self.inner.sandbox, spec.sandbox.enabled) {
            (Some(sb), true) => sb.clone(),
            _ => return Err(herm_sandbox::Error::Failed("this deployment has no sandbox on this node".into())),
        };
        sb.ensure(dep, &self.sandbox_config(spec)).await?;
        Ok(sb)
    }

    /// Removes a deleted deployment's sandbox.
    pub async fn destroy_sandbox(&self, dep: &DeploymentId, keep_workspace: bool) {
        if let Some(sb) = &self.inner.sandbox
            && let Err(e) = sb.destroy(dep, keep_workspace).await
        {
            tracing::warn!(deployment = %dep, error = %e, "could not remove the sandbox");
        }
    }

    /// Stops every worker and waits for them (their leases are released), then lets the
    /// sandbox backend release what it holds for no deployment (its pool).
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        if let Some(sb) = &self.inner.sandbox {
            sb.shutdown().await;
        }
    }
}
