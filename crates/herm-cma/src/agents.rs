//! Agents: versioned configurations (model, system prompt, tools, MCP servers). Every update
//! writes version n+1 (conditional on n being the latest, and on the caller's `version`
//! when given); sessions pin the version they were created with.

use crate::wire::{self, metadata, new_id, object, patch_metadata, string};
use crate::{Error, Facade, PageQuery, Result, invalid, tools, unsupported};
use herm_store::History;
use herm_types::config::limits;
use serde_json::{Value, json};

pub(crate) const KIND: &str = "agent";
const FIELDS: &[&str] = &[
    "model",
    "name",
    "description",
    "system",
    "tools",
    "mcp_servers",
    "skills",
    "metadata",
    "execution_identity",
    "multiagent",
];
const MAX_NAME: usize = 256;
const MAX_DESCRIPTION: usize = 2048;

/// `model`: a string or `{id, effort?, speed?, inference_geo?}`, shown as the object.
pub(crate) fn model(v: &Value) -> Result<Value> {
    let (id, rest) = match v {
        Value::String(s) => (s.clone(), serde_json::Map::new()),
        Value::Object(m) => {
            let id = m.get("id").and_then(Value::as_str).ok_or_else(|| invalid("`model.id` is required"))?;
            (id.to_owned(), m.clone())
        }
        _ => return Err(invalid("`model` must be a string or an object with an `id`")),
    };
    if id.trim().is_empty() || id.len() > 256 {
        return Err(invalid("`model` must name a model (1-256 characters)"));
    }
    for (k, v) in &rest {
        match (k.as_str(), v) {
            ("id", _) | (_, Value::Null) => {}
            ("speed", Value::String(s)) if s == "standard" => {}
            ("speed", _) => return Err(unsupported("`model.speed` other than `standard` is not supported by herm")),
            ("effort", _) => return Err(unsupported("`model.effort` is not supported by herm yet")),
            ("inference_geo", _) => return Err(unsupported("`model.inference_geo` is not supported by herm")),
            (other, _) => return Err(invalid(format!("`model.{other}`: unknown field"))),
        }
    }
    Ok(json!({"id": id}))
}

fn refuse_unbuilt(body: &Value) -> Result<()> {
    match body.get("multiagent") {
        None | Some(Value::Null) => {}
        Some(_) => {
            return Err(unsupported("`multiagent` (coordinators, subagents, workflows) is not supported by herm"));
        }
    }
    match body.get("execution_identity") {
        None | Some(Value::Null) => {}
        Some(v) if v.get("type").and_then(Value::as_str) == Some("service_account") => {}
        Some(_) => return Err(unsupported("only the `service_account` execution identity is supported by herm")),
    }
    Ok(())
}

fn nullable_text(body: &Value, field: &str, max: usize, current: &Value) -> Result<Value> {
    match body.get(field) {
        None => Ok(current.clone()),
        Some(Value::Null) => Ok(Value::Null),
        Some(_) => Ok(string(body, field, max, false)?.map(Value::String).unwrap_or(Value::Null)),
    }
}

impl Facade {
    pub async fn create_agent(&self, body: &Value) -> Result<Value> {
        object(body, FIELDS)?;
        refuse_unbuilt(body)?;
        let name = string(body, "name", MAX_NAME, true)?;
        let model = model(body.get("model").ok_or_else(|| invalid("`model` is required"))?)?;
        let (tools, servers) = tools::normalize(body.get("tools"), body.get("mcp_servers"))?;
        let t = self.now();
        let agent = json!({
            "id": new_id("agent_"),
            "type": "agent",
            "version": 1,
            "name": name,
            "description": nullable_text(body, "description", MAX_DESCRIPTION, &Value::Null)?,
            "system": nullable_text(body, "system", limits::MAX_SYSTEM_PROMPT, &Value::Null)?,
            "model": model,
            "tools": tools,
            "mcp_servers": servers,
            "skills": self.agent_skills(body.get("skills")).await?,
            "metadata": metadata(body.get("metadata"))?,
            "execution_identity": {"type": "service_account"},
            "multiagent": null,
            "created_at": t,
            "updated_at": t,
            "archived_at": null,
        });
        let id = agent["id"].as_str().unwrap_or_default().to_owned();
        self.put(KIND, &id, 1, agent.clone(), History::Keep).await?;
        Ok(agent)
    }

    /// The latest version, or the one asked for.
    pub async fn agent(&self, id: &str, version: Option<i64>) -> Result<Value> {
        Ok(self.doc(KIND, id, version).await?.body)
    }

