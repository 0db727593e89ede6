//! API key authentication and scopes. Keys are random 256-bit tokens stored only as SHA-256
//! hashes; every request looks its key up, so a revoked key is refused at once.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use herm_types::ApiKeyId;
use rand::Rng;
use sha2::{Digest, Sha256};

pub const SCOPES: &[&str] = &["deployments:read", "deployments:write", "secrets:write", "admin"];

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key_id: ApiKeyId,
    pub scopes: Vec<String>,
}

impl Caller {
    /// `admin` implies every scope.
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.scopes.iter().any(|s| s == scope || s == "admin") {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this key lacks the `{scope}` scope")))
        }
    }
}

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

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let h = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <api key>`"))?;
        let key = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 256)
            .ok_or_else(|| ApiError::unauthorized("malformed Authorization header"))?;
        let rec = state
            .engine
            .store()
            .api_key_by_hash(&hash_key(key))
            .await?
            .filter(|r| r.revoked_at.is_none())
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked API key"))?;
        Ok(Caller { key_id: rec.id, scopes: rec.scopes })
    }
}
