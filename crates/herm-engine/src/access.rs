//! Who may call and with what: API keys (random 256-bit tokens stored only as SHA-256
//! hashes, scopes, the last admin key kept), the secrets vault (values sealed here and never
//! returned), model providers stored by operators, and idempotency records.

use crate::{Engine, Error, Result};
use herm_store::{ApiKeyRecord, IdemBegin, Revocation, SecretRecord};
use herm_types::config::{FieldError, ProviderSpec};
use herm_types::*;
use rand::Rng;
use sha2::{Digest, Sha256};

/// Every scope a key can carry; `admin` implies the others.
pub const SCOPES: &[&str] = &["deployments:read", "deployments:write", "secrets:write", "admin"];

/// The stored form of an API key.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new API key: `herm_` and 43 base62 characters (256 bits).
pub fn generate_key() -> String {
    const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let s: String = (0..43).map(|_| A[rng.random_range(0..62)] as char).collect();
    format!("herm_{s}")
}

impl Engine {
    /// The live key with this value, if any (a revoked key is refused at once).
    pub async fn authenticate(&self, key: &str) -> Result<Option<ApiKeyRecord>> {
        Ok(self.store().api_key_by_hash(&hash_key(key)).await?.filter(|r| r.revoked_at.is_none()))
    }

    /// Creates a key; returns its record and the key itself (shown once, never stored).
    pub async fn create_api_key(&self, name: String, scopes: Vec<String>) -> Result<(ApiKeyRecord, String)> {
        if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
            return Err(Error::Validation(format!("unknown scope `{bad}`; known: {}", SCOPES.join(", "))));
        }
        let key = generate_key();
        let rec = ApiKeyRecord {
            id: ApiKeyId::new(),
            name,
            hash: hash_key(&key),
            scopes,
            created_at: now(),
            revoked_at: None,
        };
        self.store().insert_api_key(rec.clone()).await?;
        Ok((rec, key))
    }

    /// Makes `key` a live admin key (inserted, or un-revoked): the operator's way back in.
    pub async fn ensure_admin_key(&self, key: &str) -> Result<()> {
        let rec = ApiKeyRecord {
            id: ApiKeyId::new(),
            name: "admin".into(),
            hash: hash_key(key),
            scopes: vec!["admin".into()],
            created_at: now(),
            revoked_at: None,
        };
        Ok(self.store().ensure_api_key(rec).await?)
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        Ok(self.store().list_api_keys().await?)
    }

    /// Revokes a key; the last live admin key cannot be revoked ([`Error::LastAdminKey`]).
    pub async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<()> {
        match self.store().revoke_api_key(id).await? {
            Revocation::Revoked => Ok(()),
            Revocation::NotFound => Err(Error::NotFound("api key")),
            Revocation::LastAdmin => Err(Error::LastAdminKey),
        }
    }

    /// Seals `value` into the vault under a new id; only metadata comes back.
    pub async fn create_secret(&self, name: String, value: &str, description: Option<String>) -> Result<SecretRecord> {
        let id = SecretId::new();
        let (nonce, ciphertext) = self.secrets().seal(&id, value).map_err(|_| Error::Vault)?;
        let rec = SecretRecord { id, name, description, nonce, ciphertext, created_at: now() };
        self.store().insert_secret(rec.clone()).await?;
        Ok(rec)
    }

    /// Metadata of every live secret (the records hold ciphertext only).
    pub async fn list_secrets(&self) -> Result<Vec<SecretRecord>> {
        Ok(self.store().list_secrets().await?)
    }

    /// Deletes a secret; its ciphertext is destroyed.
    pub async fn delete_secret(&self, id: &SecretId) -> Result<()> {
        if self.store().delete_secret(id).await? { Ok(()) } else { Err(Error::NotFound("secret")) }
    }

    /// Stores a provider (it overrides a configured one of the same name).
    pub async fn put_provider(&self, name: &str, spec: &ProviderSpec) -> Result<()> {
        let errors = spec.validate();
        if !errors.is_empty() {
            return Err(Error::Unsupported(errors));
        }
        if let Some(r) = &spec.api_key_secret
            && !self.secret_exists(r).await?
        {
            return Err(Error::InvalidSecretRef(vec![FieldError::new(
                "api_key_secret",
                format!("`{r}` is not a stored secret"),
            )]));
        }
        self.store().put_provider(name, spec).await?;
        self.providers().invalidate();
        Ok(())
    }

    /// Removes a stored provider; one from the configuration file cannot be removed here.
    pub async fn delete_provider(&self, name: &str) -> Result<()> {
        let removed = self.store().delete_provider(name).await?;
        self.providers().invalidate();
        if removed {
            Ok(())
        } else if self.providers().exists(name).await? {
            Err(Error::Conflict("this provider comes from the configuration file; change it there".into()))
        } else {
            Err(Error::NotFound("provider"))
        }
    }

    /// Starts a request under an idempotency key (see [`IdemBegin`]).
    pub async fn idempotency_begin(&self, scope: &str, key: &str, fingerprint: &str) -> Result<IdemBegin> {
        Ok(self.store().idempotency_begin(scope, key, fingerprint).await?)
    }

    /// Records the response to replay for repeats of the key.
    pub async fn idempotency_finish(&self, scope: &str, key: &str, status: u16, body: &[u8]) -> Result<()> {
        Ok(self.store().idempotency_finish(scope, key, status, body).await?)
    }

    /// Frees the key of a request that failed (it did not happen).
    pub async fn idempotency_abort(&self, scope: &str, key: &str) -> Result<()> {
        Ok(self.store().idempotency_abort(scope, key).await?)
    }
}
