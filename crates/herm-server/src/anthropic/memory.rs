//! Memory stores, memories and memory versions (`agent-memory-2026-07-22`): each handler
//! authorises (reads `deployments:read`, writes `deployments:write`), parses the query and
//! calls one facade method.

use super::query::Params;
use super::routes::{Out, ok};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use axum::extract::{Path, RawQuery, State};
use herm_cma::memory_stores::{MemoryListQuery, VersionQuery, full_view};
use serde_json::Value;

const READ: &str = "deployments:read";
const WRITE: &str = "deployments:write";

fn view(q: &Params, default: bool) -> ApiResult<bool> {
    full_view(q.one("view"), default).map_err(ApiError::from)
}

pub async fn create_store(State(st): State<AppState>, c: Caller, b: JsonBody<Value>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.create_memory_store(&b.value).await)
}

pub async fn list_stores(State(st): State<AppState>, c: Caller, RawQuery(q): RawQuery) -> Out {
    c.require(READ)?;
    let q = Params::parse(q.as_deref(), &["limit", "page", "include_archived", "created_at"])?;
    ok(st.cma.list_memory_stores(&q.page()?, q.flag("include_archived")?, &q.range("created_at")?).await)
}

pub async fn get_store(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(READ)?;
    ok(st.cma.memory_store(&id).await)
}

pub async fn update_store(State(st): State<AppState>, c: Caller, Path(id): Path<String>, b: JsonBody<Value>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.update_memory_store(&id, &b.value).await)
}

pub async fn archive_store(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.archive_memory_store(&id).await)
}

pub async fn delete_store(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.delete_memory_store(&id).await)
}

pub async fn create_memory(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    b: JsonBody<Value>,
) -> Out {
    c.require(WRITE)?;
    let q = Params::parse(q.as_deref(), &["view"])?;
    ok(st.cma.create_memory(&id, &b.value, view(&q, false)?).await)
}

pub async fn list_memories(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Out {
    c.require(READ)?;
    let q = Params::parse(q.as_deref(), &["limit", "page", "path_prefix", "depth", "view"])?;
    let depth = match q.int("depth")? {
        None | Some(0) => 0,
        Some(1) => 1,
        Some(_) => return Err(ApiError::validation("`depth` is 0 (all) or 1 (children)")),
    };
    let lq = MemoryListQuery {
        page: q.page()?,
        path_prefix: q.one("path_prefix").map(str::to_owned),
        depth,
        full: view(&q, false)?,
    };
    ok(st.cma.list_memories(&id, &lq).await)
}

pub async fn get_memory(
    State(st): State<AppState>,
    c: Caller,
    Path((id, mid)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Out {
    c.require(READ)?;
    let q = Params::parse(q.as_deref(), &["view"])?;
    ok(st.cma.memory(&id, &mid, view(&q, true)?).await)
}

pub async fn update_memory(
    State(st): State<AppState>,
    c: Caller,
    Path((id, mid)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    b: JsonBody<Value>,
) -> Out {
    c.require(WRITE)?;
    let q = Params::parse(q.as_deref(), &["view"])?;
    ok(st.cma.update_memory(&id, &mid, &b.value, view(&q, false)?).await)
}

pub async fn delete_memory(
    State(st): State<AppState>,
    c: Caller,
    Path((id, mid)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Out {
    c.require(WRITE)?;
    let q = Params::parse(q.as_deref(), &["expected_content_sha256"])?;
    ok(st.cma.delete_memory(&id, &mid, q.one("expected_content_sha256")).await)
}

pub async fn list_versions(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Out {
    c.require(READ)?;
    let q =
        Params::parse(q.as_deref(), &["limit", "page", "memory_id", "operation", "session_id", "created_at", "view"])?;
    let vq = VersionQuery {
        page: q.page()?,
        memory_id: q.one("memory_id").map(str::to_owned),
        operation: q.one("operation").map(str::to_owned),
        session_id: q.one("session_id").map(str::to_owned),
        created: q.range("created_at")?,
        full: view(&q, false)?,
    };
    ok(st.cma.list_memory_versions(&id, &vq).await)
}

pub async fn get_version(
    State(st): State<AppState>,
    c: Caller,
    Path((id, vid)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Out {
    c.require(READ)?;
    let q = Params::parse(q.as_deref(), &["view"])?;
    ok(st.cma.memory_version(&id, &vid, view(&q, true)?).await)
}

pub async fn redact_version(State(st): State<AppState>, c: Caller, Path((id, vid)): Path<(String, String)>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.redact_memory_version(&id, &vid).await)
}
