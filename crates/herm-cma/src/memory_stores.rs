//! Memory stores and their memories, on herm's memory: each store is a herm deployment that
//! only holds memories (no sandbox, never runs), so a memory has herm's paths, versions,
//! conditional writes and redaction. CMA's paths are absolute (`/notes/a.md`), herm's
//! relative (`notes/a.md`); a `content_sha256` precondition is checked against the version
//! read and the write is conditional on that version. Deleting a memory purges it with its
//! history (herm's data-deletion rule). Sessions mount stores (`resources.rs`); a version
//! one of their runs wrote names the session.

use crate::wire::{self, metadata, new_id, object, patch_metadata, rfc3339, string};
use crate::{Error, Facade, PageQuery, Result, invalid};
use herm_store::History;
use herm_types::config::{DeploymentSpec, Features, SandboxSpec};
use herm_types::memory::{Memory, MemoryCreate, MemoryUpdate, MemoryVersion};
use herm_types::*;
use serde_json::{Value, json};
use sha2::Digest;

pub(crate) const KIND: &str = "memory_store";
const HERM: &str = "_herm";
/// Memories a list reads at most (it is sorted by path and paged).
const MAX_LISTED: usize = 10_000;
const MAX_FULL_PAGE: usize = 20;

fn sha(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// CMA's absolute path onto herm's relative one.
fn herm_path(p: &str) -> Result<String> {
    let rel = p.strip_prefix('/').ok_or_else(|| invalid("a memory `path` starts with `/`"))?;
    herm_types::memory::check_path(rel).map_err(|e| invalid(format!("`path`: {e}")))
}

fn version_id(m: &MemoryId, v: i64) -> String {
    format!("memver_{}_{v}", m.as_str().trim_start_matches(MemoryId::PREFIX))
}

fn parse_version_id(id: &str) -> Option<(MemoryId, i64)> {
    let rest = id.strip_prefix("memver_")?;
    let (m, v) = rest.rsplit_once('_')?;
    Some((MemoryId::parse(&format!("{}{m}", MemoryId::PREFIX)).ok()?, v.parse().ok()?))
}

fn shown_memory(store: &str, m: &Memory, full: bool) -> Value {
    let mut v = json!({
        "id": m.memory_id.as_str(),
        "type": "memory",
        "memory_store_id": store,
        "memory_version_id": version_id(&m.memory_id, m.version),
        "path": format!("/{}", m.path),
        "content_sha256": sha(&m.content),
        "content_size_bytes": m.content.len(),
        "created_at": rfc3339(m.created_at),
        "updated_at": rfc3339(m.updated_at),
    });
    if full {
        v["content"] = json!(m.content);
    }
    v
}

fn shown_version(store: &str, m: &MemoryId, v: &MemoryVersion, full: bool, created_by: Value) -> Value {
    let mut out = json!({
        "id": version_id(m, v.version),
        "type": "memory_version",
        "memory_id": m.as_str(),
        "memory_store_id": store,
        "operation": v.operation,
        "path": format!("/{}", v.path),
        "created_by": created_by,
        "redacted_at": v.redacted_at.map(rfc3339),
        "created_at": rfc3339(v.created_at),
    });
    if let Some(c) = &v.content {
        out["content_sha256"] = json!(sha(c));
        out["content_size_bytes"] = json!(c.len());
        if full {
            out["content"] = json!(c);
        }
    }
    out
}

/// `view`: `basic` (no content) or `full`.
pub fn full_view(view: Option<&str>, default: bool) -> Result<bool> {
    match view {
        None => Ok(default),
        Some("full") => Ok(true),
        Some("basic") => Ok(false),
        Some(_) => Err(invalid("`view` must be `basic` or `full`")),
    }
}

fn precondition_failed() -> Error {
    Error::Precondition("the memory's content is not the one the precondition names: read it again".into())
}

impl Facade {
    pub async fn create_memory_store(&self, body: &Value) -> Result<Value> {
        object(body, &["name", "description", "metadata"])?;
        let name = string(body, "name", 256, true)?.unwrap_or_default();
        let description = string(body, "description", 2048, false)?;
        let metadata = metadata(body.get("metadata"))?;
        let id = new_id("memstore_");
        let spec = DeploymentSpec {
            customer_id: id.clone(),
            name: format!("memory store {}", name.chars().take(80).collect::<String>()),
            system_prompt: String::new(),
            runtime: "hermes".into(),
            model: None,
            sandbox: SandboxSpec { enabled: false, ..SandboxSpec::default() },
            mcp_servers: vec![],
            skills: vec![],
            secrets: Default::default(),
            http_tools: vec![],
            tool_policies: Default::default(),
            busy_policy: Default::default(),
            features: Features {
                memory: true,
                dreaming: false,
                automations: false,
                steering: false,
                filesystem_webhooks: false,
            },
            limits: Default::default(),
            memory_mounts: vec![],
        };
        let d = self.engine.create_deployment(spec).await?;
        let t = self.now();
        let s = json!({
            "id": id, "type": "memory_store", "name": name, "description": description, "metadata": metadata,
            "created_at": t, "updated_at": t, "archived_at": null,
            HERM: {"deployment_id": d.id.as_str()},
        });
        if let Err(e) = self.put(KIND, &id, 1, s.clone(), History::Drop).await {
            let _ = self.engine.delete_deployment(&d.id, None, false).await;
            return Err(e);
        }
        Ok(strip(s))
    }

    async fn store_doc(&self, id: &str) -> Result<(herm_store::Document, DeploymentId)> {
        let d = self.doc(KIND, id, None).await?;
        let dep = d.body[HERM]["deployment_id"]
            .as_str()
            .and_then(|s| DeploymentId::parse(s).ok())
            .ok_or(Error::NotFound(KIND))?;
        Ok((d, dep))
    }

    /// The store as shown and its herm deployment.
    pub(crate) async fn memory_store_and_deployment(&self, id: &str) -> Result<(Value, DeploymentId)> {
        let (d, dep) = self.store_doc(id).await?;
        Ok((strip(d.body), dep))
    }

    pub async fn memory_store(&self, id: &str) -> Result<Value> {
        Ok(strip(self.store_doc(id).await?.0.body))
    }

    pub async fn update_memory_store(&self, id: &str, body: &Value) -> Result<Value> {
        object(body, &["name", "description", "metadata"])?;
        let (cur, _) = self.store_doc(id).await?;
        let mut s = cur.body.clone();
        if body.get("name").is_some() {
            s["name"] = json!(string(body, "name", 256, true)?);
        }
        if body.get("description").is_some() {
            s["description"] = json!(string(body, "description", 2048, false)?);
        }
        s["metadata"] = json!(patch_metadata(&cur.body["metadata"], body.get("metadata"))?);
        s["updated_at"] = json!(self.now());
        self.put(KIND, id, cur.version + 1, s.clone(), History::Drop).await?;
        Ok(strip(s))
    }

    pub async fn archive_memory_store(&self, id: &str) -> Result<Value> {
        let (cur, _) = self.store_doc(id).await?;
        Ok(strip(self.archive_doc(cur, History::Drop).await?))
    }

    /// Deletes the store with every memory in it.
    pub async fn delete_memory_store(&self, id: &str) -> Result<Value> {
        let (_, dep) = self.store_doc(id).await?;
        match self.engine.delete_deployment(&dep, None, false).await {
            Ok(()) | Err(herm_engine::Error::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.engine.delete_document(KIND, id).await?;
        Ok(json!({"id": id, "type": "memory_store_deleted"}))
    }

    pub async fn list_memory_stores(
        &self,
        q: &PageQuery,
        include_archived: bool,
        created: &crate::agents::Range,
    ) -> Result<wire::Page> {
        let (data, next_page) = self
            .doc_page(KIND, q, false, |s| {
                (include_archived || s["archived_at"].is_null()) && created.holds(&s["created_at"])
            })
            .await?;
        Ok(wire::Page { data: data.into_iter().map(strip).collect(), next_page })
    }

    /// The store's deployment, refusing writes to an archived store.
    async fn writable(&self, store: &str) -> Result<DeploymentId> {
        let (doc, dep) = self.store_doc(store).await?;
        if !doc.body["archived_at"].is_null() {
            return Err(invalid("the memory store is archived"));
        }
        Ok(dep)
    }

    pub async fn create_memory(&self, store: &str, body: &Value, full: bool) -> Result<Value> {
        object(body, &["path", "content"])?;
        let path = herm_path(body.get("path").and_then(Value::as_str).ok_or_else(|| invalid("`path` is required"))?)?;
        let content = body.get("content").and_then(Value::as_str).ok_or_else(|| invalid("`content` is required"))?;
        let dep = self.writable(store).await?;
        let m =
            match self.engine.create_memory(&dep, MemoryCreate { content: content.to_owned(), path: Some(path) }).await
            {
                Err(herm_engine::Error::Conflict(m)) => return Err(Error::PathConflict(m)),
                other => other?,
            };
        Ok(shown_memory(store, &m, full))
    }

    fn memory_id(id: &str) -> Result<MemoryId> {
        MemoryId::parse(id).map_err(|_| Error::NotFound("memory"))
    }

    pub async fn memory(&self, store: &str, id: &str, full: bool) -> Result<Value> {
        let (_, dep) = self.store_doc(store).await?;
        let m = self.engine.memory(&dep, &Self::memory_id(id)?).await?;
        Ok(shown_memory(store, &m, full))
    }

    /// New content or path; with `precondition.content_sha256`, only over that content.
    pub async fn update_memory(&self, store: &str, id: &str, body: &Value, full: bool) -> Result<Value> {
        object(body, &["content", "path", "precondition"])?;
        let dep = self.writable(store).await?;
        let mid = Self::memory_id(id)?;
        let path = body.get("path").and_then(Value::as_str).map(herm_path).transpose()?;
        let content = match body.get("content") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) => Some(c.clone()),
            Some(_) => return Err(invalid("`content` must be a string")),
        };
        let expected = match body.get("precondition") {
            None | Some(Value::Null) => None,
            Some(p) if p.get("type").and_then(Value::as_str) == Some("content_sha256") => Some(
                p.get("content_sha256")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("`precondition.content_sha256` is required"))?
                    .to_ascii_lowercase(),
            ),
            Some(_) => return Err(invalid("`precondition.type` must be `content_sha256`")),
        };
        let if_match = match &expected {
            None => None,
            Some(want) => {
                let cur = self.engine.memory(&dep, &mid).await?;
                if &sha(&cur.content) != want {
                    return Err(precondition_failed());
                }
                Some(cur.version)
            }
        };
        let m = match self.engine.update_memory(&dep, &mid, MemoryUpdate { content, path }, if_match).await {
            Err(herm_engine::Error::PreconditionFailed) => return Err(precondition_failed()),
            Err(herm_engine::Error::Conflict(m)) => return Err(Error::PathConflict(m)),
            other => other?,
        };
        Ok(shown_memory(store, &m, full))
    }

    /// Deletes the memory with its history; with `expected_content_sha256`, only over that.
    pub async fn delete_memory(&self, store: &str, id: &str, expected: Option<&str>) -> Result<Value> {
        let dep = self.writable(store).await?;
        let mid = Self::memory_id(id)?;
        let if_match = match expected {
            None => None,
            Some(want) => {
                let cur = self.engine.memory(&dep, &mid).await?;
                if sha(&cur.content) != want.to_ascii_lowercase() {
                    return Err(precondition_failed());
                }
                Some(cur.version)
            }
        };
        match self.engine.delete_memory(&dep, &mid, if_match).await {
            Err(herm_engine::Error::PreconditionFailed) => return Err(precondition_failed()),
            other => other?,
        }
        Ok(json!({"id": id, "type": "memory_deleted"}))
    }

    /// Memories under `path_prefix`, by path; `depth: 1` lists the prefix's children, deeper
    /// ones folded into `memory_prefix` items.
    pub async fn list_memories(&self, store: &str, q: &MemoryListQuery) -> Result<wire::Page> {
        let (_, dep) = self.store_doc(store).await?;
        let limit = q.page.limit()?;
        if q.full && limit > MAX_FULL_PAGE {
            return Err(invalid(format!("`limit` is at most {MAX_FULL_PAGE} with `view=full`")));
        }
        let prefix = q.path_prefix.clone().unwrap_or_else(|| "/".into());
        if !prefix.starts_with('/') || !prefix.ends_with('/') {
            return Err(invalid("`path_prefix` starts and ends with `/`"));
        }
        let rel = prefix.trim_start_matches('/');
        let mut all = self.all_memories(&dep, (!rel.is_empty()).then(|| rel.to_owned())).await?;
        all.retain(|m| m.path.starts_with(rel));
        all.sort_by(|a, b| a.path.cmp(&b.path));
        let mut items: Vec<Value> = Vec::new();
        for m in &all {
            let below = &m.path[rel.len()..];
            match (q.depth, below.split_once('/')) {
                (1, Some((dir, _))) => {
                    let p = format!("/{rel}{dir}/");
                    if items.last().is_none_or(|l| l["path"] != p.as_str()) {
                        items.push(json!({"type": "memory_prefix", "path": p}));
                    }
                }
                _ => items.push(shown_memory(store, m, q.full)),
            }
        }
        page_by_index(items, &q.page, limit)
    }

    /// Versions of the store's memories, newest first (of one memory with `memory_id`).
    pub async fn list_memory_versions(&self, store: &str, q: &VersionQuery) -> Result<wire::Page> {
        let (_, dep) = self.store_doc(store).await?;
        let limit = q.page.limit()?;
        let ids: Vec<MemoryId> = match &q.memory_id {
            Some(m) => vec![Self::memory_id(m)?],
            None => self.all_memories(&dep, None).await?.into_iter().map(|m| m.memory_id).collect(),
        };
        let mut versions = Vec::new();
        // Many versions come from one run: its session is looked up once.
        let mut actors: std::collections::HashMap<Option<RunId>, Value> = std::collections::HashMap::new();
        for id in ids {
            for v in self.engine.memory_versions(&dep, &id).await? {
                let op = serde_json::to_value(v.operation).unwrap_or(Value::Null);
                if q.operation.as_ref().is_none_or(|o| op == o.as_str())
                    && q.created.holds(&json!(rfc3339(v.created_at)))
                {
                    let key = v.run_id.clone().filter(|_| v.source != herm_types::memory::MemorySource::Api);
                    let by = match actors.get(&key) {
                        Some(by) => by.clone(),
                        None => {
                            let by = self.actor(&v).await;
                            actors.insert(key, by.clone());
                            by
                        }
                    };
                    if q.session_id.as_ref().is_some_and(|s| by["session_id"] != s.as_str()) {
                        continue;
                    }
                    versions.push((v.created_at, shown_version(store, &id, &v, q.full, by)));
                }
            }
        }
        versions.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1["id"].as_str().cmp(&a.1["id"].as_str())));
        page_by_index(versions.into_iter().map(|(_, v)| v).collect(), &q.page, limit)
    }

    /// Who wrote a version: the API, or the session whose run it was.
    async fn actor(&self, v: &MemoryVersion) -> Value {
        let session = match &v.run_id {
            Some(r) if v.source != herm_types::memory::MemorySource::Api => self.session_of_run(r).await,
            _ => None,
        };
        match session {
            Some(id) => json!({"type": "session_actor", "session_id": id}),
            None => json!({"type": "api_actor", "api_key_id": null}),
        }
    }

    /// Copies every live memory of one store's deployment into another's.
    pub(crate) async fn copy_memories(&self, from: &DeploymentId, to: &DeploymentId) -> Result<()> {
        for m in self.all_memories(from, None).await? {
            let body = MemoryCreate { content: m.content.clone(), path: Some(m.path.clone()) };
            self.engine.create_memory(to, body).await?;
        }
        Ok(())
    }

    /// The store's live memories (under `prefix`), at most [`MAX_LISTED`].
    async fn all_memories(&self, dep: &DeploymentId, prefix: Option<String>) -> Result<Vec<Memory>> {
        let mut all: Vec<Memory> = Vec::new();
        let mut before = None;
        loop {
            let q = herm_store::MemoryQuery { q: None, prefix: prefix.clone(), before: before.clone(), limit: 500 };
            let page = self.engine.list_memories(dep, q).await?;
            let n = page.len();
            before = page.last().map(|m| m.memory_id.clone());
            all.extend(page);
            if n < 500 || all.len() >= MAX_LISTED {
                return Ok(all);
            }
        }
    }

    pub async fn memory_version(&self, store: &str, id: &str, full: bool) -> Result<Value> {
        let (_, dep) = self.store_doc(store).await?;
        let (m, n) = parse_version_id(id).ok_or(Error::NotFound("memory_version"))?;
        let v = self
            .engine
            .memory_versions(&dep, &m)
            .await?
            .into_iter()
            .find(|v| v.version == n)
            .ok_or(Error::NotFound("memory_version"))?;
        let by = self.actor(&v).await;
        Ok(shown_version(store, &m, &v, full, by))
    }

    /// Blanks an earlier version's content (the current one is updated or deleted instead).
    pub async fn redact_memory_version(&self, store: &str, id: &str) -> Result<Value> {
        let dep = self.writable(store).await?;
        let (m, n) = parse_version_id(id).ok_or(Error::NotFound("memory_version"))?;
        let v = self.engine.redact_memory_version(&dep, &m, n).await?;
        let by = self.actor(&v).await;
        Ok(shown_version(store, &m, &v, true, by))
    }
}

