//! `Idempotency-Key` for POSTs that create: the first response is stored and replayed for a
//! repeat with the same body; a different body under the same key is a 409.

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herm_store::IdemBegin;
use sha2::{Digest, Sha256};

pub async fn idempotent<F>(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    route: &str,
    raw: &[u8],
    f: F,
) -> Response
where
    F: Future<Output = ApiResult<(StatusCode, serde_json::Value)>>,
{
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => return into(f.await),
        Some(Ok(k)) if !k.is_empty() && k.len() <= 255 => k.to_owned(),
        Some(_) => {
            return ApiError::validation("`Idempotency-Key` must be 1-255 visible ASCII characters").into_response();
        }
    };
    let scope = format!("{}:{route}", caller.key_id);
    let fp = hex::encode(Sha256::digest(raw));
    let engine = &state.engine;
    match engine.idempotency_begin(&scope, &key, &fp).await {
        Err(e) => ApiError::from(e).into_response(),
        Ok(IdemBegin::Mismatch) => {
            ApiError::conflict("this Idempotency-Key was used with a different request body").into_response()
        }
        Ok(IdemBegin::InProgress) => {
            ApiError::conflict("a request with this Idempotency-Key is still in progress").into_response()
        }
        Ok(IdemBegin::Replay { status, body }) => {
            let mut r = (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            r
        }
        Ok(IdemBegin::Fresh) => match f.await {
            Ok((status, v)) => {
                let body = serde_json::to_vec(&v).unwrap_or_default();
                if let Err(e) = engine.idempotency_finish(&scope, &key, status.as_u16(), &body).await {
                    tracing::warn!(error = %e, "could not record an idempotent response");
                }
                json_response(status, body)
            }
            Err(e) => {
                // A failed request did not happen: the key is free for a corrected retry.
                if let Err(e) = engine.idempotency_abort(&scope, &key).await {
                    tracing::warn!(error = %e, "could not release an idempotency key");
                }
                e.into_response()
            }
        },
    }
}

fn into(r: ApiResult<(StatusCode, serde_json::Value)>) -> Response {
    match r {
        Ok((s, v)) => json_response(s, serde_json::to_vec(&v).unwrap_or_default()),
        Err(e) => e.into_response(),
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Serializes a response value for [`idempotent`].
pub fn created<T: serde::Serialize>(status: StatusCode, v: &T) -> ApiResult<(StatusCode, serde_json::Value)> {
    Ok((status, serde_json::to_value(v).map_err(|_| ApiError::internal())?))
}
