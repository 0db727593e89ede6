//! Vaults and their credentials. A `static_bearer` credential's token is sealed into herm's
//! vault at once (a herm secret); the facade's document keeps the secret's id only, and no
//! response ever carries the token. Sessions given a vault send that token to the MCP server
//! whose URL the credential names. Other credential types are refused by name.

use crate::wire::{self, metadata, new_id, object, patch_metadata, string};
use crate::{Error, Facade, PageQuery, Result, invalid, unsupported};
use herm_store::History;
use herm_types::SecretId;
use serde_json::{Value, json};

pub(crate) const VAULT: &str = "vault";
pub(crate) const CREDENTIAL: &str = "vault_credential";
/// Where a credential document keeps its herm secret's id (never shown).
const SECRET: &str = "_secret_id";
const MAX_TOKEN: usize = 8192;

/// A credential as responses show it: no secret, no internals.
fn shown(mut c: Value) -> Value {
    if let Some(m) = c.as_object_mut() {
        m.remove(SECRET);
    }
    c
}

/// The MCP server URL and herm secret of each live credential of these vaults.
#[derive(Clone, Debug)]
pub struct Bearer {
    pub mcp_server_url: String,
    pub secret_id: String,
}

fn auth(v: Option<&Value>, current: Option<&Value>) -> Result<(Value, Option<String>)> {
    let a = v.ok_or_else(|| invalid("`auth` is required"))?;
    let ty = a.get("type").and_then(Value::as_str).unwrap_or_default();
    match ty {
        "static_bearer" => {}
        "mcp_oauth" => {
            return Err(unsupported(
                "`mcp_oauth` credentials (refreshed OAuth tokens) are not supported by herm yet; use `static_bearer`",
            ));
        }
        "environment_variable" => {
            return Err(unsupported(
                "`environment_variable` credentials are not supported: herm never passes secrets into a sandbox",
            ));
        }
        _ => return Err(invalid("`auth.type` must be `static_bearer`")),
    }
    if let Some(cur) = current
        && cur["type"] != ty
    {
        return Err(invalid("a credential's `auth.type` cannot change"));
    }
    let url = match (a.get("mcp_server_url").and_then(Value::as_str), current) {
        (Some(u), _) => u.to_owned(),
        (None, Some(cur)) => cur["mcp_server_url"].as_str().unwrap_or_default().to_owned(),
        (None, None) => return Err(invalid("`auth.mcp_server_url` is required")),
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2048 {
        return Err(invalid("`auth.mcp_server_url` must be an http(s) URL"));
    }
    let token = match a.get("token") {
        None | Some(Value::Null) if current.is_some() => None,
        Some(Value::String(t)) if !t.is_empty() && t.len() <= MAX_TOKEN => Some(t.clone()),
        _ => return Err(invalid(format!("`auth.token` must be a non-empty string of at most {MAX_TOKEN} bytes"))),
    };
    Ok((json!({"type": "static_bearer", "mcp_server_url": url}), token))
}

impl Facade {
    pub async fn create_vault(&self, body: &Value) -> Result<Value> {
        object(body, &["display_name", "metadata"])?;
        let t = self.now();
        let v = json!({
            "id": new_id("vlt_"),
            "type": "vault",
            "display_name": string(body, "display_name", 256, true)?,
            "metadata": metadata(body.get("metadata"))?,
            "created_at": t,
            "updated_at": t,
            "archived_at": null,
        });
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        self.put(VAULT, &id, 1, v.clone(), History::Drop).await?;
        Ok(v)
    }

    pub async fn vault(&self, id: &str) -> Result<Value> {
        Ok(self.doc(VAULT, id, None).await?.body)
    }

    pub async fn update_vault(&self, id: &str, body: &Value) -> Result<Value> {
        object(body, &["display_name", "metadata"])?;
        let cur = self.doc(VAULT, id, None).await?;
        let mut v = cur.body.clone();
        if body.get("display_name").is_some() {
            v["display_name"] = json!(string(body, "display_name", 256, true)?);
        }
        v["metadata"] = json!(patch_metadata(&cur.body["metadata"], body.get("metadata"))?);
        v["updated_at"] = json!(self.now());
        self.put(VAULT, id, cur.version + 1, v.clone(), History::Drop).await?;
        Ok(v)
    }

    pub async fn archive_vault(&self, id: &str) -> Result<Value> {
        let cur = self.doc(VAULT, id, None).await?;
        self.archive_doc(cur, History::Drop).await
    }

    /// Deletes the vault, its credentials and their secrets.
    pub async fn delete_vault(&self, id: &str) -> Result<Value> {
        self.doc(VAULT, id, None).await?;
        for c in self.all_credentials(id).await? {
            self.forget_credential(&c).await?;
        }
        self.engine.delete_document(VAULT, id).await?;
        Ok(json!({"id": id, "type": "vault_deleted"}))
    }

    pub async fn list_vaults(&self, q: &PageQuery, include_archived: bool) -> Result<wire::Page> {
        let (data, next_page) =
            self.doc_page(VAULT, q, false, |v| include_archived || v["archived_at"].is_null()).await?;
        Ok(wire::Page { data, next_page })
    }

    pub async fn create_credential(&self, vault: &str, body: &Value) -> Result<Value> {
        object(body, &["auth", "display_name", "metadata"])?;
        let v = self.doc(VAULT, vault, None).await?;
        if !v.body["archived_at"].is_null() {
            return Err(invalid("the vault is archived"));
        }
        let (shown_auth, token) = auth(body.get("auth"), None)?;
        let display_name = string(body, "display_name", 256, false)?;
        let metadata = metadata(body.get("metadata"))?;
        let token = token.ok_or_else(|| invalid("`auth.token` is required"))?;
        let id = new_id("vcrd_");
        let secret = self.engine.create_secret(format!("cma {id}"), &token, Some(format!("vault {vault}"))).await?;
        let t = self.now();
        let c = json!({
            "id": id,
            "type": "vault_credential",
            "vault_id": vault,
            "display_name": display_name,
            "metadata": metadata,
            "auth": shown_auth,
            "created_at": t,
            "updated_at": t,
            "archived_at": null,
            SECRET: secret.id.as_str(),
        });
        if let Err(e) = self.put(CREDENTIAL, &id, 1, c.clone(), History::Drop).await {
            let _ = self.engine.delete_secret(&secret.id).await;
            return Err(e);
        }
        Ok(shown(c))
    }

    async fn credential_doc(&self, vault: &str, id: &str) -> Result<herm_store::Document> {
        let c = self.doc(CREDENTIAL, id, None).await?;
        if c.body["vault_id"] != vault {
            return Err(Error::NotFound(CREDENTIAL));
        }
        Ok(c)
    }

    pub async fn credential(&self, vault: &str, id: &str) -> Result<Value> {
        Ok(shown(self.credential_doc(vault, id).await?.body))
    }

    /// A new token replaces the secret (the old one is destroyed once the new is recorded).
    pub async fn update_credential(&self, vault: &str, id: &str, body: &Value) -> Result<Value> {
        object(body, &["auth", "display_name", "metadata"])?;
        let cur = self.credential_doc(vault, id).await?;
        let mut c = cur.body.clone();
        let mut old_secret = None;
        if body.get("auth").is_some() {
            let (shown_auth, token) = auth(body.get("auth"), Some(&cur.body["auth"]))?;
            c["auth"] = shown_auth;
            if let Some(token) = token {
                let secret =
                    self.engine.create_secret(format!("cma {id}"), &token, Some(format!("vault {vault}"))).await?;
                old_secret = cur.body[SECRET].as_str().map(str::to_owned);
                c[SECRET] = json!(secret.id.as_str());
            }
        }
        if body.get("display_name").is_some() {
            c["display_name"] = json!(string(body, "display_name", 256, false)?);
        }
        c["metadata"] = json!(patch_metadata(&cur.body["metadata"], body.get("metadata"))?);
        c["updated_at"] = json!(self.now());
        self.put(CREDENTIAL, id, cur.version + 1, c.clone(), History::Drop).await?;
        if let (Some(old), Some(new)) = (old_secret, c[SECRET].as_str()) {
            // Sessions already using the credential send the new token from their next call.
            self.rebind_secret(&old, new).await?;
            if let Ok(old) = SecretId::parse(&old) {
                let _ = self.engine.delete_secret(&old).await;
            }
        }
        Ok(shown(c))
    }

    /// Points every session deployment that references secret `old` at `new`.
    async fn rebind_secret(&self, old: &str, new: &str) -> Result<()> {
        let mut after = None;
        loop {
            let page = self.engine.documents(crate::sessions::KIND, after.clone(), false, wire::MAX_PAGE).await?;
            let n = page.len();
            after = page.last().map(|d| d.id.clone());
            for doc in page {
                let Ok(place) = crate::sessions::place(&doc.body) else { continue };
                let Ok(dep) = self.engine.deployment(&place.deployment).await else { continue };
                let names: std::collections::BTreeMap<String, Option<String>> = dep
                    .spec
                    .secrets
                    .iter()
                    .filter(|(_, v)| v.as_str() == old)
                    .map(|(k, _)| (k.clone(), Some(new.to_owned())))
                    .collect();
                if !names.is_empty() {
                    let patch = herm_types::config::DeploymentPatch { secrets: Some(names), ..Default::default() };
                    self.engine.patch_deployment(&place.deployment, patch, None).await?;
                }
            }
            if n < wire::MAX_PAGE {
                return Ok(());
            }
        }
    }

    pub async fn archive_credential(&self, vault: &str, id: &str) -> Result<Value> {
        let cur = self.credential_doc(vault, id).await?;
        Ok(shown(self.archive_doc(cur, History::Drop).await?))
    }

    pub async fn delete_credential(&self, vault: &str, id: &str) -> Result<Value> {
        let cur = self.credential_doc(vault, id).await?;
        self.forget_credential(&cur.body).await?;
        Ok(json!({"id": id, "type": "vault_credential_deleted"}))
    }

    async fn forget_credential(&self, c: &Value) -> Result<()> {
        if let Some(s) = c[SECRET].as_str().and_then(|s| SecretId::parse(s).ok()) {
            match self.engine.delete_secret(&s).await {
                Ok(()) | Err(herm_engine::Error::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.engine.delete_document(CREDENTIAL, c["id"].as_str().unwrap_or_default()).await?;
        Ok(())
    }

    /// Every credential of a vault (documents list across all vaults; filtered here).
    async fn all_credentials(&self, vault: &str) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self.engine.documents(CREDENTIAL, after.clone(), false, wire::MAX_PAGE).await?;
            let n = page.len();
            after = page.last().map(|d| d.id.clone());
            out.extend(page.into_iter().map(|d| d.body).filter(|c| c["vault_id"] == vault));
            if n < wire::MAX_PAGE {
                return Ok(out);
            }
        }
    }

    pub async fn list_credentials(&self, vault: &str, q: &PageQuery, include_archived: bool) -> Result<wire::Page> {
        self.doc(VAULT, vault, None).await?;
        let (data, next_page) = self
            .doc_page(CREDENTIAL, q, false, |c| {
                c["vault_id"] == vault && (include_archived || c["archived_at"].is_null())
            })
            .await?;
        Ok(wire::Page { data: data.into_iter().map(shown).collect(), next_page })
    }

    /// The live bearer credentials of these vaults (for a session's MCP servers).
    pub(crate) async fn bearers(&self, vaults: &[String]) -> Result<Vec<Bearer>> {
        let mut out = Vec::new();
        for v in vaults {
            let vault = self.doc(VAULT, v, None).await.map_err(|_| invalid(format!("vault `{v}` not found")))?;
            if !vault.body["archived_at"].is_null() {
                return Err(invalid(format!("vault `{v}` is archived")));
            }
            for c in self.all_credentials(v).await? {
                if c["archived_at"].is_null()
                    && let (Some(url), Some(secret)) = (c["auth"]["mcp_server_url"].as_str(), c[SECRET].as_str())
                {
                    out.push(Bearer { mcp_server_url: url.into(), secret_id: secret.into() });
                }
            }
        }
        Ok(out)
    }
}
