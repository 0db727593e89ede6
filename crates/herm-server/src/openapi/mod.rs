//! The OpenAPI 3.1 document, generated from the handlers' annotations and the wire types,
//! then completed by [`contract`] (path parameters, error responses, links).

mod contract;

use crate::routes::*;
use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(title = "herm", description = "Self-hostable runtime for production AI agents."),
    paths(
        health::healthz, metrics::page,
        webhooks::create, webhooks::list, webhooks::get, webhooks::delete, webhooks::deliveries,
        customers::get, customers::put,
        keys::create, keys::list, keys::revoke, keys::me,
        secrets::create, secrets::list, secrets::delete,
        providers::list, providers::put, providers::delete,
        deployments::create, deployments::get, deployments::list, deployments::patch, deployments::delete,
        messages::send, messages::user_events, attachments::content, usage::get,
        threads::create, threads::list, threads::get, threads::patch, threads::delete, threads::get_run,
        events::list, events::thread_stream, events::deployment_stream,
        tools::list, tools::patch,
        files::list, files::read, files::write, files::delete,
        skills::create, skills::list, skills::get, skills::put, skills::delete,
        automations::create, automations::list, automations::get, automations::patch, automations::delete,
        automations::run_now, automations::pause, automations::resume, automations::firings, automations::trigger,
        goals::create, goals::list, goals::get, goals::cancel,
        memories::list, memories::create, memories::get, memories::patch, memories::delete,
        memories::versions, memories::redact,
        dreams::create, dreams::list, dreams::get,
    ),
    // Query parameters that name a schema need it among the components.
    components(schemas(herm_types::api::UsageGroup)),
    modifiers(&Security),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // A webhook trigger authenticates with its automation's own token, not an API key.
        c.add_security_scheme(
            "trigger_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The complete document.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    contract::apply(&mut doc);
    doc
}

pub async fn serve() -> Json<serde_json::Value> {
    Json(document())
}
