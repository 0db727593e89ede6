//! Dreams (`dreaming-2026-04-21`): one facade method per handler. Reads need
//! `deployments:read`, writes `deployments:write`.

use super::query::Params;
use super::routes::{Out, ok};
use crate::AppState;
use crate::auth::Caller;
use crate::extract::JsonBody;
use axum::extract::{Path, RawQuery, State};
use serde_json::Value;

const READ: &str = "deployments:read";
const WRITE: &str = "deployments:write";

pub async fn create(State(st): State<AppState>, c: Caller, b: JsonBody<Value>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.create_dream(&b.value).await)
}

pub async fn list(State(st): State<AppState>, c: Caller, RawQuery(q): RawQuery) -> Out {
    c.require(READ)?;
    let q = Params::parse(q.as_deref(), &["limit", "page", "include_archived", "statuses", "created_at"])?;
    let statuses = q.all("statuses");
    ok(st.cma.list_dreams(&q.page()?, q.flag("include_archived")?, &statuses, &q.range("created_at")?).await)
}

pub async fn get(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(READ)?;
    ok(st.cma.dream(&id).await)
}

pub async fn cancel(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.cancel_dream(&id).await)
}

pub async fn archive(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.archive_dream(&id).await)
}
