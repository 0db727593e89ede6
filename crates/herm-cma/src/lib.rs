//! The Claude Managed Agents facade: CMA's agents, environments, vaults, sessions and session
//! events over herm's engine, so an app written against Anthropic's hosted agent API runs on
//! herm by changing its base URL (the server mounts it under `/anthropic`).
//!
//! What herm has no concept of (versioned agents, environments, vaults, the session records)
//! is kept as facade documents through the engine; everything that runs is herm's own: a
//! session is a thread of a herm deployment made from the session's pinned agent version,
//! its environment and its vaults' credentials (by default one deployment per session: its
//! own sandbox and files). Session events are a projection of the thread's log
//! ([`project`]), the same for the list and the stream, with herm's event ids.
//!
//! Architecture invariants:
//! - The facade calls the engine only; it never touches the store or HTTP.
//! - The mapping ([`spec`], [`tools`]) and the projection ([`project`]) are pure and
//!   table-tested.
//! - A field the facade cannot honour is refused with [`Error::Unsupported`] naming the
//!   feature; nothing is silently dropped or widened.
//! - A credential's token goes straight into herm's vault; the facade's documents hold its
//!   secret id only.

pub mod agents;
pub mod deployments;
pub mod dreams;
pub mod environments;
pub mod events;
pub mod files;
pub mod memory_stores;
pub mod project;
mod resources;
pub mod session_resources;
mod session_update;
pub mod sessions;
pub mod skills;
pub mod spec;
pub mod stream;
pub mod tools;
pub mod vaults;
mod wire;

pub use wire::{Page, PageQuery};

use herm_engine::Engine;

/// The facade's settings (`[anthropic]` in the server's configuration).
#[derive(Clone, Debug)]
pub struct Options {
    /// The herm provider a bare model id (`claude-sonnet-4-5`) resolves through.
    pub default_provider: String,
    /// When set, sessions whose `metadata` carries this key share one herm deployment per
    /// (agent version, environment, key value): memory and files persist across that
    /// customer's sessions. Unset (the default): one deployment per session.
    pub share_by_metadata_key: Option<String>,
    /// How long sending to a session waits for its new deployment's sandbox.
    pub ready_timeout: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            default_provider: "anthropic".into(),
            share_by_metadata_key: None,
            ready_timeout: std::time::Duration::from_secs(120),
        }
    }
}

/// The facade: the engine and its settings. Cheap to clone.
#[derive(Clone)]
pub struct Facade {
    engine: Engine,
    options: std::sync::Arc<Options>,
}

impl Facade {
    /// The facade over `engine`; it fires its scheduled deployments' timers from now on.
    pub fn new(engine: Engine, options: Options) -> Self {
        let f = Self { engine, options: std::sync::Arc::new(options) };
        f.engine.set_facade_timers(std::sync::Arc::new(deployments::Timers(f.clone())));
        f
    }
}

/// The facade's errors; the server renders them in CMA's error shape.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] herm_engine::Error),
    /// A malformed request (400 `invalid_request_error`).
    #[error("{0}")]
    Invalid(String),
    /// A feature herm does not offer through this facade (named in the message).
    #[error("{0}")]
    Unsupported(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A state conflict that retrying will not fix (409, `x-should-retry: false`).
    #[error("{0}")]
    Conflict(String),
    /// A memory precondition (`content_sha256`) that no longer holds (409).
    #[error("{0}")]
    Precondition(String),
    /// A memory path another memory of the store holds (409).
    #[error("{0}")]
    PathConflict(String),
    /// Something herm failed at, never the caller's mistake (500).
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn invalid(m: impl Into<String>) -> Error {
    Error::Invalid(m.into())
}

/// For `map_err`: a reference in a request body that names nothing is the request's mistake
/// (400 saying what), not a missing resource of the route (404).
pub(crate) fn missing(what: String) -> impl FnOnce(Error) -> Error {
    move |e| match e {
        Error::NotFound(_) => invalid(format!("{what} not found")),
        e => e,
    }
}

pub(crate) fn unsupported(m: impl Into<String>) -> Error {
    Error::Unsupported(m.into())
}
