//! Sessions: a thread of a herm deployment made from the session's pinned agent version, its
//! environment and its vaults. By default each session has its own deployment (its own
//! sandbox and files, as in CMA); with `share_by_metadata_key` set, sessions carrying that
//! metadata key share one deployment per (agent version, environment, key value).

use crate::agents::{self, Range};
use crate::session_update::{budget, shown_budget};
use crate::wire::{self, metadata, new_id, object, string};
use crate::{Error, Facade, PageQuery, Result, events, invalid, project, spec, tools};
use herm_store::History;
use herm_types::*;
use serde_json::{Value, json};
use sha2::Digest;

pub(crate) const KIND: &str = "session";
const SHARED: &str = "shared_deployment";
/// Where a session document keeps its herm deployment and thread (never shown).
const HERM: &str = "_herm";
const FIELDS: &[&str] =
    &["agent", "environment_id", "title", "metadata", "vault_ids", "resources", "initial_events", "budget"];
pub(crate) const MAX_VAULTS: usize = 50;
const MAX_INITIAL: usize = 50;

/// Where a session runs in herm.
#[derive(Clone, Debug)]
pub struct Place {
    pub deployment: DeploymentId,
    pub thread: ThreadId,
    pub shared: bool,
}

pub(crate) fn place(s: &Value) -> Result<Place> {
    let h = &s[HERM];
    let deployment = h["deployment_id"].as_str().and_then(|d| DeploymentId::parse(d).ok());
    let thread = h["thread_id"].as_str().and_then(|t| ThreadId::parse(t).ok());
    match (deployment, thread) {
        (Some(deployment), Some(thread)) => Ok(Place { deployment, thread, shared: h["shared"] == true }),
        _ => Err(Error::NotFound(KIND)),
    }
}

/// The agent a session pins: an id (latest version), `{type: agent, id, version?}`, or
/// `{type: agent_with_overrides, …}` with session-local model, system, tools or servers.
async fn pinned(f: &Facade, v: Option<&Value>) -> Result<(Value, bool)> {
    let (id, version, overrides) = match v {
        Some(Value::String(id)) => (id.clone(), None, None),
        Some(Value::Object(m)) => {
            let id = m.get("id").and_then(Value::as_str).ok_or_else(|| invalid("`agent.id` is required"))?;
            let version = match m.get("version") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_i64().ok_or_else(|| invalid("`agent.version` must be an integer"))?),
            };
            match m.get("type").and_then(Value::as_str) {
                Some("agent") | None => (id.to_owned(), version, None),
                Some("agent_with_overrides") => (id.to_owned(), version, Some(m.clone())),
                Some(_) => return Err(invalid("`agent.type` must be `agent` or `agent_with_overrides`")),
            }
        }
        _ => return Err(invalid("`agent` is required: an agent id or an agent reference")),
    };
    let mut a = f.agent(&id, version).await.map_err(crate::missing(format!("agent `{id}` (version {version:?})")))?;
    if !a["archived_at"].is_null() {
        return Err(invalid(format!("agent `{id}` is archived")));
    }
    let Some(o) = overrides else { return Ok((a, false)) };
    for k in o.keys() {
        if !["type", "id", "version", "model", "system", "tools", "mcp_servers", "skills"].contains(&k.as_str()) {
            return Err(invalid(format!("`agent.{k}`: unknown field")));
        }
    }
    if o.get("skills").is_some() {
        a["skills"] = json!(f.agent_skills(o.get("skills")).await?);
    }
    if let Some(m) = o.get("model") {
        a["model"] = agents::model(m)?;
    }
    if let Some(s) = o.get("system") {
        a["system"] = s.clone();
    }
    let t = o.get("tools").unwrap_or(&a["tools"]).clone();
    let s = o.get("mcp_servers").unwrap_or(&a["mcp_servers"]).clone();
    let (t, s) = tools::normalize(Some(&t), Some(&s))?;
    a["tools"] = json!(t);
    a["mcp_servers"] = json!(s);
    Ok((a, true))
}

/// The agent as a session shows it (the configuration, without its own bookkeeping).
fn snapshot(a: &Value) -> Value {
    let mut s = a.clone();
    if let Some(m) = s.as_object_mut() {
        for k in ["metadata", "created_at", "updated_at", "archived_at"] {
            m.remove(k);
        }
    }
    s
}

pub(crate) fn strings(v: Option<&Value>, field: &str, max: usize) -> Result<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) if a.len() <= max => a
            .iter()
            .map(|s| s.as_str().map(str::to_owned).ok_or_else(|| invalid(format!("`{field}` must hold strings"))))
            .collect(),
        Some(_) => Err(invalid(format!("`{field}` must be an array of at most {max} ids"))),
    }
}

