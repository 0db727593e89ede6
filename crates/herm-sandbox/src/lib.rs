//! Sandboxes: one isolated machine per deployment with a persistent `/workspace`, where the
//! agent's shell and file tools run. The [`Sandbox`] trait is what the engine uses; the
//! Docker backend ([`docker::DockerSandbox`]) and the namespaces backend
//! ([`namespaces::NamespacesSandbox`]) implement it. File operations
//! ([`files`]) are built on `exec` so every backend confines paths the same way.
//!
//! [`jail`] builds the jailed command of a host-side helper (a stdio MCP server), so that
//! starting processes stays in this crate.
//!
//! Architecture invariants: only this crate starts processes (enforced by clippy's
//! `disallowed-methods` in every other crate); nothing of herm's own
//! (data directory, database, master key, secret values, environment) is ever passed into a
//! sandbox; every path from outside is confined to `/workspace` inside the sandbox, after
//! symlinks are resolved there.

pub mod docker;
pub mod files;
mod helper;
pub mod host;
pub mod jail;
pub mod media;
pub mod namespaces;
mod netns;
mod seccomp;

use async_trait::async_trait;
use herm_types::DeploymentId;
use std::time::Duration;

pub const WORKSPACE: &str = "/workspace";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sandbox engine error: {0}")]
    Engine(String),
    #[error("the sandbox image `{0}` is missing; build it with `herm sandbox build-image`")]
    ImageMissing(String),
    #[error("path escapes the workspace: {0}")]
    PathEscape(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a deployment's sandbox is built.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxConfig {
    pub image: String,
    pub network: bool,
    pub memory_mb: u64,
    pub cpus: f64,
    pub pids_limit: i64,
}

/// One command to run in the sandbox (through `bash -c`).
#[derive(Clone, Debug, Default)]
pub struct ExecRequest {
    pub command: String,
    /// Working directory inside the sandbox (default `/workspace`).
    pub cwd: Option<String>,
    pub timeout: Duration,
    /// Bytes written to the command's standard input.
    pub stdin: Option<Vec<u8>>,
}

/// Which stream a chunk of output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What a command did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecOutput {
    /// None when the command was killed (timeout, memory limit, interrupt).
    pub exit_code: Option<i64>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
}

/// Receives output as it is produced.
pub type OutputSink<'a> = dyn FnMut(Stream, &[u8]) + Send + 'a;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Missing,
    Stopped,
    Running,
}

#[async_trait]
pub trait Sandbox: Send + Sync {
    /// The backend's name as a deployment's `sandbox.type` names it (`docker`, `namespaces`).
    fn backend(&self) -> &'static str;
    /// Creates the sandbox if missing and starts it if stopped.
    async fn ensure(&self, dep: &DeploymentId, cfg: &SandboxConfig) -> Result<()>;
    /// Runs a command; the sandbox must exist (call `ensure` first).
    async fn exec(&self, dep: &DeploymentId, req: ExecRequest, out: &mut OutputSink<'_>) -> Result<ExecOutput>;
    async fn stop(&self, dep: &DeploymentId) -> Result<()>;
    /// Removes the sandbox; the workspace survives unless `keep_workspace` is false.
    async fn destroy(&self, dep: &DeploymentId, keep_workspace: bool) -> Result<()>;
    async fn status(&self, dep: &DeploymentId) -> Result<Status>;
    /// Every deployment that has a sandbox here (for reconciliation).
    async fn list(&self) -> Result<Vec<DeploymentId>>;
    /// Releases what the backend holds for no deployment (a pool of ready sandboxes) when
    /// herm stops.
    async fn shutdown(&self) {}
}