fn strip(mut s: Value) -> Value {
    if let Some(m) = s.as_object_mut() {
        m.remove(HERM);
    }
    s
}

/// A page of an in-memory list by position; the token is the next position.
fn page_by_index(items: Vec<Value>, q: &PageQuery, limit: usize) -> Result<wire::Page> {
    let start = match q.page.as_deref() {
        None | Some("") => 0,
        Some(p) => p
            .strip_prefix("at_")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| invalid("`page` is not a page token of this list"))?,
    };
    let end = (start + limit).min(items.len());
    let next_page = (end < items.len()).then(|| format!("at_{end}"));
    Ok(wire::Page { data: items.into_iter().skip(start).take(limit).collect(), next_page })
}

/// `GET …/memories`.
#[derive(Clone, Debug, Default)]
pub struct MemoryListQuery {
    pub page: PageQuery,
    pub path_prefix: Option<String>,
    pub depth: u32,
    pub full: bool,
}

/// `GET …/memory_versions`.
#[derive(Clone, Debug, Default)]
pub struct VersionQuery {
    pub page: PageQuery,
    pub memory_id: Option<String>,
    pub operation: Option<String>,
    /// Only versions written by this session's runs.
    pub session_id: Option<String>,
    pub created: crate::agents::Range,
    pub full: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_round_trip_and_paths_map() {
        let m = MemoryId::new();
        assert_eq!(parse_version_id(&version_id(&m, 7)), Some((m, 7)));
        assert_eq!(parse_version_id("memver_x"), None);
        assert_eq!(herm_path("/notes/a.md").unwrap(), "notes/a.md");
        assert!(herm_path("notes/a.md").is_err());
        assert!(herm_path("/notes/../a.md").is_err());
    }
}
