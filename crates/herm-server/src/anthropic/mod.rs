//! The Claude Managed Agents API under `/anthropic` (`base_url = "http://herm:8080/anthropic"`
//! in Anthropic's SDKs): routes onto [`herm_cma::Facade`], CMA's error and page shapes, its
//! query conventions (`statuses[]=…`, `created_at[gte]=…`), `x-api-key` as well as
//! `Authorization: Bearer`, and the session stream as SSE. `anthropic-version` and
//! `anthropic-beta` are accepted and ignored.

mod deployments;
mod dreams;
mod errors;
mod files;
mod memory;
mod query;
mod resources;
mod routes;
mod skills;
mod stream;
mod upload;

use crate::AppState;
use axum::Router;
use axum::routing::{get, post};

pub fn routes() -> Router<AppState> {
    use routes::*;
    Router::new()
        .route("/v1/agents", post(create_agent).get(list_agents))
        .route("/v1/agents/{id}", get(get_agent).post(update_agent))
        .route("/v1/agents/{id}/archive", post(archive_agent))
        .route("/v1/agents/{id}/versions", get(agent_versions))
        .route("/v1/environments", post(create_environment).get(list_environments))
        .route("/v1/environments/{id}", get(get_environment).post(update_environment).delete(delete_environment))
        .route("/v1/environments/{id}/archive", post(archive_environment))
        .route("/v1/vaults", post(create_vault).get(list_vaults))
        .route("/v1/vaults/{id}", get(get_vault).post(update_vault).delete(delete_vault))
        .route("/v1/vaults/{id}/archive", post(archive_vault))
        .route("/v1/vaults/{id}/credentials", post(create_credential).get(list_credentials))
        .route(
            "/v1/vaults/{id}/credentials/{credential_id}",
            get(get_credential).post(update_credential).delete(delete_credential),
        )
        .route("/v1/vaults/{id}/credentials/{credential_id}/archive", post(archive_credential))
        .route("/v1/sessions", post(create_session).get(list_sessions))
        .route("/v1/sessions/{id}", get(get_session).post(update_session).delete(delete_session))
        .route("/v1/sessions/{id}/archive", post(archive_session))
        .route("/v1/sessions/{id}/events", get(list_events).post(send_events))
        .route("/v1/sessions/{id}/events/stream", get(stream::open))
        .route("/v1/memory_stores", post(memory::create_store).get(memory::list_stores))
        .route("/v1/memory_stores/{id}", get(memory::get_store).post(memory::update_store).delete(memory::delete_store))
        .route("/v1/memory_stores/{id}/archive", post(memory::archive_store))
        .route("/v1/memory_stores/{id}/memories", post(memory::create_memory).get(memory::list_memories))
        .route(
            "/v1/memory_stores/{id}/memories/{memory_id}",
            get(memory::get_memory).post(memory::update_memory).delete(memory::delete_memory),
        )
        .route("/v1/memory_stores/{id}/memory_versions", get(memory::list_versions))
        .route("/v1/memory_stores/{id}/memory_versions/{version_id}", get(memory::get_version))
        .route("/v1/memory_stores/{id}/memory_versions/{version_id}/redact", post(memory::redact_version))
        .route("/v1/deployments", post(deployments::create).get(deployments::list))
        .route("/v1/deployments/{id}", get(deployments::get).post(deployments::update))
        .route("/v1/deployments/{id}/pause", post(deployments::pause))
        .route("/v1/deployments/{id}/unpause", post(deployments::unpause))
        .route("/v1/deployments/{id}/archive", post(deployments::archive))
        .route("/v1/deployments/{id}/run", post(deployments::run))
        .route("/v1/deployment_runs", get(deployments::list_runs))
        .route("/v1/deployment_runs/{id}", get(deployments::get_run))
        .route("/v1/sessions/{id}/resources", get(resources::list).post(resources::add))
        .route(
            "/v1/sessions/{id}/resources/{resource_id}",
            get(resources::get).post(resources::update).delete(resources::delete),
        )
        .route("/v1/dreams", post(dreams::create).get(dreams::list))
        .route("/v1/dreams/{id}", get(dreams::get))
        .route("/v1/dreams/{id}/cancel", post(dreams::cancel))
        .route("/v1/dreams/{id}/archive", post(dreams::archive))
        .route("/v1/files", post(files::upload).get(files::list))
        .route("/v1/files/{id}", get(files::get).delete(files::delete))
        .route("/v1/files/{id}/content", get(files::content))
        .route("/v1/skills", post(skills::create).get(skills::list))
        .route("/v1/skills/{id}", get(skills::get).delete(skills::delete))
        .route("/v1/skills/{id}/versions", post(skills::create_version).get(skills::list_versions))
        .route("/v1/skills/{id}/versions/{version}", get(skills::get_version).delete(skills::delete_version))
        .route("/v1/skills/{id}/versions/{version}/content", get(skills::content))
        .route("/v1/{*rest}", get(not_offered).post(not_offered).delete(not_offered))
        .fallback(errors::no_route)
        .layer(axum::middleware::from_fn(errors::cma_shape))
}
