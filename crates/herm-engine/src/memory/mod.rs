//! Observational memory: path-addressed documents of a deployment, kept in the store (every
//! change a version) and mirrored as files under `/workspace/memory` for the agent's file
//! tools (`files.rs`). The Memories API's operations live here, with the one way a memory
//! changes ([`Engine::put_memory`]: checked, redacted against the whole vault, conditional on
//! the version read). Loading into a run is `load.rs` (ranking in the pure `rank.rs`); the
//! agent's tools are `tools.rs`; other deployments' memories mounted by name are
//! `mounts.rs`; the observer and dreams are `observer.rs` and `dream.rs`.

pub mod dream;
pub mod files;
pub mod load;
pub mod mounts;
pub mod observer;
pub mod rank;
pub mod tools;

pub use herm_store::MemoryQuery;

use crate::revise::Retries;
use crate::{Engine, Error, Result};
use herm_store::{DeploymentRecord, Expected, MemoryRecord, MemoryText, MemoryWrite};
use herm_types::memory::{self as m, Memory, MemoryCreate, MemorySource, MemoryUpdate, MemoryVersion};
use herm_types::*;

/// Who is writing a memory, and for which run.
#[derive(Clone, Debug)]
pub struct Writer {
    pub source: MemorySource,
    pub run: Option<RunId>,
    /// The workspace file now holds the written content (the write comes from the file).
    pub from_file: bool,
}

impl Writer {
    pub fn api() -> Self {
        Self { source: MemorySource::Api, run: None, from_file: false }
    }
    pub fn agent(run: Option<RunId>) -> Self {
        Self { source: MemorySource::Agent, run, from_file: false }
    }
}

