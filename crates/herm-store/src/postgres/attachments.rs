//! Attachments on PostgreSQL, their bytes in the database (every node reads them), stored
//! once per deployment and content. A deployment's writers and removers of bytes take its
//! advisory lock, so bytes are never removed under an attachment being recorded.

use super::{PostgresStore, cols, exec, opt};
use crate::sqlite::attachments::{att_rec, is_sha};
use crate::sqlite::micros;
use crate::*;
use deadpool_postgres::Transaction;

async fn lock_deployment(tx: &Transaction<'_>, dep: &str) -> Result<()> {
    exec(tx, "SELECT pg_advisory_xact_lock(hashtext('blobs:' || $1))", &[&dep]).await?;
    Ok(())
}

/// Removes the deployment's bytes with these digests that no attachment holds any more.
pub(super) async fn sweep(tx: &Transaction<'_>, dep: &str, shas: &[String]) -> Result<()> {
    if shas.is_empty() {
        return Ok(());
    }
    lock_deployment(tx, dep).await?;
    exec(
        tx,
        "DELETE FROM blobs b WHERE b.deployment_id=$1 AND b.sha256 = ANY($2)
         AND NOT EXISTS (SELECT 1 FROM attachments a WHERE a.deployment_id=b.deployment_id AND a.sha256=b.sha256)",
        &[&dep, &shas],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl AttachmentStore for PostgresStore {
    async fn put_attachment(&self, rec: AttachmentRecord, bytes: Vec<u8>) -> Result<()> {
        let sha = rec.reference.sha256.clone();
        let id =
            rec.reference.attachment_id.clone().ok_or_else(|| Error::Corrupt("an attachment needs its id".into()))?;
        if !is_sha(&sha) {
            return Err(Error::Corrupt("an attachment's sha256 must be 64 lowercase hex digits".into()));
        }
        let reference = serde_json::to_string(&rec.reference).map_err(|e| Error::Corrupt(e.to_string()))?;
        let dep = rec.deployment_id.as_str();
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        lock_deployment(&tx, dep).await?;
        exec(
            &tx,
            "INSERT INTO blobs (deployment_id, sha256, bytes) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING",
            &[&dep, &sha, &bytes],
        )
        .await?;
        exec(
            &tx,
            "INSERT INTO attachments (id, deployment_id, thread_id, reference, sha256, created_at)
             VALUES ($1,$2,$3,$4,$5,$6)",
            &[
                &id.as_str(),
                &dep,
                &rec.thread_id.as_ref().map(|t| t.as_str()),
                &reference,
                &sha,
                &micros(rec.created_at),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_attachment(&self, dep: &DeploymentId, id: &AttachmentId) -> Result<Option<AttachmentRecord>> {
        let c = self.client().await?;
        opt(
            &c,
            "SELECT deployment_id, thread_id, reference, created_at FROM attachments WHERE id=$1 AND deployment_id=$2",
            &[&id.as_str(), &dep.as_str()],
            |r| att_rec(cols!(r; 0, 1, 2, 3)),
        )
        .await
    }

    async fn blob(&self, dep: &DeploymentId, sha256: &str) -> Result<Option<Vec<u8>>> {
        if !is_sha(sha256) {
            return Ok(None);
        }
        let c = self.client().await?;
        opt(&c, "SELECT bytes FROM blobs WHERE deployment_id=$1 AND sha256=$2", &[&dep.as_str(), &sha256], |r| {
            Ok(r.try_get(0)?)
        })
        .await
    }

    async fn remove_attachments(&self, dep: &DeploymentId, ids: &[AttachmentId]) -> Result<()> {
        let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let shas: Vec<String> = super::rows(
            &tx,
            "DELETE FROM attachments WHERE id = ANY($1) AND deployment_id=$2 RETURNING sha256",
            &[&ids, &dep.as_str()],
            |r| Ok(r.try_get(0)?),
        )
        .await?;
        sweep(&tx, dep.as_str(), &shas).await?;
        tx.commit().await?;
        Ok(())
    }
}
