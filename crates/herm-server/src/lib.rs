//! The HTTP face of herm: REST + SSE per ../shared/API.md, problem+json errors, API keys and
//! scopes, idempotency, and the OpenAPI document generated from the handlers.
//!
//! Architecture invariants: only this crate knows HTTP. Handlers validate shapes at the edge,
//! call one engine method and map its result; they never touch the store and hold no state.

mod anthropic;
pub mod auth;
pub mod error;
mod extract;
mod idem;
pub mod openapi;
mod precondition;
mod routes;
mod sse;
mod telemetry;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use herm_engine::Engine;
use tokio_util::sync::CancellationToken;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    /// Cancelled at shutdown so open SSE streams end and the server can drain.
    pub shutdown: CancellationToken,
    /// The Prometheus recorder's handle, when metrics are recorded (`GET /metrics`).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The Claude Managed Agents facade served under `/anthropic`.
    pub cma: herm_cma::Facade,
}

pub fn router(state: AppState) -> Router {
    routes::routes()
        .nest("/anthropic", anthropic::routes())
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::bad_method)
        .layer(DefaultBodyLimit::disable())
        .route_layer(axum::middleware::from_fn(telemetry::count))
        .with_state(state)
}

/// Serves until `shutdown` is cancelled. Public so tests can bind port 0.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    let app = router(state);
    // SSE frames are small writes: without TCP_NODELAY each can wait for the client's
    // delayed ACK of the one before (tens of milliseconds).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY could not be set");
        }
    });
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}
