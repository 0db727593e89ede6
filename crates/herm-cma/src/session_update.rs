//! Changing a session: title and metadata (patches that commute, applied again on a lost
//! race), its `budget` (the thread limit of its own deployment: raised above what was spent
//! or removed) and, while idle, its agent's tools and MCP servers (its own deployment takes
//! them from its next run). Sessions that share a deployment change neither alone.

use crate::sessions::{KIND, MAX_VAULTS, place, strings};
use crate::wire::{self, object, patch_metadata, string};
use crate::{Error, Facade, Result, invalid, project, spec, tools, unsupported};
use herm_store::History;
use herm_types::*;
use serde_json::{Value, json};

/// `budget: {type: limit, max_list_cost: {amount: "1.50", currency: USD}}` in USD (pure).
pub(crate) fn budget(v: Option<&Value>) -> Result<Option<f64>> {
    let b = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(b) => b,
    };
    object(b, &["type", "max_list_cost"])?;
    if b.get("type").and_then(Value::as_str) != Some("limit") {
        return Err(invalid("`budget.type` must be `limit`"));
    }
    let cost = b.get("max_list_cost").ok_or_else(|| invalid("`budget.max_list_cost` is required"))?;
    object(cost, &["amount", "currency"])?;
    if cost.get("currency").and_then(Value::as_str) != Some("USD") {
        return Err(invalid("`budget.max_list_cost.currency` must be `USD`"));
    }
    let amount = match cost.get("amount") {
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(Value::Number(n)) => n.as_f64(),
        _ => None,
    };
    match amount {
        Some(a) if a.is_finite() && a > 0.0 => Ok(Some(a)),
        _ => Err(invalid("`budget.max_list_cost.amount` must be a positive decimal string of USD")),
    }
}

/// A `budget` checked and shown as the session will show it (`null` for none).
pub(crate) fn budget_of(v: Option<&Value>) -> Result<Value> {
    Ok(shown_budget(budget(v)?))
}

pub(crate) fn shown_budget(max: Option<f64>) -> Value {
    match max {
        Some(a) => json!({"type": "limit", "max_list_cost": {"amount": format!("{a}"), "currency": "USD"}}),
        None => Value::Null,
    }
}

impl Facade {
    /// A write that lost a race is applied again on the version that won (title and
    /// metadata patches commute).
    pub async fn update_session(&self, id: &str, body: &Value) -> Result<Value> {
        wire::again_on_lost_race(|| self.update_session_once(id, body)).await
    }

    async fn update_session_once(&self, id: &str, body: &Value) -> Result<Value> {
        object(body, &["title", "metadata", "agent", "budget", "vault_ids"])?;
        if body.get("vault_ids").is_some() {
            return Err(invalid("`vault_ids` cannot be changed on a session"));
        }
        let cur = self.session_doc(id).await?;
        let mut s = cur.body.clone();
        if let Some(b) = body.get("budget") {
            s["budget"] = self.change_budget(&cur.body, b).await?;
        }
        if let Some(a) = body.get("agent") {
            s["agent"] = self.change_agent(&cur.body, a).await?;
        }
        if body.get("title").is_some() {
            s["title"] = json!(string(body, "title", 512, false)?);
        }
        s["metadata"] = json!(patch_metadata(&cur.body["metadata"], body.get("metadata"))?);
        s["updated_at"] = json!(self.now());
        self.put(KIND, id, cur.version + 1, s.clone(), History::Drop).await?;
        self.session(id).await
    }

