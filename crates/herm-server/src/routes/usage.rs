//! `GET /v1/deployments/{id}/usage`: tokens and cost per UTC day or per model over a window
//! (today, UTC, unless `from`/`to` say otherwise).

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Query, id};
use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use herm_types::DeploymentId;
use herm_types::api::{UsageGroup, UsageReport};

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// RFC 3339, inclusive; default: today's 00:00 UTC.
    from: Option<String>,
    /// RFC 3339, exclusive; default: now.
    to: Option<String>,
    /// `day` (default) or `model`.
    group_by: Option<UsageGroup>,
}

fn instant(name: &str, v: Option<&str>, default: DateTime<Utc>) -> ApiResult<DateTime<Utc>> {
    match v {
        None => Ok(default),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| ApiError::validation(format!("`{name}` must be an RFC 3339 time"))),
    }
}

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/usage", tag = "deployments", params(UsageQuery),
    responses((status = 200, body = UsageReport), (status = 400, body = herm_types::api::Problem), (status = 404, body = herm_types::api::Problem)))]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path(dep): Path<String>,
    Query(q): Query<UsageQuery>,
) -> ApiResult<Json<UsageReport>> {
    caller.require("deployments:read")?;
    let did: DeploymentId = id(&dep, "deployment")?;
    let now = herm_types::now();
    let midnight = now.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let from = instant("from", q.from.as_deref(), midnight)?;
    // `now` itself is included: what was spent a moment ago counts.
    let to = instant("to", q.to.as_deref(), now + chrono::Duration::seconds(1))?;
    Ok(Json(st.engine.usage(&did, from, to, q.group_by.unwrap_or_default()).await?))
}
