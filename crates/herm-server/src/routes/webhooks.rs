//! Outbound webhooks (admin): register, list, read, delete, and each one's deliveries.

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{JsonBody, ListQuery, Query, id, next_cursor};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herm_types::api::Page;
use herm_types::webhook::{Delivery, Webhook, WebhookSpec};
use herm_types::*;

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookSpec,
    responses((status = 201, body = Webhook), (status = 400, body = herm_types::api::Problem), (status = 422, body = herm_types::api::Problem)))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    body: JsonBody<WebhookSpec>,
) -> ApiResult<(StatusCode, Json<Webhook>)> {
    caller.require("admin")?;
    Ok((StatusCode::CREATED, Json(st.engine.create_webhook(body.value).await?)))
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", responses((status = 200, body = Page<Webhook>)))]
pub async fn list(State(st): State<AppState>, caller: Caller) -> ApiResult<Json<Page<Webhook>>> {
    caller.require("admin")?;
    Ok(Json(Page { data: st.engine.list_webhooks().await?, next_cursor: None }))
}

#[utoipa::path(get, path = "/v1/webhooks/{webhook_id}", tag = "webhooks",
    responses((status = 200, body = Webhook), (status = 404, body = herm_types::api::Problem)))]
pub async fn get(State(st): State<AppState>, caller: Caller, Path(w): Path<String>) -> ApiResult<Json<Webhook>> {
    caller.require("admin")?;
    let wid: WebhookId = id(&w, "webhook")?;
    Ok(Json(st.engine.webhook(&wid).await?))
}

#[utoipa::path(delete, path = "/v1/webhooks/{webhook_id}", tag = "webhooks",
    responses((status = 204), (status = 404, body = herm_types::api::Problem)))]
pub async fn delete(State(st): State<AppState>, caller: Caller, Path(w): Path<String>) -> ApiResult<StatusCode> {
    caller.require("admin")?;
    let wid: WebhookId = id(&w, "webhook")?;
    st.engine.delete_webhook(&wid).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/webhooks/{webhook_id}/deliveries", tag = "webhooks", params(ListQuery),
    responses((status = 200, body = Page<Delivery>), (status = 404, body = herm_types::api::Problem)))]
pub async fn deliveries(
    State(st): State<AppState>,
    caller: Caller,
    Path(w): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<Delivery>>> {
    caller.require("admin")?;
    let wid: WebhookId = id(&w, "webhook")?;
    let (limit, before) = q.page::<DeliveryId>()?;
    let rows = st.engine.webhook_deliveries(&wid, before, limit).await?;
    Ok(Json(Page { next_cursor: next_cursor(&rows, limit, |d| d.id.to_string()), data: rows }))
}