    /// A new `budget` (higher than what the session has cost) or `null` (none): the
    /// session's own deployment's thread limit follows.
    async fn change_budget(&self, session: &Value, b: &Value) -> Result<Value> {
        if session["budget"].is_null() {
            return Err(invalid("a budget cannot be added to a session created without one (budget_create_only)"));
        }
        let p = place(session)?;
        if p.shared {
            return Err(unsupported("a session that shares its deployment cannot change its budget alone"));
        }
        let max = budget(Some(b))?;
        if let Some(max) = max {
            let log = self.engine.thread_log(&p.thread).await?;
            let (_, folded) = project::fold(&log, self.projector(&p).await?);
            if max <= folded.usage().cost_usd {
                return Err(invalid("the new budget is not above what the session has cost (budget_not_raised)"));
            }
        }
        let cur = self.engine.deployment(&p.deployment).await?;
        let limits = herm_types::config::Limits { max_thread_cost_usd: max, ..cur.spec.limits.clone() };
        let patch = herm_types::config::DeploymentPatch { limits: Some(limits), ..Default::default() };
        match self.engine.patch_deployment(&p.deployment, patch, Some(cur.revision)).await {
            Err(herm_engine::Error::PreconditionFailed) => {
                Err(Error::Conflict("the session's deployment changed while this request was applied".into()))
            }
            other => other.map(|_| shown_budget(max)).map_err(Error::from),
        }
    }

    /// A budget needs a model with a list price (its cost is herm's price of the tokens).
    pub(crate) async fn budgetable(&self, agent: &Value) -> Result<()> {
        let m = spec::model_ref(agent["model"]["id"].as_str().unwrap_or_default(), &self.options.default_provider);
        let priced = match self.engine.providers().resolve(&m).await {
            Ok(r) => r.price.input_per_mtok > 0.0 || r.price.output_per_mtok > 0.0,
            Err(_) => false,
        };
        if priced {
            Ok(())
        } else {
            Err(invalid(format!(
                "model `{m}` has no price configured in herm, so a budget could not bind (model_not_budgetable)"
            )))
        }
    }

    /// `agent: {tools?, mcp_servers?}` while the session is idle: its own deployment takes
    /// the new tools, policies and servers from its next run; the session's agent snapshot
    /// changes with it (the agent itself does not).
    async fn change_agent(&self, session: &Value, change: &Value) -> Result<Value> {
        object(change, &["type", "tools", "mcp_servers"])?;
        if change.get("type").is_some_and(|t| t != "agent") {
            return Err(invalid("`agent.type` must be `agent`"));
        }
        let p = place(session)?;
        if p.shared {
            return Err(unsupported(
                "a session that shares its deployment (`share_by_metadata_key`) cannot change its agent alone",
            ));
        }
        if self.engine.thread(&p.thread).await?.status == ThreadStatus::Running {
            return Err(Error::Conflict("the session is running: change its agent when it is idle".into()));
        }
        let mut agent = session["agent"].clone();
        let t = change.get("tools").unwrap_or(&agent["tools"]).clone();
        let m = change.get("mcp_servers").unwrap_or(&agent["mcp_servers"]).clone();
        let (t, m) = tools::normalize(Some(&t), Some(&m))?;
        agent["tools"] = json!(t);
        agent["mcp_servers"] = json!(m);
        let env_id = session["environment_id"].as_str().unwrap_or_default();
        let env = self.environment(env_id).await?;
        let vaults: Vec<String> = strings(session.get("vault_ids"), "vault_ids", MAX_VAULTS)?;
        let attached = spec::Attached { bearers: self.bearers(&vaults).await?, ..spec::Attached::default() };
        let next = spec::deployment(&agent, &env, &attached, "", &self.options.default_provider)?;
        let cur = self.engine.deployment(&p.deployment).await?;
        let mut secrets: std::collections::BTreeMap<String, Option<String>> =
            cur.spec.secrets.keys().map(|k| (k.clone(), None)).collect();
        secrets.extend(next.secrets.into_iter().map(|(k, v)| (k, Some(v))));
        let patch = herm_types::config::DeploymentPatch {
            mcp_servers: Some(next.mcp_servers),
            tool_policies: Some(next.tool_policies),
            secrets: Some(secrets),
            ..Default::default()
        };
        match self.engine.patch_deployment(&p.deployment, patch, Some(cur.revision)).await {
            Err(herm_engine::Error::PreconditionFailed) => {
                Err(Error::Conflict("the session's deployment changed while this request was applied".into()))
            }
            other => other.map(|_| agent).map_err(Error::from),
        }
    }
}
