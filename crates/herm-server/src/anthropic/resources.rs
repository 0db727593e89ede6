//! A session's resources after it is made: one facade method per handler. Reads need
//! `deployments:read`, writes `deployments:write`.

use super::query::Params;
use super::routes::{Out, ok};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::JsonBody;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde_json::Value;

const READ: &str = "deployments:read";
const WRITE: &str = "deployments:write";

pub async fn list(State(st): State<AppState>, c: Caller, Path(id): Path<String>, RawQuery(q): RawQuery) -> Out {
    c.require(READ)?;
    let q = Params::parse(q.as_deref(), &["limit", "page"])?;
    ok(st.cma.session_resources(&id, &q.page()?).await)
}

pub async fn add(State(st): State<AppState>, c: Caller, Path(id): Path<String>, b: JsonBody<Value>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.add_session_resource(&id, &b.value).await)
}

pub async fn get(State(st): State<AppState>, c: Caller, Path((id, rid)): Path<(String, String)>) -> Out {
    c.require(READ)?;
    ok(st.cma.session_resource(&id, &rid).await)
}

/// Rotating a resource's token is for GitHub repositories, which herm does not mount.
pub async fn update(c: Caller, Path(_): Path<(String, String)>) -> Out {
    c.require(WRITE)?;
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unsupported_feature",
        "rotating a resource's `authorization_token` is for `github_repository` resources, which herm does not support",
    ))
}

pub async fn delete(State(st): State<AppState>, c: Caller, Path((id, rid)): Path<(String, String)>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.delete_session_resource(&id, &rid).await)
}
