//! A session's resources after it is made: listed and read; a `file` added (copied into
//! the workspace at its `mount_path`) or removed (its copy deleted); a `memory_store`
//! removed (its mount taken off the session's own deployment, from the next run). Memory
//! stores are attached when a session is made; GitHub repositories are refused.

use crate::sessions::{KIND, place};
use crate::wire::{self, object};
use crate::{Error, Facade, PageQuery, Result, invalid, unsupported};
use herm_store::History;
use serde_json::{Value, json};

/// A file resource's path under the workspace (what `workspace_path` made of it).
fn workspace_rel(r: &Value) -> Option<&str> {
    r["mount_path"].as_str().and_then(|p| p.strip_prefix("/workspace/"))
}

impl Facade {
    pub async fn session_resources(&self, session: &str, q: &PageQuery) -> Result<wire::Page> {
        let all = self.session_doc(session).await?.body["resources"].as_array().cloned().unwrap_or_default();
        wire::page_after_id(all, q)
    }

    pub async fn session_resource(&self, session: &str, id: &str) -> Result<Value> {
        let s = self.session_doc(session).await?.body;
        s["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["id"] == id).cloned())
            .ok_or(Error::NotFound("session_resource"))
    }

    /// Adds a `file`: copied into the workspace now, then listed on the session.
    pub async fn add_session_resource(&self, session: &str, body: &Value) -> Result<Value> {
        object(body, &["type", "file_id", "mount_path"])?;
        match body.get("type").and_then(Value::as_str) {
            Some("file") => {}
            Some("memory_store") => {
                return Err(unsupported("memory stores are attached when a session is made (`resources` on create)"));
            }
            Some("github_repository") => {
                return Err(unsupported(
                    "`github_repository` resources are not supported by herm (clone it with `bash`)",
                ));
            }
            _ => return Err(invalid("`type` must be `file`")),
        }
        let cur = self.session_doc(session).await?;
        if !cur.body["archived_at"].is_null() {
            return Err(invalid("the session is archived"));
        }
        let (shown, rel, file) = self.file_resource(body).await?;
        let taken =
            |s: &Value| s["resources"].as_array().is_some_and(|rs| rs.iter().any(|r| workspace_rel(r) == Some(&rel)));
        if taken(&cur.body) {
            return Err(invalid(format!("a file is mounted at `{}` already", shown["mount_path"])));
        }
        let (_, bytes) = self.file_content(&file).await?;
        self.write_workspace(&place(&cur.body)?, vec![(rel.clone(), bytes)]).await?;
        wire::again_on_lost_race(|| async {
            let cur = self.session_doc(session).await?;
            if taken(&cur.body) {
                return Err(invalid(format!("a file is mounted at `{}` already", shown["mount_path"])));
            }
            let mut s = cur.body.clone();
            if let Some(rs) = s["resources"].as_array_mut() {
                rs.push(shown.clone());
            }
            s["updated_at"] = json!(self.now());
            self.put(KIND, session, cur.version + 1, s, History::Drop).await
        })
        .await?;
        Ok(shown)
    }

    /// Removes a resource: a file's copy is deleted from the workspace; a memory store's
    /// mount is taken off the session's own deployment.
    pub async fn delete_session_resource(&self, session: &str, id: &str) -> Result<Value> {
        let r = self.session_resource(session, id).await?;
        let cur = self.session_doc(session).await?;
        let p = place(&cur.body)?;
        match r["type"].as_str() {
            Some("file") => {
                let rel = workspace_rel(&r).unwrap_or_default();
                match self.engine.delete_file(&p.deployment, rel).await {
                    Ok(()) | Err(herm_engine::Error::NotFound(_)) | Err(herm_engine::Error::NoSandbox) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            _ if p.shared => {
                return Err(unsupported("a session that shares its deployment cannot remove a memory store alone"));
            }
            _ => {
                let store = r["memory_store_id"].as_str().unwrap_or_default();
                let store_dep = self.memory_store_and_deployment(store).await.ok().map(|(_, d)| d);
                let d = self.engine.deployment(&p.deployment).await?;
                let mounts: Vec<_> = d
                    .spec
                    .memory_mounts
                    .iter()
                    .filter(|m| Some(&m.deployment_id) != store_dep.as_ref())
                    .cloned()
                    .collect();
                let patch = herm_types::config::DeploymentPatch { memory_mounts: Some(mounts), ..Default::default() };
                match self.engine.patch_deployment(&p.deployment, patch, Some(d.revision)).await {
                    Err(herm_engine::Error::PreconditionFailed) => {
                        return Err(Error::Conflict(
                            "the session's deployment changed while this request was applied".into(),
                        ));
                    }
                    other => {
                        other?;
                    }
                }
            }
        }
        wire::again_on_lost_race(|| async {
            let cur = self.session_doc(session).await?;
            let mut s = cur.body.clone();
            if let Some(rs) = s["resources"].as_array_mut() {
                rs.retain(|r| r["id"] != id);
            }
            s["updated_at"] = json!(self.now());
            self.put(KIND, session, cur.version + 1, s, History::Drop).await
        })
        .await?;
        Ok(json!({"id": id, "type": "session_resource_deleted"}))
    }
}
