//! Facade documents in SQLite: one row per version, the latest marked. A write of version
//! n+1 first unmarks version n (and only if n is the latest), so of two writers that read
//! the same version one wins and the other gets [`Error::Stale`].

use super::SqliteStore;
use super::rows::*;
use crate::*;
use rusqlite::{OptionalExtension, Row, params};

pub(crate) const COLS: &str = "kind, id, version, body";
pub(crate) type DocRow = (String, String, i64, String);
fn doc_row(r: &Row) -> rusqlite::Result<DocRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}
pub(crate) fn doc_rec(t: DocRow) -> Result<Document> {
    Ok(Document { kind: t.0, id: t.1, version: t.2, body: json(&t.3)? })
}

#[async_trait::async_trait]
impl DocumentStore for SqliteStore {
    async fn put_document(&self, d: Document, history: History) -> Result<()> {
        let body = to_json(&d.body)?;
        self.write(move |c| {
            if d.version < 1 {
                return Err(Error::Conflict("a document's versions start at 1".into()));
            }
            if history == History::Rewrite {
                let n = c.execute(
                    "UPDATE documents SET body=?4 WHERE kind=?1 AND id=?2 AND version=?3 AND latest=1",
                    params![d.kind, d.id, d.version, body],
                )?;
                return if n == 1 { Ok(()) } else { Err(Error::Stale) };
            }
            if d.version > 1 {
                let moved = c.execute(
                    "UPDATE documents SET latest=0 WHERE kind=?1 AND id=?2 AND version=?3 AND latest=1",
                    params![d.kind, d.id, d.version - 1],
                )?;
                if moved == 0 {
                    return Err(Error::Stale);
                }
            }
            let inserted = c.execute(
                "INSERT OR IGNORE INTO documents (kind, id, version, body, latest) VALUES (?1,?2,?3,?4,1)",
                params![d.kind, d.id, d.version, body],
            )?;
            if inserted == 0 {
                return Err(Error::Stale);
            }
            if history == History::Drop {
                c.execute(
                    "DELETE FROM documents WHERE kind=?1 AND id=?2 AND version<?3",
                    params![d.kind, d.id, d.version],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn get_document(&self, kind: &str, id: &str, version: Option<i64>) -> Result<Option<Document>> {
        let (kind, id) = (kind.to_owned(), id.to_owned());
        self.read(move |c| {
            let row = match version {
                Some(v) => c
                    .query_row(
                        &format!("SELECT {COLS} FROM documents WHERE kind=?1 AND id=?2 AND version=?3"),
                        params![kind, id, v],
                        doc_row,
                    )
                    .optional()?,
                None => c
                    .query_row(
                        &format!("SELECT {COLS} FROM documents WHERE kind=?1 AND id=?2 AND latest=1"),
                        params![kind, id],
                        doc_row,
                    )
                    .optional()?,
            };
            row.map(doc_rec).transpose()
        })
        .await
    }

    async fn list_documents(
        &self,
        kind: &str,
        after: Option<String>,
        desc: bool,
        limit: usize,
    ) -> Result<Vec<Document>> {
        let kind = kind.to_owned();
        self.read(move |c| {
            let (cmp, order) = if desc { ("<", "DESC") } else { (">", "ASC") };
            let sql = match after {
                Some(_) => format!(
                    "SELECT {COLS} FROM documents WHERE kind=?1 AND latest=1 AND id {cmp} ?2 ORDER BY id {order} LIMIT ?3"
                ),
                None => format!("SELECT {COLS} FROM documents WHERE kind=?1 AND latest=1 ORDER BY id {order} LIMIT ?3"),
            };
            collect(c, &sql, params![kind, after.unwrap_or_default(), limit as i64], doc_row, doc_rec)
        })
        .await
    }

    async fn document_versions(&self, kind: &str, id: &str, after: i64, limit: usize) -> Result<Vec<Document>> {
        let (kind, id) = (kind.to_owned(), id.to_owned());
        self.read(move |c| {
            collect(
                c,
                &format!(
                    "SELECT {COLS} FROM documents WHERE kind=?1 AND id=?2 AND version>?3 ORDER BY version LIMIT ?4"
                ),
                params![kind, id, after, limit as i64],
                doc_row,
                doc_rec,
            )
        })
        .await
    }

    async fn delete_document(&self, kind: &str, id: &str) -> Result<bool> {
        let (kind, id) = (kind.to_owned(), id.to_owned());
        self.write(move |c| Ok(c.execute("DELETE FROM documents WHERE kind=?1 AND id=?2", params![kind, id])? > 0))
            .await
    }
}
