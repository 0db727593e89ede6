//! Environments: where a session's tools run, mapped onto herm's sandbox settings. Only what
//! herm enforces is accepted: unrestricted networking, or `limited` with no allowed hosts
//! (the sandbox's network off); host allow-lists, package lists and self-hosted workers
//! are refused by name.

use crate::wire::{self, metadata, new_id, object, patch_metadata, string};
use crate::{Facade, PageQuery, Result, invalid, unsupported};
use herm_store::History;
use herm_types::config::SandboxSpec;
use serde_json::{Value, json};

pub(crate) const KIND: &str = "environment";
const FIELDS: &[&str] = &["name", "config", "description", "metadata", "scope"];
const PACKAGE_KINDS: &[&str] = &["apt", "pip", "npm", "cargo", "gem", "go"];

/// The config as responses show it, validated.
pub fn config(v: Option<&Value>) -> Result<Value> {
    let c = match v {
        None | Some(Value::Null) => return Ok(default_config()),
        Some(c @ Value::Object(_)) => c,
        Some(_) => return Err(invalid("`config` must be an object")),
    };
    match c.get("type").and_then(Value::as_str) {
        Some("cloud") | None => {}
        Some("self_hosted") => {
            return Err(unsupported(
                "`self_hosted` environments are not supported: herm runs the sandboxes itself (it is the self-hosted side)",
            ));
        }
        Some(other) => return Err(invalid(format!("`config.type` must be `cloud`, not `{other}`"))),
    }
    let networking = match c.get("networking") {
        None | Some(Value::Null) => json!({"type": "unrestricted"}),
        Some(n) => match n.get("type").and_then(Value::as_str) {
            Some("unrestricted") => json!({"type": "unrestricted"}),
            Some("limited") => {
                let hosts = n.get("allowed_hosts").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
                let packages = n.get("allow_package_managers").and_then(Value::as_bool).unwrap_or(false);
                if hosts > 0 || packages {
                    return Err(unsupported(
                        "`limited` networking with `allowed_hosts` or `allow_package_managers` is not supported: herm's sandbox network is on or off; use `unrestricted`, or `limited` with no hosts (network off)",
                    ));
                }
                let mcp = n.get("allow_mcp_servers").and_then(Value::as_bool).unwrap_or(false);
                json!({"type": "limited", "allowed_hosts": [], "allow_mcp_servers": mcp, "allow_package_managers": false})
            }
            _ => return Err(invalid("`config.networking.type` must be `unrestricted` or `limited`")),
        },
    };
    if let Some(p) = c.get("packages").filter(|p| !p.is_null()) {
        let p = p.as_object().ok_or_else(|| invalid("`config.packages` must be an object"))?;
        for (k, v) in p {
            if k == "type" {
                continue;
            }
            if !PACKAGE_KINDS.contains(&k.as_str()) {
                return Err(invalid(format!("`config.packages.{k}`: unknown package manager")));
            }
            if v.as_array().is_some_and(|a| !a.is_empty()) {
                return Err(unsupported(
                    "environment `packages` are not installed by herm: build them into the sandbox image (scripts/build-image.sh) instead",
                ));
            }
        }
    }
    Ok(json!({"type": "cloud", "networking": networking, "packages": empty_packages()}))
}

fn empty_packages() -> Value {
    json!({"type": "packages", "apt": [], "pip": [], "npm": [], "cargo": [], "gem": [], "go": []})
}

fn default_config() -> Value {
    json!({"type": "cloud", "networking": {"type": "unrestricted"}, "packages": empty_packages()})
}

/// herm's sandbox for an environment's config.
pub fn sandbox(config: &Value) -> SandboxSpec {
    let off = config["networking"]["type"] == "limited";
    SandboxSpec { network: if off { "off".into() } else { "on".into() }, ..SandboxSpec::default() }
}

fn scope(v: Option<&Value>) -> Result<Value> {
    match v {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(Value::String(s)) if s == "organization" || s == "account" => Ok(json!(s)),
        Some(_) => Err(invalid("`scope` must be `organization` or `account`")),
    }
}

impl Facade {
    pub async fn create_environment(&self, body: &Value) -> Result<Value> {
        object(body, FIELDS)?;
        let t = self.now();
        let env = json!({
            "id": new_id("env_"),
            "type": "environment",
            "name": string(body, "name", 256, true)?,
            "description": string(body, "description", 2048, false)?,
            "metadata": metadata(body.get("metadata"))?,
            "scope": scope(body.get("scope"))?,
            "config": config(body.get("config"))?,
            "created_at": t,
            "updated_at": t,
            "archived_at": null,
        });
        let id = env["id"].as_str().unwrap_or_default().to_owned();
        self.put(KIND, &id, 1, env.clone(), History::Drop).await?;
        Ok(env)
    }

    pub async fn environment(&self, id: &str) -> Result<Value> {
        Ok(self.doc(KIND, id, None).await?.body)
    }

    pub async fn update_environment(&self, id: &str, body: &Value) -> Result<Value> {
        object(body, FIELDS)?;
        let cur = self.doc(KIND, id, None).await?;
        let mut e = cur.body.clone();
        if body.get("name").is_some() {
            e["name"] = json!(string(body, "name", 256, true)?);
        }
        if body.get("description").is_some() {
            e["description"] = json!(string(body, "description", 2048, false)?);
        }
        if body.get("config").is_some() {
            e["config"] = config(body.get("config"))?;
        }
        if body.get("scope").is_some() {
            e["scope"] = scope(body.get("scope"))?;
        }
        e["metadata"] = json!(patch_metadata(&cur.body["metadata"], body.get("metadata"))?);
        e["updated_at"] = json!(self.now());
        self.put(KIND, id, cur.version + 1, e.clone(), History::Drop).await?;
        Ok(e)
    }

    pub async fn archive_environment(&self, id: &str) -> Result<Value> {
        let cur = self.doc(KIND, id, None).await?;
        self.archive_doc(cur, History::Drop).await
    }

    pub async fn delete_environment(&self, id: &str) -> Result<Value> {
        self.doc(KIND, id, None).await?;
        self.engine.delete_document(KIND, id).await?;
        Ok(json!({"id": id, "type": "environment_deleted"}))
    }

    pub async fn list_environments(&self, q: &PageQuery, include_archived: bool) -> Result<wire::Page> {
        let (data, next_page) =
            self.doc_page(KIND, q, false, |e| include_archived || e["archived_at"].is_null()).await?;
        Ok(wire::Page { data, next_page })
    }
}
