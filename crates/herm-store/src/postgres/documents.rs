//! Facade documents on PostgreSQL: every write conditional on the version it was based on.

use super::{PostgresStore, cols, exec, opt, rows};
use crate::sqlite::documents::{COLS, doc_rec};
use crate::sqlite::rows::*;
use crate::*;

fn doc_of(r: &tokio_postgres::Row) -> Result<Document> {
    doc_rec(cols!(r; 0, 1, 2, 3))
}

#[async_trait::async_trait]
impl DocumentStore for PostgresStore {
    async fn put_document(&self, d: Document, history: History) -> Result<()> {
        if d.version < 1 {
            return Err(Error::Conflict("a document's versions start at 1".into()));
        }
        let body = to_json(&d.body)?;
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        if history == History::Rewrite {
            let n = exec(
                &tx,
                "UPDATE documents SET body=$4 WHERE kind=$1 AND id=$2 AND version=$3 AND latest",
                &[&d.kind, &d.id, &d.version, &body],
            )
            .await?;
            if n != 1 {
                return Err(Error::Stale);
            }
            tx.commit().await?;
            return Ok(());
        }
        if d.version > 1 {
            let moved = exec(
                &tx,
                "UPDATE documents SET latest=false WHERE kind=$1 AND id=$2 AND version=$3 AND latest",
                &[&d.kind, &d.id, &(d.version - 1)],
            )
            .await?;
            if moved == 0 {
                return Err(Error::Stale);
            }
        }
        let inserted = exec(
            &tx,
            "INSERT INTO documents (kind, id, version, body, latest) VALUES ($1,$2,$3,$4,true) ON CONFLICT DO NOTHING",
            &[&d.kind, &d.id, &d.version, &body],
        )
        .await?;
        if inserted == 0 {
            return Err(Error::Stale);
        }
        if history == History::Drop {
            exec(&tx, "DELETE FROM documents WHERE kind=$1 AND id=$2 AND version<$3", &[&d.kind, &d.id, &d.version])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_document(&self, kind: &str, id: &str, version: Option<i64>) -> Result<Option<Document>> {
        let c = self.client().await?;
        match version {
            Some(v) => {
                opt(
                    &c,
                    &format!("SELECT {COLS} FROM documents WHERE kind=$1 AND id=$2 AND version=$3"),
                    &[&kind, &id, &v],
                    doc_of,
                )
                .await
            }
            None => {
                opt(
                    &c,
                    &format!("SELECT {COLS} FROM documents WHERE kind=$1 AND id=$2 AND latest"),
                    &[&kind, &id],
                    doc_of,
                )
                .await
            }
        }
    }

    async fn list_documents(
        &self,
        kind: &str,
        after: Option<String>,
        desc: bool,
        limit: usize,
    ) -> Result<Vec<Document>> {
        let (cmp, order) = if desc { ("<", "DESC") } else { (">", "ASC") };
        let sql = format!(
            "SELECT {COLS} FROM documents WHERE kind=$1 AND latest AND ($2::text IS NULL OR id {cmp} $2)
             ORDER BY id {order} LIMIT $3"
        );
        let c = self.client().await?;
        rows(&c, &sql, &[&kind, &after, &(limit as i64)], doc_of).await
    }

    async fn document_versions(&self, kind: &str, id: &str, after: i64, limit: usize) -> Result<Vec<Document>> {
        let c = self.client().await?;
        rows(
            &c,
            &format!("SELECT {COLS} FROM documents WHERE kind=$1 AND id=$2 AND version>$3 ORDER BY version LIMIT $4"),
            &[&kind, &id, &after, &(limit as i64)],
            doc_of,
        )
        .await
    }

    async fn delete_document(&self, kind: &str, id: &str) -> Result<bool> {
        let c = self.client().await?;
        Ok(exec(&c, "DELETE FROM documents WHERE kind=$1 AND id=$2", &[&kind, &id]).await? > 0)
    }
}
