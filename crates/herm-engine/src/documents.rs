//! Facade documents: what a second API (the Claude Managed Agents facade) keeps about
//! objects herm has no concept of, through the engine like every other write. The engine
//! knows nothing of what is in them; each write is conditional on the version it was based on
//! (see [`herm_store::DocumentStore`]).

use crate::{Engine, Result};
use herm_store::{Document, History};

/// Longest kind or id a document may have.
const MAX_KEY: usize = 128;
/// Largest document body (serialised).
const MAX_BODY: usize = 1024 * 1024;

fn check(kind: &str, id: &str) -> Result<()> {
    if kind.is_empty() || id.is_empty() || kind.len() > MAX_KEY || id.len() > MAX_KEY {
        return Err(crate::Error::Validation("a document's kind and id are 1-128 bytes".into()));
    }
    Ok(())
}

impl Engine {
    pub async fn put_document(&self, d: Document, history: History) -> Result<()> {
        check(&d.kind, &d.id)?;
        if d.body.to_string().len() > MAX_BODY {
            return Err(crate::Error::Validation("the object is too large".into()));
        }
        Ok(self.store().put_document(d, history).await?)
    }

    pub async fn document(&self, kind: &str, id: &str, version: Option<i64>) -> Result<Option<Document>> {
        if check(kind, id).is_err() {
            return Ok(None);
        }
        Ok(self.store().get_document(kind, id, version).await?)
    }

    pub async fn documents(
        &self,
        kind: &str,
        after: Option<String>,
        desc: bool,
        limit: usize,
    ) -> Result<Vec<Document>> {
        Ok(self.store().list_documents(kind, after, desc, limit).await?)
    }

    pub async fn document_versions(&self, kind: &str, id: &str, after: i64, limit: usize) -> Result<Vec<Document>> {
        Ok(self.store().document_versions(kind, id, after, limit).await?)
    }

    pub async fn delete_document(&self, kind: &str, id: &str) -> Result<bool> {
        Ok(self.store().delete_document(kind, id).await?)
    }
}
