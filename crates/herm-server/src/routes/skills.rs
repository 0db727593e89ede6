//! The Skills API on a deployment: skills live in the deployment's configuration, resolved
//! (fetched, parsed) when they are added or replaced; changes apply from the next run.

use super::deployments::load;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, id};
use crate::precondition::{IfMatch, etag_headers};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use herm_types::DeploymentId;
use herm_types::api::Page;
use herm_types::config::SkillSpec;
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct SkillInfo {
    skill_id: String,
    name: String,
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    created_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn info(s: &SkillSpec, with_content: bool) -> SkillInfo {
    SkillInfo {
        skill_id: s.skill_id.clone().unwrap_or_default(),
        name: s.name.clone(),
        source: s.source.clone(),
        description: s.description.clone(),
        url: s.url.clone(),
        path: s.path.clone(),
        content: if with_content { s.content.clone() } else { None },
        created_at: s.created_at,
    }
}

fn check_form(s: &SkillSpec) -> ApiResult<()> {
    let ok = match s.source.as_str() {
        "inline" => s.content.is_some(),
        "url" => s.url.as_deref().is_some_and(|u| u.starts_with("http://") || u.starts_with("https://")),
        "file" => s.path.is_some(),
        _ => false,
    };
    if s.name.trim().is_empty() || s.name.len() > 64 || !ok {
        return Err(ApiError::validation("a skill is {name, source: inline + content | url + url | file + path}"));
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/deployments/{deployment_id}/skills", tag = "skills", request_body = SkillSpec,
    responses((status = 201, body = SkillInfo), (status = 422, body = herm_types::api::Problem)))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    IfMatch(if_match): IfMatch,
    body: JsonBody<SkillSpec>,
) -> ApiResult<(StatusCode, HeaderMap, Json<SkillInfo>)> {
    caller.require("deployments:write")?;
    let did: DeploymentId = id(&dep, "deployment")?;
    check_form(&body.value)?;
    let s = st.engine.add_skill(&did, if_match, body.value).await?;
    Ok((StatusCode::CREATED, etag_headers(s.revision), Json(info(&s.value, false))))
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/skills", tag = "skills", responses((status = 200, body = Page<SkillInfo>)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
) -> ApiResult<Json<Page<SkillInfo>>> {
    caller.require("deployments:read")?;
    let d = load(&st, &dep).await?;
    Ok(Json(Page { data: d.spec.skills.iter().map(|s| info(s, false)).collect(), next_cursor: None }))
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/skills/{skill_id}", tag = "skills",
    responses((status = 200, body = SkillInfo), (status = 404, body = herm_types::api::Problem)))]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, skill)): Path<(String, String)>,
) -> ApiResult<Json<SkillInfo>> {
    caller.require("deployments:read")?;
    let did: DeploymentId = id(&dep, "deployment")?;
    Ok(Json(info(&st.engine.skill(&did, &skill).await?, true)))
}

#[utoipa::path(put, path = "/v1/deployments/{deployment_id}/skills/{skill_id}", tag = "skills", request_body = SkillSpec,
    responses((status = 200, body = SkillInfo), (status = 404, body = herm_types::api::Problem), (status = 422, body = herm_types::api::Problem)))]
pub async fn put(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, skill)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
    body: JsonBody<SkillSpec>,
) -> ApiResult<(HeaderMap, Json<SkillInfo>)> {
    caller.require("deployments:write")?;
    let did: DeploymentId = id(&dep, "deployment")?;
    check_form(&body.value)?;
    let s = st.engine.replace_skill(&did, &skill, if_match, body.value).await?;
    Ok((etag_headers(s.revision), Json(info(&s.value, true))))
}

#[utoipa::path(delete, path = "/v1/deployments/{deployment_id}/skills/{skill_id}", tag = "skills",
    responses((status = 204), (status = 404, body = herm_types::api::Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, skill)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
) -> ApiResult<(StatusCode, HeaderMap)> {
    caller.require("deployments:write")?;
    let did: DeploymentId = id(&dep, "deployment")?;
    let r = st.engine.remove_skill(&did, &skill, if_match).await?;
    Ok((StatusCode::NO_CONTENT, etag_headers(r.revision)))
}
