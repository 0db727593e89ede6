//! Multipart uploads (skills, files): every part read in chunks, the whole bounded while it
//! is read, so an oversized upload is refused before it is held.

use crate::error::{ApiError, ApiResult};
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};

/// One part of an upload.
pub struct Part {
    pub name: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// The upload's parts, at most `max_bytes` together (`what` names the limit in the refusal).
pub async fn parts(m: Result<Multipart, MultipartRejection>, max_bytes: usize, what: &str) -> ApiResult<Vec<Part>> {
    let mut m = m.map_err(|e| ApiError::validation(format!("expected a multipart/form-data upload: {e}")))?;
    let bad = |e: MultipartError| ApiError::validation(format!("the upload is malformed: {e}"));
    let (mut out, mut total) = (Vec::new(), 0usize);
    while let Some(mut field) = m.next_field().await.map_err(bad)? {
        let mut part = Part {
            name: field.name().unwrap_or_default().to_owned(),
            file_name: field.file_name().map(str::to_owned),
            content_type: field.content_type().map(str::to_owned),
            bytes: Vec::new(),
        };
        while let Some(chunk) = field.chunk().await.map_err(bad)? {
            total += chunk.len();
            if total > max_bytes {
                return Err(ApiError::validation(format!("{what} at most {max_bytes} bytes")));
            }
            part.bytes.extend_from_slice(&chunk);
        }
        out.push(part);
    }
    Ok(out)
}