    /// Without a `version` lock, a write that lost a race is applied again on the version
    /// that won (the caller asked for a change, not for a change of that version).
    pub async fn update_agent(&self, id: &str, body: &Value) -> Result<Value> {
        if body.get("version").is_some_and(|v| !v.is_null()) {
            return self.update_agent_once(id, body).await;
        }
        wire::again_on_lost_race(|| self.update_agent_once(id, body)).await
    }

    async fn update_agent_once(&self, id: &str, body: &Value) -> Result<Value> {
        let mut known = FIELDS.to_vec();
        known.push("version");
        object(body, &known)?;
        refuse_unbuilt(body)?;
        let cur = self.doc(KIND, id, None).await?;
        let expected = match body.get("version") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| invalid("`version` must be an integer"))?),
        };
        if let Some(v) = expected
            && v != cur.version
        {
            return Err(Error::Conflict(format!(
                "the agent is at version {}, not {v}: read it again and reapply your change",
                cur.version
            )));
        }
        if !cur.body["archived_at"].is_null() {
            return Err(invalid("the agent is archived"));
        }
        let mut a = cur.body.clone();
        if body.get("name").is_some() {
            a["name"] = json!(string(body, "name", MAX_NAME, true)?);
        }
        if let Some(m) = body.get("model") {
            if m.is_null() {
                return Err(invalid("`model` cannot be cleared"));
            }
            a["model"] = model(m)?;
        }
        a["description"] = nullable_text(body, "description", MAX_DESCRIPTION, &a["description"])?;
        a["system"] = nullable_text(body, "system", limits::MAX_SYSTEM_PROMPT, &a["system"])?;
        let tools_in = if body.get("tools").is_some() { body.get("tools") } else { Some(&cur.body["tools"]) };
        let servers_in =
            if body.get("mcp_servers").is_some() { body.get("mcp_servers") } else { Some(&cur.body["mcp_servers"]) };
        let (tools, servers) = tools::normalize(tools_in, servers_in)?;
        a["tools"] = json!(tools);
        a["mcp_servers"] = json!(servers);
        if body.get("skills").is_some() {
            a["skills"] = json!(self.agent_skills(body.get("skills")).await?);
        }
        a["metadata"] = json!(patch_metadata(&cur.body["metadata"], body.get("metadata"))?);
        a["version"] = json!(cur.version + 1);
        a["updated_at"] = json!(self.now());
        self.put(KIND, id, cur.version + 1, a.clone(), History::Keep).await?;
        Ok(a)
    }

    pub async fn archive_agent(&self, id: &str) -> Result<Value> {
        let cur = self.doc(KIND, id, None).await?;
        // Archiving is not a new configuration: the same version, rewritten.
        self.archive_doc(cur, History::Rewrite).await
    }

    pub async fn list_agents(&self, q: &PageQuery, include_archived: bool, created: &Range) -> Result<wire::Page> {
        let (data, next_page) = self
            .doc_page(KIND, q, false, |a| {
                (include_archived || a["archived_at"].is_null()) && created.holds(&a["created_at"])
            })
            .await?;
        Ok(wire::Page { data, next_page })
    }

    pub async fn agent_versions(&self, id: &str, q: &PageQuery) -> Result<wire::Page> {
        self.doc(KIND, id, None).await?;
        let limit = q.limit()?;
        let after = match q.page.as_deref() {
            None | Some("") => 0,
            Some(p) => p.parse().map_err(|_| invalid("`page` is not a page token of this list"))?,
        };
        let docs = self.engine.document_versions(KIND, id, after, limit).await?;
        let next_page = (docs.len() == limit).then(|| docs.last().map(|d| d.version.to_string())).flatten();
        Ok(wire::Page { data: docs.into_iter().map(|d| d.body).collect(), next_page })
    }
}

/// A `created_at[gt|gte|lt|lte]` filter.
#[derive(Clone, Debug, Default)]
pub struct Range {
    pub gt: Option<chrono::DateTime<chrono::Utc>>,
    pub gte: Option<chrono::DateTime<chrono::Utc>>,
    pub lt: Option<chrono::DateTime<chrono::Utc>>,
    pub lte: Option<chrono::DateTime<chrono::Utc>>,
}

impl Range {
    pub fn holds(&self, at: &Value) -> bool {
        let Some(t) = at.as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()) else { return true };
        let t = t.with_timezone(&chrono::Utc);
        self.gt.is_none_or(|b| t > b)
            && self.gte.is_none_or(|b| t >= b)
            && self.lt.is_none_or(|b| t < b)
            && self.lte.is_none_or(|b| t <= b)
    }
}