impl Facade {
    pub async fn create_session(&self, body: &Value) -> Result<Value> {
        self.create_session_from(new_id("sesn_"), body, true, None).await
    }

    /// Creates session `id` ([`Error::Conflict`] if it exists, nothing else made), made by
    /// scheduled deployment `deployment` if any, sending its `initial_events` when
    /// `send_initial` (a session whose first events cannot be taken is then removed again).
    pub(crate) async fn create_session_from(
        &self,
        id: String,
        body: &Value,
        send_initial: bool,
        deployment: Option<&str>,
    ) -> Result<Value> {
        object(body, FIELDS)?;
        let (agent, overridden) = pinned(self, body.get("agent")).await?;
        let env_id = string(body, "environment_id", 256, true)?.unwrap_or_default();
        let env = self.environment(&env_id).await.map_err(crate::missing(format!("environment `{env_id}`")))?;
        if !env["archived_at"].is_null() {
            return Err(invalid(format!("environment `{env_id}` is archived")));
        }
        let vault_ids = strings(body.get("vault_ids"), "vault_ids", MAX_VAULTS)?;
        let resources = self.resources(body.get("resources")).await?;
        let skills = self.resolve_skills(&agent["skills"]).await?;
        let attached = spec::Attached {
            bearers: self.bearers(&vault_ids).await?,
            mounts: resources.mounts,
            skills: skills.iter().map(|s| s.spec.clone()).collect(),
            max_cost_usd: budget(body.get("budget"))?,
        };
        if attached.max_cost_usd.is_some() {
            self.budgetable(&agent).await?;
        }
        let title = string(body, "title", 512, false)?;
        let metadata = metadata(body.get("metadata"))?;
        let initial = match body.get("initial_events") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(a)) if a.len() <= MAX_INITIAL => a.clone(),
            Some(_) => return Err(invalid(format!("`initial_events` holds at most {MAX_INITIAL} events"))),
        };
        for e in &initial {
            match e.get("type").and_then(Value::as_str) {
                Some("user.message") => {
                    self.message(e).await?;
                }
                Some("user.define_outcome") => {
                    events::outcome(e)?;
                }
                _ => {
                    return Err(invalid(
                        "`initial_events` may hold `user.message` and `user.define_outcome` events only",
                    ));
                }
            }
        }
        let share = self
            .options
            .share_by_metadata_key
            .as_ref()
            .and_then(|k| metadata.get(k))
            .and_then(Value::as_str)
            .filter(|_| !overridden)
            .map(str::to_owned);
        let place = match share {
            Some(key) => self.shared_place(&agent, &env, &attached, &key).await?,
            None => {
                let spec = spec::deployment(&agent, &env, &attached, &id, &self.options.default_provider)?;
                let d = self.engine.create_deployment(spec).await?;
                Place { deployment: d.id, thread: d.default_thread_id, shared: false }
            }
        };
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for s in skills {
            let dir = format!("{}/{}", crate::skills::WORKSPACE_DIR, s.spec.name);
            files.extend(s.files.into_iter().map(|(p, b)| (format!("{dir}/{p}"), b)));
        }
        let mut copied = Ok(());
        for (at, id) in &resources.files {
            match self.file_content(id).await {
                Ok((_, bytes)) => files.push((at.clone(), bytes)),
                Err(e) => copied = Err(e),
            }
        }
        if let Err(e) = match copied {
            Ok(()) => self.write_workspace(&place, files).await,
            Err(e) => Err(e),
        } {
            self.forget_place(&place).await;
            return Err(e);
        }
        let t = self.now();
        let s = json!({
            "id": id,
            "type": "session",
            "title": title,
            "agent": snapshot(&agent),
            "environment_id": env_id,
            "vault_ids": vault_ids,
            "resources": resources.shown,
            "metadata": metadata,
            "outcome_evaluations": [],
            "budget": shown_budget(attached.max_cost_usd),
            "deployment_id": deployment,
            "created_at": t,
            "updated_at": t,
            "archived_at": null,
            HERM: {"deployment_id": place.deployment.as_str(), "thread_id": place.thread.as_str(), "shared": place.shared},
        });
        let made = match self.remember_thread(&place.thread, &id).await {
            Ok(()) => self.put(KIND, &id, 1, s.clone(), History::Drop).await,
            Err(e) => Err(e),
        };
        if let Err(e) = made {
            self.forget_place(&place).await;
            return Err(e);
        }
        for e in initial.iter().filter(|_| send_initial) {
            // A session whose first events cannot be taken is not left behind half made.
            if let Err(err) = self.send_events(&id, &json!({"events": [e]})).await {
                let _ = self.delete_session(&id).await;
                return Err(err);
            }
        }
        self.session(&id).await
    }

    /// Writes files into the session's workspace (its skills' files, its `file` resources),
    /// once its sandbox is there.
    pub(crate) async fn write_workspace(&self, p: &Place, files: Vec<(String, Vec<u8>)>) -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        self.ready(p).await?;
        for (at, bytes) in files {
            self.engine.write_file(&p.deployment, &at, bytes).await.map_err(|e| match e {
                herm_engine::Error::NoSandbox => crate::unsupported(
                    "this session has files for its sandbox (its skills' or its `file` resources), and this server runs no sandbox",
                ),
                e => e.into(),
            })?;
        }
        Ok(())
    }

    /// Removes what a session creation made before it failed.
    async fn forget_place(&self, p: &Place) {
        self.forget_thread(&p.thread).await;
        let gone = if p.shared {
            self.engine.delete_thread(&p.deployment, &p.thread).await
        } else {
            self.engine.delete_deployment(&p.deployment, None, false).await
        };
        if let Err(e) = gone {
            tracing::warn!(deployment = %p.deployment, error = %e, "a failed session's deployment was not removed");
        }
    }

    /// One deployment per (agent version, environment, key value), made on first use.
    async fn shared_place(&self, agent: &Value, env: &Value, attached: &spec::Attached, key: &str) -> Result<Place> {
        let mut h = sha2::Sha256::new();
        // Sessions share a deployment only when it would be made the same.
        let mounted =
            serde_json::to_string(&(&attached.mounts, &attached.skills, attached.max_cost_usd)).unwrap_or_default();
        for part in
            [agent["id"].to_string(), agent["version"].to_string(), env["id"].to_string(), key.to_owned(), mounted]
        {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let doc_id = hex::encode(&h.finalize()[..16]);
        if let Some(d) = self.engine.document(SHARED, &doc_id, None).await?
            && let Some(dep) = d.body["deployment_id"].as_str().and_then(|d| DeploymentId::parse(d).ok())
            && self.engine.deployment(&dep).await.is_ok()
        {
            let t = self.engine.create_thread(&dep, None).await?;
            return Ok(Place { deployment: dep, thread: t.id, shared: true });
        }
        let spec = spec::deployment(agent, env, attached, key, &self.options.default_provider)?;
        let d = self.engine.create_deployment(spec).await?;
        let next = self.engine.document(SHARED, &doc_id, None).await?.map(|d| d.version + 1).unwrap_or(1);
        if let Err(e) = self.put(SHARED, &doc_id, next, json!({"deployment_id": d.id.as_str()}), History::Drop).await {
            // Another session made it first: use theirs.
            let _ = self.engine.delete_deployment(&d.id, None, false).await;
            let Some(doc) = self.engine.document(SHARED, &doc_id, None).await? else { return Err(e) };
            let dep = doc.body["deployment_id"].as_str().and_then(|d| DeploymentId::parse(d).ok()).ok_or(e)?;
            let t = self.engine.create_thread(&dep, None).await?;
            return Ok(Place { deployment: dep, thread: t.id, shared: true });
        }
        // A thread of its own (not the default one), so deleting the session can remove it.
        let t = self.engine.create_thread(&d.id, None).await?;
        Ok(Place { deployment: d.id, thread: t.id, shared: true })
    }

    pub(crate) async fn session_doc(&self, id: &str) -> Result<herm_store::Document> {
        self.doc(KIND, id, None).await
    }

    /// The session with its live status and usage.
    pub async fn session(&self, id: &str) -> Result<Value> {
        let d = self.session_doc(id).await?;
        let p = place(&d.body)?;
        let log = self.engine.thread_log(&p.thread).await.unwrap_or_default();
        let (_, folded) = project::fold(&log, self.projector(&p).await?);
        let mut s = self.shown(d.body, Some(folded.usage())).await?;
        s["outcome_evaluations"] = json!(folded.outcome_evaluations());
        Ok(s)
    }

    async fn shown(&self, mut s: Value, usage: Option<&project::Usage>) -> Result<Value> {
        let p = place(&s)?;
        let status = match (self.engine.deployment(&p.deployment).await, self.engine.thread(&p.thread).await) {
            (Err(_), _) | (_, Err(_)) => "terminated",
            (Ok(d), _) if d.status == DeploymentStatus::Error => "terminated",
            (_, Ok(t)) if t.status == ThreadStatus::Running => "running",
            _ => "idle",
        };
        if let Some(m) = s.as_object_mut() {
            m.remove(HERM);
        }
        s["status"] = json!(status);
        s["stats"] = json!({});
        s["usage"] = match usage {
            Some(u) => json!({
                "input_tokens": u.input_tokens,
                "output_tokens": u.output_tokens,
                "cache_read_input_tokens": 0,
                "list_cost": {"amount": format!("{:.6}", u.cost_usd), "currency": "USD"},
            }),
            None => json!({}),
        };
        Ok(s)
    }

    /// Archived: kept and readable, takes no more events; its run, if any, is interrupted.
    pub async fn archive_session(&self, id: &str) -> Result<Value> {
        let cur = self.session_doc(id).await?;
        if cur.body["archived_at"].is_null() {
            let mut s = cur.body.clone();
            s["archived_at"] = json!(self.now());
            s["updated_at"] = s["archived_at"].clone();
            self.put(KIND, id, cur.version + 1, s, History::Drop).await?;
            let p = place(&cur.body)?;
            match self.engine.interrupt(&p.thread, Some("the session was archived".into())).await {
                Ok(_) | Err(herm_engine::Error::NoActiveRun) | Err(herm_engine::Error::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.session(id).await
    }

    /// Deleted with its deployment (or, when shared, its thread).
    pub async fn delete_session(&self, id: &str) -> Result<Value> {
        let cur = self.session_doc(id).await?;
        let p = place(&cur.body)?;
        let gone = if p.shared {
            self.engine.delete_thread(&p.deployment, &p.thread).await
        } else {
            self.engine.delete_deployment(&p.deployment, None, false).await
        };
        match gone {
            Ok(()) | Err(herm_engine::Error::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.forget_thread(&p.thread).await;
        self.engine.delete_document(KIND, id).await?;
        Ok(json!({"id": id, "type": "session_deleted"}))
    }

    pub async fn list_sessions(&self, q: &PageQuery, f: &SessionFilter) -> Result<wire::Page> {
        let desc = f.order.as_deref() != Some("asc");
        if !matches!(f.order.as_deref(), None | Some("asc") | Some("desc")) {
            return Err(invalid("`order` must be `asc` or `desc`"));
        }
        let (docs, next_page) = self
            .doc_page(KIND, q, desc, |s| {
                (f.include_archived || s["archived_at"].is_null())
                    && f.agent_id.as_ref().is_none_or(|a| s["agent"]["id"] == a.as_str())
                    && f.agent_version.is_none_or(|v| s["agent"]["version"] == v)
                    && f.created.holds(&s["created_at"])
                    && f.deployment_id.as_ref().is_none_or(|d| s["deployment_id"] == d.as_str())
                    && f.memory_store_id.as_ref().is_none_or(|m| {
                        s["resources"].as_array().is_some_and(|r| r.iter().any(|r| r["memory_store_id"] == m.as_str()))
                    })
            })
            .await?;
        let mut data = Vec::new();
        for s in docs {
            let s = self.shown(s, None).await?;
            if f.statuses.is_empty() || f.statuses.iter().any(|st| s["status"] == st.as_str()) {
                data.push(s);
            }
        }
        Ok(wire::Page { data, next_page })
    }
}

/// `GET /v1/sessions` filters.
#[derive(Clone, Debug, Default)]
pub struct SessionFilter {
    pub order: Option<String>,
    pub agent_id: Option<String>,
    pub agent_version: Option<i64>,
    pub deployment_id: Option<String>,
    pub memory_store_id: Option<String>,
    pub include_archived: bool,
    pub statuses: Vec<String>,
    pub created: Range,
}

impl Facade {
    /// Where a session runs, refusing archived sessions when `live`.
    pub(crate) async fn place_of(&self, id: &str, live: bool) -> Result<Place> {
        let d = self.session_doc(id).await?;
        if live && !d.body["archived_at"].is_null() {
            return Err(invalid("the session is archived"));
        }
        place(&d.body)
    }

    /// Waits until the session's deployment is ready (a new sandbox takes a moment); the
    /// deployment as it then is.
    pub(crate) async fn ready(&self, p: &Place) -> Result<herm_store::DeploymentRecord> {
        let deadline = tokio::time::Instant::now() + self.options.ready_timeout;
        loop {
            let d = self.engine.deployment(&p.deployment).await?;
            match d.status {
                DeploymentStatus::Ready => return Ok(d),
                DeploymentStatus::Provisioning if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                DeploymentStatus::Provisioning => {
                    return Err(Error::Engine(herm_engine::Error::NotReady));
                }
                _ => {
                    return Err(Error::Conflict(format!(
                        "the session's sandbox failed to start: {}",
                        d.error.unwrap_or_default()
                    )));
                }
            }
        }
    }
}
