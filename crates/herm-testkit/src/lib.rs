//! herm's test kit: a fake model server that speaks the Anthropic Messages and OpenAI Chat
//! Completions wire formats exactly (streaming included) and counts what it receives, a
//! counting HTTP connector for `http_tools`, a webhook receiver, an OTLP trace receiver, a harness that runs the real `herm` binary, and
//! real MCP peers ([`mcp_peers`]).
//!
//! Test code: `unwrap` and `expect` are fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod connector;
mod fake_model;
mod herm;
pub mod mcp_peers;
mod otlp;
mod receiver;
mod sse;

pub use connector::Connector;
pub use fake_model::{Attempt, FakeModel, Reply, TOO_LONG, Wire};
pub use herm::{Herm, HermOptions};
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use receiver::{Received, Receiver};
pub use sse::{Frame, SseReader};

/// Serves `app` on a free loopback port for the rest of the test; its address.
pub(crate) async fn serve_local(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}
