//! The Tools API: what a deployment's agent can call, and per-tool policy
//! (`enabled`, `permission`), stored as exact entries of the deployment's `tool_policies`.

use super::deployments::load;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use axum::Json;
use axum::extract::{Path, State};
use herm_engine::tools::{Tool, permission_for};
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
    let d = load(&st, &dep).await?;
    let data = st.engine.tools(&d.id, &d.spec).await.all().iter().map(info).collect();
    Ok(Json(Page { data, next_cursor: None }))
}

#[utoipa::path(patch, path = "/v1/deployments/{deployment_id}/tools/{name}", tag = "tools", request_body = ToolPatch,
    responses((status = 200, body = ToolInfo), (status = 404, body = herm_types::api::Problem)))]
pub async fn patch(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, name)): Path<(String, String)>,
    body: JsonBody<ToolPatch>,
) -> ApiResult<Json<ToolInfo>> {
    caller.require("deployments:write")?;
    let d = load(&st, &dep).await?;
    if !st.engine.tools(&d.id, &d.spec).await.all().iter().any(|t| t.name == name) {
        return Err(ApiError::not_found("tool"));
    }
    let p = body.value;
    let mut spec = d.spec.clone();
    let current = permission_for(&spec, &name);
    let new = match (p.enabled, p.permission) {
        (Some(false), _) => ToolPermission::Disabled,
        (_, Some(ToolPermission::Disabled)) => ToolPermission::Disabled,
        (_, Some(perm)) => perm,
        // Re-enabling keeps whether it asks.
        (Some(true), None) if current == ToolPermission::Disabled => ToolPermission::AlwaysAllow,
        _ => current,
    };
    spec.tool_policies.insert(name.clone(), new);
    st.engine.store().update_deployment_spec(&d.id, &spec).await?;
    let tools = st.engine.tools(&d.id, &spec).await;
    let t = tools.all().iter().find(|t| t.name == name).ok_or_else(|| ApiError::not_found("tool"))?;
    Ok(Json(info(t)))
}
