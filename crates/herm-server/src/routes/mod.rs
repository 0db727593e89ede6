//! Route table; one file per resource.

pub mod attachments;
pub mod automations;
pub mod console;
pub mod customers;
pub mod deployments;
pub mod dreams;
pub mod events;
pub mod files;
pub mod goals;
pub mod health;
pub mod keys;
pub mod memories;
pub mod messages;
pub mod metrics;
pub mod providers;
pub mod secrets;
pub mod skills;
pub mod threads;
pub mod tools;
pub mod usage;
pub mod webhooks;

use crate::AppState;
use axum::Router;
use axum::routing::{delete, get, patch, post, put};

pub fn routes() -> Router<AppState> {
    let thread_routes = Router::new()
        .route("/{thread_id}/events", get(events::list).post(messages::user_events))
        .route("/{thread_id}/events/stream", get(events::thread_stream));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::page))
        .route("/v1/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/v1/webhooks/{webhook_id}", get(webhooks::get).delete(webhooks::delete))
        .route("/v1/webhooks/{webhook_id}/deliveries", get(webhooks::deliveries))
        .route("/v1/customers/{customer_id}/limits", get(customers::get).put(customers::put))
        .route("/v1/openapi.json", get(crate::openapi::serve))
        .route("/console", get(console::index))
        .route("/console/{name}", get(console::script))
        .route("/console/app.css", get(console::styles))
        .route("/v1/me", get(keys::me))
        .route("/v1/api-keys", post(keys::create).get(keys::list))
        .route("/v1/api-keys/{key_id}", delete(keys::revoke))
        .route("/v1/secrets", post(secrets::create).get(secrets::list))
        .route("/v1/secrets/{secret_id}", delete(secrets::delete))
        .route("/v1/providers", get(providers::list))
        .route("/v1/providers/{name}", put(providers::put).delete(providers::delete))
        .route("/v1/deployments", post(deployments::create).get(deployments::list))
        .route(
            "/v1/deployments/{deployment_id}",
            get(deployments::get).patch(deployments::patch).delete(deployments::delete),
        )
        .route("/v1/deployments/{deployment_id}/messages", post(messages::send))
        .route("/v1/deployments/{deployment_id}/usage", get(usage::get))
        .route("/v1/deployments/{deployment_id}/attachments/{attachment_id}", get(attachments::content))
        .route("/v1/deployments/{deployment_id}/threads", post(threads::create).get(threads::list))
        .route(
            "/v1/deployments/{deployment_id}/threads/{thread_id}",
            get(threads::get).patch(threads::patch).delete(threads::delete),
        )
        .route("/v1/deployments/{deployment_id}/runs/{run_id}", get(threads::get_run))
        .route("/v1/deployments/{deployment_id}/events", get(events::deployment_stream))
        .route("/v1/deployments/{deployment_id}/files", get(files::list).put(files::write).delete(files::delete))
        .route("/v1/deployments/{deployment_id}/files/content", get(files::read))
        .route("/v1/deployments/{deployment_id}/skills", post(skills::create).get(skills::list))
        .route(
            "/v1/deployments/{deployment_id}/skills/{skill_id}",
            get(skills::get).put(skills::put).delete(skills::delete),
        )
        .route("/v1/deployments/{deployment_id}/automations", post(automations::create).get(automations::list))
        .route(
            "/v1/deployments/{deployment_id}/automations/{automation_id}",
            get(automations::get).patch(automations::patch).delete(automations::delete),
        )
        .route("/v1/deployments/{deployment_id}/automations/{automation_id}/run", post(automations::run_now))
        .route("/v1/deployments/{deployment_id}/automations/{automation_id}/pause", post(automations::pause))
        .route("/v1/deployments/{deployment_id}/automations/{automation_id}/resume", post(automations::resume))
        .route("/v1/deployments/{deployment_id}/automations/{automation_id}/firings", get(automations::firings))
        .route("/v1/triggers/{automation_id}", post(automations::trigger))
        .route("/v1/deployments/{deployment_id}/goals", post(goals::create).get(goals::list))
        .route("/v1/deployments/{deployment_id}/goals/{goal_id}", get(goals::get))
        .route("/v1/deployments/{deployment_id}/goals/{goal_id}/cancel", post(goals::cancel))
        .route("/v1/deployments/{deployment_id}/memories", post(memories::create).get(memories::list))
        .route(
            "/v1/deployments/{deployment_id}/memories/{memory_id}",
            get(memories::get).patch(memories::patch).delete(memories::delete),
        )
        .route("/v1/deployments/{deployment_id}/memories/{memory_id}/versions", get(memories::versions))
        .route("/v1/deployments/{deployment_id}/memories/{memory_id}/versions/{version}/redact", post(memories::redact))
        .route("/v1/deployments/{deployment_id}/dreams", post(dreams::create).get(dreams::list))
        .route("/v1/deployments/{deployment_id}/dreams/{dream_id}", get(dreams::get))
        .route("/v1/deployments/{deployment_id}/tools", get(tools::list))
        .route("/v1/deployments/{deployment_id}/tools/{name}", patch(tools::patch))
        .nest("/v1/threads", thread_routes.clone())
        .nest("/v1/sessions", thread_routes)
}
