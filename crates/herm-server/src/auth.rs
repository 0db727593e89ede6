//! API key authentication and scopes: every request looks its key up through the engine
//! (keys are stored only as hashes), so a revoked key is refused at once.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use herm_types::ApiKeyId;

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key_id: ApiKeyId,
    pub scopes: Vec<String>,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
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
            .authenticate(key)
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked API key"))?;
        Ok(Caller { key_id: rec.id, scopes: rec.scopes, name: rec.name, created_at: rec.created_at })
    }
}
