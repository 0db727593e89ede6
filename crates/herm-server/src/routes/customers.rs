//! A customer's limits across its deployments (admin): its daily budget.

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::JsonBody;
use axum::Json;
use axum::extract::{Path, State};
use herm_types::webhook::CustomerLimits;

#[utoipa::path(get, path = "/v1/customers/{customer_id}/limits", tag = "customers",
    responses((status = 200, body = CustomerLimits), (status = 400, body = herm_types::api::Problem)))]
pub async fn get(State(st): State<AppState>, caller: Caller, Path(c): Path<String>) -> ApiResult<Json<CustomerLimits>> {
    caller.require("admin")?;
    Ok(Json(st.engine.customer_limits(&c).await?))
}

#[utoipa::path(put, path = "/v1/customers/{customer_id}/limits", tag = "customers", request_body = CustomerLimits,
    responses((status = 200, body = CustomerLimits), (status = 400, body = herm_types::api::Problem)))]
pub async fn put(
    State(st): State<AppState>,
    caller: Caller,
    Path(c): Path<String>,
    body: JsonBody<CustomerLimits>,
) -> ApiResult<Json<CustomerLimits>> {
    caller.require("admin")?;
    Ok(Json(st.engine.set_customer_limits(&c, body.value).await?))
}
