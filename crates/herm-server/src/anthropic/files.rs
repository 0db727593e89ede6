//! The Files API (`files-api-2025-04-14`): multipart uploads read within the facade's limit,
//! downloads with the file's type, one facade method per handler. Reads need
//! `deployments:read`, writes `deployments:write`.

use super::query::Params;
use super::routes::{Out, ok};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use herm_cma::files::{FileUpload, MAX_BYTES};

const READ: &str = "deployments:read";
const WRITE: &str = "deployments:write";

async fn read_upload(m: Result<Multipart, MultipartRejection>) -> ApiResult<FileUpload> {
    let parts = super::upload::parts(m, MAX_BYTES + 1024, "a file is").await?;
    let mut up = FileUpload { filename: None, content_type: None, bytes: Vec::new(), expires_in_seconds: None };
    let mut seen_file = false;
    for p in parts {
        match p.name.as_str() {
            "file" if !seen_file => {
                seen_file = true;
                (up.filename, up.content_type, up.bytes) = (p.file_name, p.content_type, p.bytes);
            }
            "file" => return Err(ApiError::validation("one `file` per upload")),
            "expires_in_seconds" => {
                let s = String::from_utf8_lossy(&p.bytes).trim().to_owned();
                let n = s.parse().map_err(|_| ApiError::validation("`expires_in_seconds` must be an integer"))?;
                up.expires_in_seconds = Some(n);
            }
            other => return Err(ApiError::validation(format!("`{other}`: unknown field"))),
        }
    }
    if !seen_file {
        return Err(ApiError::validation("`file` is required"));
    }
    Ok(up)
}

pub async fn upload(State(st): State<AppState>, c: Caller, m: Result<Multipart, MultipartRejection>) -> Out {
    c.require(WRITE)?;
    let up = read_upload(m).await?;
    ok(st.cma.upload_file(up).await)
}

pub async fn list(State(st): State<AppState>, c: Caller, RawQuery(q): RawQuery) -> Out {
    c.require(READ)?;
    let q = Params::parse(q.as_deref(), &["limit", "page", "ids"])?;
    let ids = q.all("ids");
    ok(st.cma.list_files(&q.page()?, &ids).await)
}

pub async fn get(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(READ)?;
    ok(st.cma.file(&id).await)
}

pub async fn delete(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.delete_file(&id).await)
}

pub async fn content(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    c.require(READ)?;
    let (f, bytes) = st.cma.file_content(&id).await?;
    let ty = f["mime_type"].as_str().unwrap_or("application/octet-stream").to_owned();
    Ok(([(header::CONTENT_TYPE, ty)], bytes).into_response())
}
