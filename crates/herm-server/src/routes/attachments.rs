//! Downloading an attachment a message or a tool result carried (the log shows references
//! only): its stored bytes, with its media type and hash.

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::id;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use herm_types::{AttachmentId, DeploymentId};

#[utoipa::path(get, path = "/v1/deployments/{deployment_id}/attachments/{attachment_id}", tag = "messages",
    responses((status = 200, description = "The attachment's bytes, with its media type; `ETag` is its SHA-256"),
        (status = 404, body = herm_types::api::Problem)))]
pub async fn content(
    State(st): State<AppState>,
    caller: Caller,
    Path((dep, att)): Path<(String, String)>,
) -> ApiResult<Response> {
    caller.require("deployments:read")?;
    let did: DeploymentId = id(&dep, "deployment")?;
    let aid: AttachmentId = id(&att, "attachment")?;
    let (a, bytes) = st.engine.attachment_content(&did, &aid).await?;
    let mut r = Body::from(bytes).into_response();
    let h = r.headers_mut();
    // Only the types herm stores are ever stored, so the header is one of a known few.
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&a.media_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", a.sha256)) {
        h.insert(header::ETAG, v);
    }
    Ok(r)
}
