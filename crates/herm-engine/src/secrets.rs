//! Resolution of a deployment's secret references (`ENV_NAME → sec_…`) to values, at the
//! moment of use and host-side only.

use crate::Result;
use crate::redact::Redactor;
use herm_store::Store;
use herm_store::vault::{SecretValue, Vault};
use herm_types::SecretId;
use herm_types::config::DeploymentSpec;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone)]
pub struct Secrets {
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
}

impl Secrets {
    pub fn new(store: Arc<dyn Store>, vault: Arc<Vault>) -> Self {
        Self { store, vault }
    }

    /// Encrypts a new secret's value for storage.
    pub(crate) fn seal(&self, id: &SecretId, value: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        Ok(self.vault.seal(id, value)?)
    }

    /// Decrypts one secret by id; `None` if it does not exist (or was deleted).
    pub async fn value(&self, id: &SecretId) -> Result<Option<SecretValue>> {
        let Some(rec) = self.store.get_secret(id).await? else { return Ok(None) };
        Ok(Some(self.vault.open(&rec.id, &rec.nonce, &rec.ciphertext)?))
    }

    /// Resolves the named entries of the deployment's `secrets` map; names that are unknown
    /// or point at a deleted secret are left out (the caller reports them).
    pub async fn resolve(&self, spec: &DeploymentSpec, names: &[String]) -> Result<BTreeMap<String, SecretValue>> {
        let mut out = BTreeMap::new();
        for n in names {
            let Some(r) = spec.secrets.get(n) else { continue };
            let Ok(id) = SecretId::parse(r) else { continue };
            if let Some(v) = self.value(&id).await? {
                out.insert(n.clone(), v);
            }
        }
        Ok(out)
    }

    /// A redactor for every secret the vault holds (for what is kept beyond a run: memories
    /// and summaries must hold no secret, whoever's it is).
    pub async fn vault_redactor(&self) -> Result<Redactor> {
        let mut vals = Vec::new();
        for rec in self.store.list_secrets().await? {
            vals.push((rec.name.clone(), self.vault.open(&rec.id, &rec.nonce, &rec.ciphertext)?));
        }
        Ok(Redactor::new(vals.iter().map(|(k, v)| (k.as_str(), v))))
    }

    /// A redactor for every secret the deployment references.
    pub async fn redactor(&self, spec: &DeploymentSpec) -> Result<Redactor> {
        let names: Vec<String> = spec.secrets.keys().cloned().collect();
        let vals = self.resolve(spec, &names).await?;
        Ok(Redactor::new(vals.iter().map(|(k, v)| (k.as_str(), v))))
    }
}
