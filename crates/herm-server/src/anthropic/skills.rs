//! Uploaded skills (`skills-2025-10-02`): multipart uploads read within the facade's limits
//! (files named by their path in the skill's directory), then one facade method per
//! handler. Reads need `deployments:read`, writes `deployments:write`.

use super::query::Params;
use super::routes::{Out, ok};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use herm_cma::skills::{MAX_BYTES, MAX_FILES, Upload};

const READ: &str = "deployments:read";
const WRITE: &str = "deployments:write";

/// The upload's `files` (or `files[]`) and its `display_name`, within the limits.
async fn read_upload(m: Result<Multipart, MultipartRejection>) -> ApiResult<(Vec<Upload>, Option<String>)> {
    // A little room for the display name; the files' own total is the facade's to check.
    let parts = super::upload::parts(m, MAX_BYTES + 64 * 1024, "a skill's files are").await?;
    let (mut files, mut display_name) = (Vec::new(), None);
    for p in parts {
        match p.name.as_str() {
            "files" | "files[]" => {
                let path = p.file_name.ok_or_else(|| ApiError::validation("every file needs a filename (its path)"))?;
                if files.len() == MAX_FILES {
                    return Err(ApiError::validation(format!("a skill holds at most {MAX_FILES} files")));
                }
                files.push(Upload { path, bytes: p.bytes });
            }
            "display_name" => {
                let s = String::from_utf8(p.bytes).map_err(|_| ApiError::validation("`display_name` is not UTF-8"))?;
                display_name = Some(s);
            }
            other => return Err(ApiError::validation(format!("`{other}`: unknown field"))),
        }
    }
    Ok((files, display_name))
}

pub async fn create(State(st): State<AppState>, c: Caller, m: Result<Multipart, MultipartRejection>) -> Out {
    c.require(WRITE)?;
    let (files, display_name) = read_upload(m).await?;
    ok(st.cma.create_skill(display_name, files).await)
}

pub async fn list(State(st): State<AppState>, c: Caller, RawQuery(q): RawQuery) -> Out {
    c.require(READ)?;
    let q = Params::parse(q.as_deref(), &["limit", "page", "source"])?;
    ok(st.cma.list_skills(&q.page()?, q.one("source")).await)
}

pub async fn get(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(READ)?;
    ok(st.cma.skill(&id).await)
}

pub async fn delete(State(st): State<AppState>, c: Caller, Path(id): Path<String>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.delete_skill(&id).await)
}

pub async fn create_version(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    m: Result<Multipart, MultipartRejection>,
) -> Out {
    c.require(WRITE)?;
    let (files, display_name) = read_upload(m).await?;
    if display_name.is_some() {
        return Err(ApiError::validation("`display_name`: unknown field (a version has none)"));
    }
    ok(st.cma.create_skill_version(&id, files).await)
}

pub async fn list_versions(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Out {
    c.require(READ)?;
    let q = Params::parse(q.as_deref(), &["limit", "page"])?;
    ok(st.cma.list_skill_versions(&id, &q.page()?).await)
}

pub async fn get_version(State(st): State<AppState>, c: Caller, Path((id, v)): Path<(String, String)>) -> Out {
    c.require(READ)?;
    ok(st.cma.skill_version(&id, &v).await)
}

pub async fn delete_version(State(st): State<AppState>, c: Caller, Path((id, v)): Path<(String, String)>) -> Out {
    c.require(WRITE)?;
    ok(st.cma.delete_skill_version(&id, &v).await)
}

/// The version's files as a zip archive.
pub async fn content(
    State(st): State<AppState>,
    c: Caller,
    Path((id, v)): Path<(String, String)>,
) -> ApiResult<Response> {
    c.require(READ)?;
    let bytes = st.cma.skill_version_content(&id, &v).await?;
    Ok(([(header::CONTENT_TYPE, "application/zip")], bytes).into_response())
}