/// The API view of a live memory.
pub(crate) fn view(r: MemoryRecord) -> Option<Memory> {
    Some(Memory {
        content: r.content?,
        memory_id: r.id,
        path: r.path,
        source: r.source,
        version: r.version,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

/// A live memory as ranking sees it.
pub(crate) fn doc(m: &MemoryText) -> rank::Doc<'_> {
    rank::Doc { path: &m.path, content: &m.content, updated_at: m.updated_at }
}

/// SHA-256 of a memory's text, hex (what the file sync compares).
pub(crate) fn sha(content: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(content.as_bytes()))
}

impl Engine {
    /// Live memories of a deployment, newest first (`q`: a case-insensitive substring of the
    /// path or the content; `prefix`: a path prefix).
    pub async fn list_memories(&self, dep: &DeploymentId, q: MemoryQuery) -> Result<Vec<Memory>> {
        self.deployment(dep).await?;
        Ok(self.store().list_memories(dep, q).await?.into_iter().filter_map(view).collect())
    }

    /// A live memory of the deployment.
    pub async fn memory(&self, dep: &DeploymentId, id: &MemoryId) -> Result<Memory> {
        self.live_memory(dep, id).await.and_then(|r| view(r).ok_or(Error::NotFound("memory")))
    }

    async fn live_memory(&self, dep: &DeploymentId, id: &MemoryId) -> Result<MemoryRecord> {
        match self.store().get_memory(id).await? {
            Some(r) if &r.deployment_id == dep && r.content.is_some() => Ok(r),
            _ => Err(Error::NotFound("memory")),
        }
    }

    /// `POST …/memories`: a new memory written by an operator.
    pub async fn create_memory(&self, dep: &DeploymentId, body: MemoryCreate) -> Result<Memory> {
        let d = self.deployment(dep).await?;
        let id = MemoryId::new();
        let path = match body.path {
            Some(p) => m::check_path(&p).map_err(Error::Validation)?,
            None => format!("notes/{id}.md"),
        };
        if self.store().memory_at(dep, &path).await?.is_some() {
            return Err(Error::Conflict(format!("a memory already lives at `{path}`")));
        }
        let r = self.write_version(dep, id, path, Some(body.content), Writer::api(), Expected::Absent).await?;
        self.memory_changed(&d, false).await;
        view(r).ok_or(Error::NotFound("memory"))
    }

    /// `PATCH …/memories/{id}`: new content or a new path, at the version `If-Match` names
    /// (or the current one, re-read if another write lands first).
    pub async fn update_memory(
        &self,
        dep: &DeploymentId,
        id: &MemoryId,
        body: MemoryUpdate,
        if_match: Option<i64>,
    ) -> Result<Memory> {
        if body.content.is_none() && body.path.is_none() {
            return Err(Error::Validation("give `content`, `path` or both".into()));
        }
        let path = body.path.as_deref().map(m::check_path).transpose().map_err(Error::Validation)?;
        let d = self.deployment(dep).await?;
        let mut retries = Retries::default();
        loop {
            let cur = self.live_memory(dep, id).await?;
            crate::revise::check_if_match(if_match, cur.version)?;
            let content = body.content.clone().or(cur.content.clone());
            let path = path.clone().unwrap_or(cur.path.clone());
            match self
                .write_version(dep, id.clone(), path, content, Writer::api(), Expected::Version(cur.version))
                .await
            {
                Ok(r) => {
                    self.memory_changed(&d, false).await;
                    return view(r).ok_or(Error::NotFound("memory"));
                }
                Err(Error::PreconditionFailed) if if_match.is_none() => retries.lost().await?,
                Err(e) => return Err(e),
            }
        }
    }

    /// `DELETE …/memories/{id}`: the memory, every version of it and its file are gone (a
    /// data-deletion request); nothing later loads it.
    pub async fn delete_memory(&self, dep: &DeploymentId, id: &MemoryId, if_match: Option<i64>) -> Result<()> {
        let cur = match self.store().get_memory(id).await? {
            Some(r) if &r.deployment_id == dep => r,
            _ => return Err(Error::NotFound("memory")),
        };
        crate::revise::check_if_match(if_match, cur.version)?;
        // No file sync may run between the purge and the file's removal: it would take the
        // file for a new memory the agent wrote.
        let lock = self.memory_sync_lock(dep);
        let _one = lock.lock().await;
        self.store().purge_memory(id).await?;
        self.remove_memory_file(dep, &cur.path).await
    }

    /// Every version of a memory of the deployment (a deleted one's too, until it is purged).
    pub async fn memory_versions(&self, dep: &DeploymentId, id: &MemoryId) -> Result<Vec<MemoryVersion>> {
        match self.store().get_memory(id).await? {
            Some(r) if &r.deployment_id == dep => {}
            _ => return Err(Error::NotFound("memory")),
        }
        Ok(self.store().memory_versions(id).await?.into_iter().map(|v| v.version).collect())
    }

    /// Clears the content of an earlier version (the current one is changed or deleted
    /// instead: redacting it would leave the memory without text).
    pub async fn redact_memory_version(
        &self,
        dep: &DeploymentId,
        id: &MemoryId,
        version: i64,
    ) -> Result<MemoryVersion> {
        let cur = match self.store().get_memory(id).await? {
            Some(r) if &r.deployment_id == dep => r,
            _ => return Err(Error::NotFound("memory")),
        };
        if cur.content.is_some() && cur.version == version {
            return Err(Error::Conflict(
                "this is the memory's current version: update or delete the memory instead".into(),
            ));
        }
        if !self.store().redact_memory_version(id, version).await? {
            return Err(Error::NotFound("memory version"));
        }
        self.store()
            .memory_versions(id)
            .await?
            .into_iter()
            .map(|v| v.version)
            .find(|v| v.version == version)
            .ok_or(Error::NotFound("memory version"))
    }

    /// Writes `content` (or deletes, with `None`) at `path` for `who`: creates the memory if
    /// no live one is there, else a new version of it, at `expected` when given (a lost race
    /// is then [`Error::PreconditionFailed`]) or at whatever version is current.
    pub(crate) async fn put_memory(
        &self,
        d: &DeploymentRecord,
        path: &str,
        content: Option<String>,
        who: Writer,
        expected: Option<i64>,
    ) -> Result<MemoryRecord> {
        let dep = &d.id;
        let path = m::check_path(path).map_err(Error::Validation)?;
        let from_file = who.from_file;
        let mut retries = Retries::default();
        loop {
            let attempt = match (self.store().memory_at(dep, &path).await?, &content) {
                (None, None) => return Err(Error::NotFound("memory")),
                (None, Some(_)) if expected.is_some_and(|v| v != 0) => return Err(Error::PreconditionFailed),
                (None, Some(_)) => {
                    self.write_version(
                        dep,
                        MemoryId::new(),
                        path.clone(),
                        content.clone(),
                        who.clone(),
                        Expected::Absent,
                    )
                    .await
                }
                (Some(cur), _) => {
                    crate::revise::check_if_match(expected, cur.version)?;
                    if content.is_some() && content == cur.content {
                        return Ok(cur);
                    }
                    let e = Expected::Version(cur.version);
                    self.write_version(dep, cur.id, path.clone(), content.clone(), who.clone(), e).await
                }
            };
            match attempt {
                Ok(r) => {
                    self.memory_changed(d, from_file).await;
                    return Ok(r);
                }
                // Another write landed first (or took the path): read again, unless the caller
                // asked for one version only.
                Err(Error::PreconditionFailed | Error::Conflict(_)) if expected.is_none() => retries.lost().await?,
                Err(e) => return Err(e),
            }
        }
    }

    /// One conditional write: checked, redacted against every secret the vault holds.
    async fn write_version(
        &self,
        dep: &DeploymentId,
        id: MemoryId,
        path: String,
        content: Option<String>,
        who: Writer,
        expected: Expected,
    ) -> Result<MemoryRecord> {
        let content = match content {
            Some(c) => {
                m::check_content(&c).map_err(Error::Validation)?;
                Some(self.secrets().vault_redactor().await?.redact(&c))
            }
            None => None,
        };
        let file_sha = if who.from_file { content.as_deref().map(sha) } else { None };
        let w = MemoryWrite {
            deployment_id: dep.clone(),
            memory_id: id,
            path,
            content,
            source: who.source,
            run_id: who.run,
            expected,
            file_sha,
        };
        self.store().write_memory(w).await.map_err(|e| match e {
            herm_store::Error::Stale => Error::PreconditionFailed,
            herm_store::Error::Conflict(why) => Error::Conflict(why),
            other => other.into(),
        })
    }

    /// After any memory change: the workspace files follow (unless the change came from
    /// them), and a dreaming deployment dreams once it stays idle.
    async fn memory_changed(&self, d: &DeploymentRecord, from_file: bool) {
        if !from_file {
            self.push_memory_files_soon(&d.id);
        }
        if d.spec.features.dreaming {
            let after = chrono::Duration::from_std(self.options().memory.dream_after).unwrap_or_default();
            self.arm_dream(&d.id, self.now() + after).await;
        }
    }
}
