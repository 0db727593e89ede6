//! Deployments: create (→ `provisioning` → `ready`), get, list, patch (secrets merged per
//! key), delete.

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Query, id, limit};
use crate::idem::{created, idempotent};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use herm_engine::tools::http::secrets_used;
use herm_store::{DeploymentQuery, DeploymentRecord};
use herm_types::api::{DeletedResponse, DeploymentResponse, EventsInfo, FilesystemInfo, Page};
use herm_types::config::{DeploymentPatch, DeploymentSpec, FieldError};
use herm_types::*;

pub fn response(d: DeploymentRecord) -> DeploymentResponse {
    DeploymentResponse {
        filesystem: FilesystemInfo {
            workspace_path: "/workspace".into(),
            persistent: d.spec.sandbox.persistent_filesystem,
        },
        events: EventsInfo { transport: "sse".into(), url: format!("/v1/deployments/{}/events", d.id) },
        deployment_id: d.id,
        status: d.status,
        thread_id: d.default_thread_id,
        created_at: d.created_at,
        updated_at: d.updated_at,
        error: d.error,
        spec: d.spec,
    }
}

/// Loads a live deployment by its path id, or 404.
pub async fn load(st: &AppState, raw: &str) -> ApiResult<DeploymentRecord> {
    let did: DeploymentId = id(raw, "deployment")?;
    st.engine.store().get_deployment(&did).await?.ok_or_else(|| ApiError::not_found("deployment"))
}

/// Checks what needs the store: secret references exist, templates name known secrets, the
/// model's provider is configured.
async fn check(st: &AppState, spec: &DeploymentSpec) -> ApiResult<()> {
    let errs = spec.validate();
    if !errs.is_empty() {
        return Err(ApiError::fields(errs));
    }
    if let Some(m) = &spec.model {
        let provider = m.split('/').next().unwrap_or_default();
        if !st.engine.providers().exists(provider).await? {
            return Err(ApiError::fields(vec![FieldError::new(
                "model",
                format!("provider `{provider}` is not configured"),
            )]));
        }
    }
    let mut bad = Vec::new();
    for (name, r) in &spec.secrets {
        let exists = match SecretId::parse(r) {
            Ok(sid) => st.engine.store().get_secret(&sid).await?.is_some(),
            Err(_) => false,
        };
        if !exists {
            bad.push(FieldError::new(format!("secrets.{name}"), format!("`{r}` is not a stored secret")));
        }
    }
    for (i, t) in spec.http_tools.iter().enumerate() {
        for n in secrets_used(t) {
            if !spec.secrets.contains_key(&n) {
                bad.push(FieldError::new(
                    format!("http_tools[{i}]"),
                    format!("uses `{{{{secrets.{n}}}}}` but the deployment maps no secret `{n}`"),
                ));
            }
        }
    }
    if bad.is_empty() { Ok(()) } else { Err(ApiError::secret_ref(bad)) }
}

/// Resolves every skill (ids, URL fetches, front matter); a bad one is a 422 `invalid_skill`.
pub async fn resolve_skills(st: &AppState, spec: &mut DeploymentSpec) -> ApiResult<()> {
    let mut names = std::collections::BTreeSet::new();
    for (i, s) in spec.skills.iter_mut().enumerate() {
        if !names.insert(s.name.clone()) {
            return Err(ApiError::invalid_skill(format!("skills[{i}].name"), "duplicate skill name"));
        }
        *s = herm_engine::skills::resolve(st.engine.http(), s.clone(), now())
            .await
            .map_err(|e| ApiError::invalid_skill(format!("skills[{i}]"), e))?;
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/deployments", tag = "deployments", request_body = DeploymentSpec,
    responses((status = 201, body = DeploymentResponse), (status = 400, body = herm_types::api::Problem), (status = 422, body = herm_types::api::Problem)))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<DeploymentSpec>,
) -> Response {
    let run = async {
        caller.require("deployments:write")?;
        let mut spec = body.value.clone();
        check(&st, &spec).await?;
        resolve_skills(&st, &mut spec).await?;
        let at = now();
        let rec = DeploymentRecord {
            id: DeploymentId::new(),
            status: DeploymentStatus::Provisioning,
            error: None,
            spec,
            default_thread_id: ThreadId::new(),
            created_at: at,
            updated_at: at,
        };
        st.engine.store().create_deployment(rec.clone()).await?;
        st.engine.provision(rec.id.clone());
        created(StatusCode::CREATED, &response(rec))
    };
    idempotent(&st, &caller, &headers, "deployments", &body.raw, run).await
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}", tag = "deployments",
    responses((status = 200, body = DeploymentResponse), (status = 404, body = herm_types::api::Problem)))]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
) -> ApiResult<Json<DeploymentResponse>> {
    caller.require("deployments:read")?;
    Ok(Json(response(load(&st, &dep).await?)))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    customer_id: Option<String>,
    status: Option<DeploymentStatus>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/deployments", tag = "deployments", params(ListQuery),
    responses((status = 200, body = Page<DeploymentResponse>)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<DeploymentResponse>>> {
    caller.require("deployments:read")?;
    let limit = limit(q.limit)?;
    let before = match q.cursor.as_deref() {
        Some(c) => Some(DeploymentId::parse(c).map_err(|_| ApiError::validation("invalid cursor"))?),
        None => None,
    };
    let rows = st
        .engine
        .store()
        .list_deployments(DeploymentQuery { customer_id: q.customer_id, status: q.status, before, limit })
        .await?;
    let next_cursor = (rows.len() == limit).then(|| rows.last().map(|d| d.id.to_string())).flatten();
    Ok(Json(Page { data: rows.into_iter().map(response).collect(), next_cursor }))
}

#[utoipa::path(patch, path = "/v1/deployments/{deployment_id}", tag = "deployments", request_body = DeploymentPatch,
    responses((status = 200, body = DeploymentResponse), (status = 404, body = herm_types::api::Problem), (status = 422, body = herm_types::api::Problem)))]
pub async fn patch(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    body: JsonBody<DeploymentPatch>,
) -> ApiResult<Json<DeploymentResponse>> {
    caller.require("deployments:write")?;
    let rec = load(&st, &dep).await?;
    let new_skills = body.value.skills.is_some();
    let mut spec = rec.spec.patched(body.value);
    check(&st, &spec).await?;
    if new_skills {
        resolve_skills(&st, &mut spec).await?;
    }
    st.engine.store().update_deployment_spec(&rec.id, &spec).await?;
    Ok(Json(response(load(&st, &dep).await?)))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Keep the workspace volume (default false: it is removed with the sandbox).
    retain_filesystem: Option<bool>,
}

#[utoipa::path(delete, path = "/v1/deployments/{deployment_id}", tag = "deployments", params(DeleteQuery),
    responses((status = 200, body = DeletedResponse), (status = 404, body = herm_types::api::Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<Json<DeletedResponse>> {
    caller.require("deployments:write")?;
    let rec = load(&st, &dep).await?;
    st.engine.store().set_deployment_status(&rec.id, DeploymentStatus::Deleted, None).await?;
    st.engine.destroy_sandbox(&rec.id, q.retain_filesystem.unwrap_or(false)).await;
    st.engine.mcp().forget(&rec.id);
    Ok(Json(DeletedResponse { deployment_id: rec.id, status: DeploymentStatus::Deleted }))
}
