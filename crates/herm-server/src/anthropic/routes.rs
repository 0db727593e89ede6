//! The handlers: each authorises, parses the query, calls one facade method and returns its
//! JSON. Reads need `deployments:read`; writes `deployments:write`; vaults and credentials
//! `secrets:write` (a credential's token becomes a herm secret).

use super::query::Params;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, MAX_MESSAGE_BODY};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use herm_cma::events::EventFilter;
use herm_cma::sessions::SessionFilter;
use serde_json::Value;

pub(super) type Out = ApiResult<Json<Value>>;

const READ: &str = "deployments:read";
const WRITE: &str = "deployments:write";
const SECRETS: &str = "secrets:write";

pub(super) fn ok<T: serde::Serialize>(r: Result<T, herm_cma::Error>) -> Out {
    let v = r.map_err(ApiError::from)?;
    Ok(Json(serde_json::to_value(v).map_err(|_| ApiError::internal())?))
}

fn no_query(raw: &Option<String>) -> ApiResult<()> {
    Params::parse(raw.as_deref(), &[]).map(|_| ())
}

pub async fn create_agent(State(st): State<AppState>, c: Caller, RawQuery(q): RawQuery, b: JsonBody<Value>) -> Out {
    c.require(WRITE)?;
    no_query(&q)?;
    ok(st.cma.create_agent(&b.value).await)
}

pub async fn get_agent(State(st): State<AppState>, c: Caller, Path(id): Path<String>, RawQuery(q): RawQuery) -> Out {
    c.require(READ)?;
    let q = Params::parse(q.as_deref(), &["version"])?;
    ok(st.cma.agent(&id, q.int("version")?).await)
}

pub async fn update_agent(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    b: JsonBody<Value>,
) -> Out {
    c.require(WRITE)?;
    no_query(&q)?;
    ok(st.cma.update_agent(&id, &b.value).await)
}

pub async fn archive_agent(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.archive_agent(&id).await)
}

pub async fn list_agents(State(st): State<AppState>, c: Caller, RawQuery(q): RawQuery) -> Out {
    c.require(READ)?;
    let q = Params::parse(q.as_deref(), &["limit", "page", "include_archived", "created_at"])?;
    ok(st.cma.list_agents(&q.page()?, q.flag("include_archived")?, &q.range("created_at")?).await)
}

pub async fn agent_versions(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Out {
    c.require(READ)?;
    let q = Params::parse(q.as_deref(), &["limit", "page"])?;
    ok(st.cma.agent_versions(&id, &q.page()?).await)
}

pub async fn create_environment(State(st): State<AppState>, c: Caller, b: JsonBody<Value>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.create_environment(&b.value).await)
}

pub async fn get_environment(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(READ)?;
    ok(st.cma.environment(&id).await)
}

pub async fn update_environment(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    b: JsonBody<Value>,
) -> Out {
    c.require(WRITE)?;
    ok(st.cma.update_environment(&id, &b.value).await)
}

pub async fn archive_environment(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.archive_environment(&id).await)
}

pub async fn delete_environment(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.delete_environment(&id).await)
}

pub async fn list_environments(State(st): State<AppState>, c: Caller, RawQuery(q): RawQuery) -> Out {
    c.require(READ)?;
    let q = Params::parse(q.as_deref(), &["limit", "page", "include_archived"])?;
    ok(st.cma.list_environments(&q.page()?, q.flag("include_archived")?).await)
}

pub async fn create_vault(State(st): State<AppState>, c: Caller, b: JsonBody<Value>) -> Out {
    c.require(SECRETS)?;
    ok(st.cma.create_vault(&b.value).await)
}

pub async fn get_vault(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(READ)?;
    ok(st.cma.vault(&id).await)
}

pub async fn update_vault(State(st): State<AppState>, c: Caller, Path(id): Path<String>, b: JsonBody<Value>) -> Out {
    c.require(SECRETS)?;
    ok(st.cma.update_vault(&id, &b.value).await)
}

pub async fn archive_vault(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(SECRETS)?;
    ok(st.cma.archive_vault(&id).await)
}

pub async fn delete_vault(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(SECRETS)?;
    ok(st.cma.delete_vault(&id).await)
}

pub async fn list_vaults(State(st): State<AppState>, c: Caller, RawQuery(q): RawQuery) -> Out {
    c.require(READ)?;
    let q = Params::parse(q.as_deref(), &["limit", "page", "include_archived"])?;
    ok(st.cma.list_vaults(&q.page()?, q.flag("include_archived")?).await)
}

