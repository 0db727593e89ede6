//! `GET /metrics` (admin): the Prometheus text page. Gauges of work in progress are read
//! from the engine as the page is scraped; counters and histograms were moved as events
//! committed and requests were answered.

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = herm_types::api::Problem)))]
pub async fn page(State(st): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.require("admin")?;
    let Some(handle) = &st.metrics else { return Err(ApiError::not_found("metrics")) };
    let g = st.engine.gauges().await?;
    metrics::gauge!("herm_runs_active", "state" => "queued").set(g.runs_queued as f64);
    metrics::gauge!("herm_runs_active", "state" => "running").set(g.runs_running as f64);
    metrics::gauge!("herm_runs_waiting").set(g.runs_waiting as f64);
    metrics::gauge!("herm_timers_due").set(g.timers_due as f64);
    handle.run_upkeep();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response())
}
