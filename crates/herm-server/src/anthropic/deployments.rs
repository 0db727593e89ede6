//! Scheduled deployments and their runs: each handler authorises (reads
//! `deployments:read`, writes `deployments:write`), parses the query and calls one facade
//! method.

use super::query::Params;
use super::routes::{Out, ok};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::JsonBody;
use axum::extract::{Path, RawQuery, State};
use herm_cma::deployments::{DeploymentFilter, RunFilter};
use serde_json::Value;

const READ: &str = "deployments:read";
const WRITE: &str = "deployments:write";

pub async fn create(State(st): State<AppState>, c: Caller, b: JsonBody<Value>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.create_deployment(&b.value).await)
}

pub async fn get(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(READ)?;
    ok(st.cma.deployment(&id).await)
}

pub async fn update(State(st): State<AppState>, c: Caller, Path(id): Path<String>, b: JsonBody<Value>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.update_deployment(&id, &b.value).await)
}

pub async fn pause(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.set_deployment_status(&id, "paused").await)
}

pub async fn unpause(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.set_deployment_status(&id, "active").await)
}

pub async fn archive(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.set_deployment_status(&id, "archived").await)
}

pub async fn run(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.run_deployment(&id).await)
}

pub async fn list(State(st): State<AppState>, c: Caller, RawQuery(q): RawQuery) -> Out {
    c.require(READ)?;
    let q = Params::parse(q.as_deref(), &["limit", "page", "agent_id", "status", "include_archived", "created_at"])?;
    let f = DeploymentFilter {
        agent_id: q.one("agent_id").map(str::to_owned),
        status: q.one("status").map(str::to_owned),
        include_archived: q.flag("include_archived")?,
        created: q.range("created_at")?,
    };
    ok(st.cma.list_deployments(&q.page()?, &f).await)
}

pub async fn get_run(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(READ)?;
    ok(st.cma.deployment_run(&id).await)
}

pub async fn list_runs(State(st): State<AppState>, c: Caller, RawQuery(q): RawQuery) -> Out {
    c.require(READ)?;
    let q =
        Params::parse(q.as_deref(), &["limit", "page", "deployment_id", "has_error", "trigger_type", "created_at"])?;
    let has_error: ApiResult<Option<bool>> = match q.one("has_error") {
        None => Ok(None),
        Some(_) => q.flag("has_error").map(Some),
    };
    let f = RunFilter {
        deployment_id: q.one("deployment_id").map(str::to_owned),
        has_error: has_error?,
        trigger_type: q.one("trigger_type").map(str::to_owned),
        created: q.range("created_at")?,
    };
    ok(st.cma.list_deployment_runs(&q.page()?, &f).await)
}