pub async fn create_credential(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    b: JsonBody<Value>,
) -> Out {
    c.require(SECRETS)?;
    ok(st.cma.create_credential(&id, &b.value).await)
}

pub async fn get_credential(State(st): State<AppState>, c: Caller, Path((id, cred)): Path<(String, String)>) -> Out {
    c.require(READ)?;
    ok(st.cma.credential(&id, &cred).await)
}

pub async fn update_credential(
    State(st): State<AppState>,
    c: Caller,
    Path((id, cred)): Path<(String, String)>,
    b: JsonBody<Value>,
) -> Out {
    c.require(SECRETS)?;
    ok(st.cma.update_credential(&id, &cred, &b.value).await)
}

pub async fn archive_credential(
    State(st): State<AppState>,
    c: Caller,
    Path((id, cred)): Path<(String, String)>,
) -> Out {
    c.require(SECRETS)?;
    ok(st.cma.archive_credential(&id, &cred).await)
}

pub async fn delete_credential(State(st): State<AppState>, c: Caller, Path((id, cred)): Path<(String, String)>) -> Out {
    c.require(SECRETS)?;
    ok(st.cma.delete_credential(&id, &cred).await)
}

pub async fn list_credentials(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Out {
    c.require(READ)?;
    let q = Params::parse(q.as_deref(), &["limit", "page", "include_archived"])?;
    ok(st.cma.list_credentials(&id, &q.page()?, q.flag("include_archived")?).await)
}

/// Messages may carry images and documents as base64: bodies up to herm's message limit.
type MessageBody = JsonBody<Value, MAX_MESSAGE_BODY>;

pub async fn create_session(State(st): State<AppState>, c: Caller, b: MessageBody) -> Out {
    c.require(WRITE)?;
    ok(st.cma.create_session(&b.value).await)
}

pub async fn get_session(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(READ)?;
    ok(st.cma.session(&id).await)
}

pub async fn update_session(State(st): State<AppState>, c: Caller, Path(id): Path<String>, b: JsonBody<Value>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.update_session(&id, &b.value).await)
}

pub async fn archive_session(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.archive_session(&id).await)
}

pub async fn delete_session(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.delete_session(&id).await)
}

pub async fn list_sessions(State(st): State<AppState>, c: Caller, RawQuery(q): RawQuery) -> Out {
    c.require(READ)?;
    let q = Params::parse(
        q.as_deref(),
        &[
            "limit",
            "page",
            "order",
            "agent_id",
            "agent_version",
            "deployment_id",
            "memory_store_id",
            "include_archived",
            "statuses",
            "created_at",
        ],
    )?;
    let f = SessionFilter {
        order: q.one("order").map(str::to_owned),
        agent_id: q.one("agent_id").map(str::to_owned),
        agent_version: q.int("agent_version")?,
        deployment_id: q.one("deployment_id").map(str::to_owned),
        memory_store_id: q.one("memory_store_id").map(str::to_owned),
        include_archived: q.flag("include_archived")?,
        statuses: q.all("statuses"),
        created: q.range("created_at")?,
    };
    ok(st.cma.list_sessions(&q.page()?, &f).await)
}

pub async fn list_events(State(st): State<AppState>, c: Caller, Path(id): Path<String>, RawQuery(q): RawQuery) -> Out {
    c.require(READ)?;
    let q = Params::parse(q.as_deref(), &["limit", "page", "order", "types", "created_at"])?;
    let f = EventFilter {
        order: q.one("order").map(str::to_owned),
        types: q.all("types"),
        created: q.range("created_at")?,
    };
    ok(st.cma.list_events(&id, &q.page()?, &f).await)
}

pub async fn send_events(State(st): State<AppState>, c: Caller, Path(id): Path<String>, b: MessageBody) -> Out {
    c.require(WRITE)?;
    ok(st.cma.send_events(&id, &b.value).await)
}

/// CMA resources herm does not offer: a clear refusal naming the feature.
pub async fn not_offered(c: Caller, Path(rest): Path<String>) -> ApiError {
    let _ = c;
    let parts: Vec<&str> = rest.split('/').collect();
    let what = match (parts.first().copied().unwrap_or_default(), parts.get(2).copied()) {
        ("environments", Some("work")) => "the work queue of self-hosted environments is",
        ("sessions", Some("threads")) => "multiagent session threads are",
        _ => return super::errors::no_route().await,
    };
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unsupported_feature",
        format!(
            "{what} not supported by herm's Claude Managed Agents API yet (see the README's Claude Managed Agents API section)"
        ),
    )
}
