//! Shared vocabulary of herm: typed IDs, the event log record, run/thread states, deployment
//! configuration and the public wire types. This crate performs no I/O.

pub mod api;
pub mod attachment;
pub mod config;
pub mod event;
pub mod ids;
pub mod memory;
pub mod proactive;
pub mod status;
pub mod trace;
pub mod webhook;

pub use event::{Event, EventKind, NewEvent};
pub use ids::*;
pub use status::*;

/// Current time in UTC, truncated to microseconds so it survives a round trip through storage.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::{SubsecRound, Utc};
    Utc::now().trunc_subsecs(6)
}
