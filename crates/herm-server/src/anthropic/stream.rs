//! `GET /v1/sessions/{id}/events/stream`: the facade's frames as SSE, one JSON event per
//! frame with its CMA type as the `event:` name (the SDK drops frames without one), comment
//! keep-alives, and the herm `sequence` as the frame id so `Last-Event-ID` resumes (a bonus
//! over CMA, whose stream is live only). The subscription exists before the headers go out.

use super::query::Params;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use herm_cma::stream::Deltas;
use std::time::Duration;

pub async fn open(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    c.require("deployments:read")?;
    let q = Params::parse(q.as_deref(), &["event_deltas"])?;
    let mut deltas = Deltas::default();
    for d in q.all("event_deltas") {
        match d.as_str() {
            "agent.message" => deltas.message = true,
            // herm's models' reasoning is not streamed: nothing to preview.
            "agent.thinking" => {}
            other => return Err(ApiError::validation(format!("`event_deltas`: `{other}` cannot be previewed"))),
        }
    }
    let after = match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        None | Some("") => None,
        Some(s) => Some(
            s.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| ApiError::validation("`Last-Event-ID` must be an id this stream sent"))?,
        ),
    };
    let rx = st.cma.open_stream(&id, deltas, after).await?;
    let shutdown = st.shutdown.clone();
    let frames = tokio_stream::wrappers::ReceiverStream::new(rx)
        .map(|f| {
            let mut ev = SseEvent::default().event(f.event);
            if let Some(id) = f.id {
                ev = ev.id(id.to_string());
            }
            Ok::<_, std::convert::Infallible>(
                ev.json_data(&f.data).unwrap_or_else(|_| SseEvent::default().comment("unserializable event")),
            )
        })
        .take_until(async move { shutdown.cancelled().await });
    Ok(Sse::new(frames).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}
