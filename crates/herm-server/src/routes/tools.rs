//! The Tools API: what a deployment's agent can call, and per-tool policy
//! (`enabled`, `permission`), stored as exact entries of the deployment's `tool_policies`.

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{JsonBody, id};
use crate::precondition::{IfMatch, etag_headers};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use herm_engine::tools::Tool;
use herm_types::DeploymentId;
use herm_types::api::{Page, ToolInfo, ToolPatch};
use herm_types::config::ToolPermission;

fn info(t: &Tool) -> ToolInfo {
    ToolInfo {
        name: t.name.clone(),
        description: t.description.clone(),
        origin: t.origin.as_wire(),
        enabled: t.permission != ToolPermission::Disabled,
        permission: t.permission,
        repeat_safe: t.repeat_safe,
        input_schema: serde_json::Value::clone(&t.input_schema),
    }
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/tools", tag = "tools",
    responses((status = 200, body = Page<ToolInfo>), (status = 404, body = herm_types::api::Problem)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
) -> ApiResult<Json<Page<ToolInfo>>> {
    caller.require("deployments:read")?;
    let did: DeploymentId = id(&dep, "deployment")?;
    let data = st.engine.deployment_tools(&did).await?.iter().map(info).collect();
    Ok(Json(Page { data, next_cursor: None }))
}

#[utoipa::path(patch, path = "/v1/deployments/{deployment_id}/tools/{name}", tag = "tools", request_body = ToolPatch,
    responses((status = 200, body = ToolInfo), (status = 404, body = herm_types::api::Problem)))]
pub async fn patch(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, name)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
    body: JsonBody<ToolPatch>,
) -> ApiResult<(HeaderMap, Json<ToolInfo>)> {
    caller.require("deployments:write")?;
    let did: DeploymentId = id(&dep, "deployment")?;
    let p = body.value;
    let t = st.engine.set_tool_policy(&did, &name, if_match, p.enabled, p.permission).await?;
    Ok((etag_headers(t.revision), Json(info(&t.value))))
}
