//! The Files API: uploaded files kept by the facade (metadata and bytes as two documents,
//! so lists never read bytes), at most [`MAX_BYTES`] each, optionally expiring. A file is
//! used as a session's `file` resource (copied into the session's workspace at its
//! `mount_path`, under `/workspace`) or as the `file` source of an image or document block
//! (it becomes a herm attachment).

use crate::wire::{self, new_id, rfc3339};
use crate::{Error, Facade, PageQuery, Result, invalid};
use base64::Engine as _;
use herm_store::History;
use serde_json::{Value, json};

pub(crate) const KIND: &str = "file";
const CONTENT: &str = "file_content";
/// The largest file accepted.
pub const MAX_BYTES: usize = 32 * 1024 * 1024;
const MIN_EXPIRY: i64 = 3600;
const MAX_EXPIRY: i64 = 7_776_000;
const MAX_IDS: usize = 100;
/// Where files are mounted by default, and the root every mount path must be under.
const DEFAULT_DIR: &str = "/workspace/files";
const WORKSPACE: &str = "/workspace/";

/// An upload: its file name (only the last path component is kept) and bytes.
#[derive(Debug)]
pub struct FileUpload {
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
    pub expires_in_seconds: Option<i64>,
}

/// The stored name (pure): the last path component, `unnamed` when there is none.
fn stored_name(given: Option<&str>) -> String {
    let last = given.unwrap_or_default().rsplit(['/', '\\']).next().unwrap_or_default().trim();
    let name: String = last.chars().filter(|c| !c.is_control()).take(255).collect();
    if name.is_empty() || name == "." || name == ".." { "unnamed".into() } else { name }
}

/// A mount path onto a workspace path (pure): absolute under `/workspace`, no `.` or `..`.
pub(crate) fn workspace_path(mount_path: Option<&str>, filename: &str) -> Result<(String, String)> {
    let shown = match mount_path {
        None => format!("{DEFAULT_DIR}/{filename}"),
        Some(p) => p.to_owned(),
    };
    let rel = shown.strip_prefix(WORKSPACE).ok_or_else(|| {
        invalid(format!("`mount_path` must be under {WORKSPACE} (herm's sandbox files live there), not `{shown}`"))
    })?;
    if rel.is_empty() || rel.split('/').any(|s| s.is_empty() || s == "." || s == "..") || shown.len() > 1024 {
        return Err(invalid(format!("`mount_path` `{shown}` is not a file path under {WORKSPACE}")));
    }
    Ok((shown.clone(), rel.to_owned()))
}

fn shown(mut f: Value) -> Value {
    if let Some(m) = f.as_object_mut() {
        m.remove("_expires");
    }
    f
}

impl Facade {
    pub async fn upload_file(&self, up: FileUpload) -> Result<Value> {
        if up.bytes.len() > MAX_BYTES {
            return Err(invalid(format!("a file is at most {MAX_BYTES} bytes")));
        }
        let expires_at = match up.expires_in_seconds {
            None => None,
            Some(s) if (MIN_EXPIRY..=MAX_EXPIRY).contains(&s) => Some(self.engine.now() + chrono::Duration::seconds(s)),
            Some(_) => return Err(invalid(format!("`expires_in_seconds` must be {MIN_EXPIRY} to {MAX_EXPIRY}"))),
        };
        let id = new_id("file_");
        let mime = up
            .content_type
            .filter(|c| c.len() <= 255 && c.contains('/'))
            .unwrap_or_else(|| "application/octet-stream".into());
        let b64 = base64::engine::general_purpose::STANDARD.encode(&up.bytes);
        self.put(CONTENT, &id, 1, json!({"b64": b64}), History::Drop).await?;
        let f = json!({
            "id": id, "type": "file", "filename": stored_name(up.filename.as_deref()), "mime_type": mime,
            "size_bytes": up.bytes.len(), "created_at": self.now(), "downloadable": true,
            "expires_at": expires_at.map(rfc3339), "_expires": expires_at.map(|t| t.timestamp()),
        });
        if let Err(e) = self.put(KIND, &id, 1, f.clone(), History::Drop).await {
            let _ = self.engine.delete_document(CONTENT, &id).await;
            return Err(e);
        }
        Ok(shown(f))
    }

    /// A live (not expired) file's metadata.
    async fn file_doc(&self, id: &str) -> Result<Value> {
        let f = self.doc(KIND, id, None).await?.body;
        if f["_expires"].as_i64().is_some_and(|t| t <= self.engine.now().timestamp()) {
            return Err(Error::NotFound(KIND));
        }
        Ok(f)
    }

    pub async fn file(&self, id: &str) -> Result<Value> {
        Ok(shown(self.file_doc(id).await?))
    }

    /// A file's bytes and its metadata.
    pub async fn file_content(&self, id: &str) -> Result<(Value, Vec<u8>)> {
        let f = self.file_doc(id).await?;
        let c = self.doc(CONTENT, id, None).await?.body;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(c["b64"].as_str().unwrap_or_default())
            .map_err(|e| Error::Internal(format!("a stored file is not base64: {e}")))?;
        Ok((shown(f), bytes))
    }

    pub async fn delete_file(&self, id: &str) -> Result<Value> {
        self.doc(KIND, id, None).await?;
        self.engine.delete_document(CONTENT, id).await?;
        self.engine.delete_document(KIND, id).await?;
        Ok(json!({"id": id, "type": "file_deleted"}))
    }

    /// Newest first; with `ids`, those of them that exist, in one page.
    pub async fn list_files(&self, q: &PageQuery, ids: &[String]) -> Result<wire::Page> {
        let now = self.engine.now().timestamp();
        let live = |f: &Value| f["_expires"].as_i64().is_none_or(|t| t > now);
        if !ids.is_empty() {
            if ids.len() > MAX_IDS || q.page.is_some() || q.limit.is_some() {
                return Err(invalid(format!("`ids` (at most {MAX_IDS}) cannot be combined with `page` or `limit`")));
            }
            let mut data = Vec::new();
            for id in ids {
                if let Some(d) = self.engine.document(KIND, id, None).await?
                    && live(&d.body)
                    && !data.iter().any(|f: &Value| f["id"] == id.as_str())
                {
                    data.push(shown(d.body));
                }
            }
            return Ok(wire::Page { data, next_page: None });
        }
        let (docs, next_page) = self.doc_page(KIND, q, true, live).await?;
        Ok(wire::Page { data: docs.into_iter().map(shown).collect(), next_page })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_their_last_component_and_mounts_stay_in_the_workspace() {
        let table = [
            (Some("a/b/report.csv"), "report.csv"),
            (Some("C:\\x\\y.txt"), "y.txt"),
            (Some(""), "unnamed"),
            (None, "unnamed"),
            (Some("../.."), "unnamed"),
        ];
        for (given, want) in table {
            assert_eq!(stored_name(given), want, "{given:?}");
        }
        assert_eq!(workspace_path(None, "a.csv").unwrap(), ("/workspace/files/a.csv".into(), "files/a.csv".into()));
        assert_eq!(workspace_path(Some("/workspace/data/in.csv"), "a").unwrap().1, "data/in.csv");
        for bad in ["/mnt/data/a.csv", "/workspace/", "/workspace/../etc/passwd", "/workspace/a//b", "data/a.csv"] {
            assert!(workspace_path(Some(bad), "a").is_err(), "{bad}");
        }
    }
}
