//! Memories (every change a version), dreams and marks on PostgreSQL.

use super::{PostgresStore, cols, exec, opt, rows, value};
use crate::sqlite::memory::{DREAM_COLS, MEM_COLS, VER_COLS, dream_rec, like_escape, mem_rec, next_version, ver_rec};
use crate::sqlite::{from_micros, micros, now_micros};
use crate::*;
use deadpool_postgres::Transaction;

const DREAM_FROM: &str = "dreams d LEFT JOIN runs r ON r.kind='dream' AND (r.trigger::jsonb)->>'dream_id' = d.id";

fn mem_of(r: &tokio_postgres::Row) -> Result<MemoryRecord> {
    mem_rec(cols!(r; 0, 1, 2, 3, 4, 5, 6, 7, 8))
}
fn ver_of(r: &tokio_postgres::Row) -> Result<MemoryVersionRecord> {
    ver_rec(cols!(r; 0, 1, 2, 3, 4, 5, 6, 7, 8))
}
fn dream_of(r: &tokio_postgres::Row) -> Result<DreamRecord> {
    dream_rec(cols!(r; 0, 1, 2, 3, 4, 5))
}

async fn write_tx(tx: &Transaction<'_>, w: &MemoryWrite, now: i64) -> Result<MemoryRecord> {
    // The memory's row locked: writers of one memory are judged one after the other.
    let current =
        opt(tx, &format!("SELECT {MEM_COLS} FROM memories WHERE id=$1 FOR UPDATE"), &[&w.memory_id.as_str()], mem_of)
            .await?;
    let (version, operation, created_at) = next_version(current.as_ref(), w, now)?;
    let path_taken = || Error::Conflict(format!("a memory already lives at `{}`", w.path));
    if w.content.is_some() {
        let taken: Option<String> = opt(
            tx,
            "SELECT id FROM memories WHERE deployment_id=$1 AND path=$2 AND content IS NOT NULL",
            &[&w.deployment_id.as_str(), &w.path],
            |r| Ok(r.try_get(0)?),
        )
        .await?;
        if taken.is_some_and(|id| id != w.memory_id.as_str()) {
            return Err(path_taken());
        }
    }
    let upsert = exec(
        tx,
        "INSERT INTO memories (id, deployment_id, path, content, source, version, file_sha, created_at, updated_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
         ON CONFLICT (id) DO UPDATE SET path=excluded.path, content=excluded.content, source=excluded.source,
           version=excluded.version, file_sha=COALESCE(excluded.file_sha, memories.file_sha), updated_at=excluded.updated_at",
        &[
            &w.memory_id.as_str(),
            &w.deployment_id.as_str(),
            &w.path,
            &w.content,
            &w.source.as_str(),
            &version,
            &w.file_sha,
            &created_at,
            &now,
        ],
    )
    .await;
    // A writer that took the path meanwhile (committed after the check above).
    if let Err(Error::Database(m)) = &upsert
        && m.contains("memories_path")
    {
        return Err(path_taken());
    }
    upsert?;
    exec(
        tx,
        "INSERT INTO memory_versions (memory_id, deployment_id, version, operation, path, content, source, run_id, created_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
        &[
            &w.memory_id.as_str(),
            &w.deployment_id.as_str(),
            &version,
            &operation.as_str(),
            &w.path,
            &w.content,
            &w.source.as_str(),
            &w.run_id.as_ref().map(|r| r.as_str()),
            &now,
        ],
    )
    .await?;
    opt(tx, &format!("SELECT {MEM_COLS} FROM memories WHERE id=$1"), &[&w.memory_id.as_str()], mem_of)
        .await?
        .ok_or(Error::NotFound)
}

#[async_trait::async_trait]
impl MemoryStore for PostgresStore {
    async fn write_memory(&self, w: MemoryWrite) -> Result<MemoryRecord> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let m = write_tx(&tx, &w, now_micros()).await?;
        tx.commit().await?;
        Ok(m)
    }

    async fn get_memory(&self, id: &MemoryId) -> Result<Option<MemoryRecord>> {
        let c = self.client().await?;
        opt(&c, &format!("SELECT {MEM_COLS} FROM memories WHERE id=$1"), &[&id.as_str()], mem_of).await
    }

    async fn memory_at(&self, dep: &DeploymentId, path: &str) -> Result<Option<MemoryRecord>> {
        let c = self.client().await?;
        opt(
            &c,
            &format!("SELECT {MEM_COLS} FROM memories WHERE deployment_id=$1 AND path=$2 AND content IS NOT NULL"),
            &[&dep.as_str(), &path],
            mem_of,
        )
        .await
    }

    async fn list_memories(&self, dep: &DeploymentId, q: MemoryQuery) -> Result<Vec<MemoryRecord>> {
        let prefix = format!("{}%", like_escape(q.prefix.as_deref().unwrap_or("")));
        let needle = q.q.as_deref().map(str::to_lowercase).unwrap_or_default();
        let before = q.before.map(|b| b.to_string()).unwrap_or_else(|| "~".into());
        let c = self.client().await?;
        rows(
            &c,
            &format!(
                "SELECT {MEM_COLS} FROM memories WHERE deployment_id=$1 AND content IS NOT NULL
                 AND path LIKE $2 ESCAPE '\\' AND id < $3
                 AND ($4 = '' OR strpos(lower(content), $4) > 0 OR strpos(lower(path), $4) > 0)
                 ORDER BY id DESC LIMIT $5"
            ),
            &[&dep.as_str(), &prefix, &before, &needle, &(q.limit as i64)],
            mem_of,
        )
        .await
    }

    async fn memory_texts(&self, dep: &DeploymentId) -> Result<Vec<MemoryText>> {
        let c = self.client().await?;
        rows(
            &c,
            "SELECT path, content, version, updated_at FROM memories WHERE deployment_id=$1 AND content IS NOT NULL",
            &[&dep.as_str()],
            |r| {
                Ok(MemoryText {
                    path: r.try_get(0)?,
                    content: r.try_get(1)?,
                    version: r.try_get(2)?,
                    updated_at: from_micros(r.try_get(3)?),
                })
            },
        )
        .await
    }

    async fn all_memories(&self, dep: &DeploymentId) -> Result<Vec<MemoryRecord>> {
        let c = self.client().await?;
        rows(&c, &format!("SELECT {MEM_COLS} FROM memories WHERE deployment_id=$1"), &[&dep.as_str()], mem_of).await
    }

    async fn memory_versions(&self, id: &MemoryId) -> Result<Vec<MemoryVersionRecord>> {
        let c = self.client().await?;
        rows(
            &c,
            &format!("SELECT {VER_COLS} FROM memory_versions WHERE memory_id=$1 ORDER BY version"),
            &[&id.as_str()],
            ver_of,
        )
        .await
    }

    async fn memory_versions_by_run(&self, run: &RunId) -> Result<Vec<MemoryVersionRecord>> {
        let c = self.client().await?;
        rows(
            &c,
            &format!("SELECT {VER_COLS} FROM memory_versions WHERE run_id=$1 ORDER BY seq"),
            &[&run.as_str()],
            ver_of,
        )
        .await
    }

    async fn redact_memory_version(&self, id: &MemoryId, version: i64) -> Result<bool> {
        let c = self.client().await?;
        Ok(exec(
            &c,
            "UPDATE memory_versions SET content=NULL, redacted_at=COALESCE(redacted_at, $3) WHERE memory_id=$1 AND version=$2",
            &[&id.as_str(), &version, &now_micros()],
        )
        .await?
            > 0)
    }

    /// Deletes the rows, then vacuums both tables so the dead row versions' space is reclaimed
    /// (PostgreSQL keeps them until then). Its write-ahead log and backups may still hold the
    /// text until they are recycled: an operator's retention policy, said in the README.
    async fn purge_memory(&self, id: &MemoryId) -> Result<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let n = exec(&tx, "DELETE FROM memories WHERE id=$1", &[&id.as_str()]).await?;
        exec(&tx, "DELETE FROM memory_versions WHERE memory_id=$1", &[&id.as_str()]).await?;
        tx.commit().await?;
        c.batch_execute("VACUUM memories, memory_versions").await?;
        Ok(n > 0)
    }

    async fn set_memory_file(&self, id: &MemoryId, version: i64, sha: Option<String>) -> Result<bool> {
        let c = self.client().await?;
        Ok(exec(&c, "UPDATE memories SET file_sha=$3 WHERE id=$1 AND version=$2", &[&id.as_str(), &version, &sha])
            .await?
            > 0)
    }

    async fn memory_material(&self, dep: &DeploymentId) -> Result<i64> {
        let c = self.client().await?;
        value(
            &c,
            "SELECT COALESCE(MAX(v.seq), 0)::bigint FROM memory_versions v LEFT JOIN runs r ON r.id = v.run_id
             WHERE v.deployment_id=$1 AND (r.kind IS NULL OR r.kind != 'dream')",
            &[&dep.as_str()],
        )
        .await
    }

    async fn insert_dream(&self, d: DreamRecord) -> Result<()> {
        let c = self.client().await?;
        exec(
            &c,
            "INSERT INTO dreams (id, deployment_id, reason, created_at) VALUES ($1,$2,$3,$4)",
            &[&d.id.as_str(), &d.deployment_id.as_str(), &d.reason, &micros(d.created_at)],
        )
        .await?;
        Ok(())
    }

    async fn get_dream(&self, id: &DreamId) -> Result<Option<DreamRecord>> {
        let c = self.client().await?;
        opt(&c, &format!("SELECT {DREAM_COLS} FROM {DREAM_FROM} WHERE d.id=$1"), &[&id.as_str()], dream_of).await
    }

    async fn list_dreams(&self, dep: &DeploymentId, before: Option<DreamId>, limit: usize) -> Result<Vec<DreamRecord>> {
        let before = before.map(|b| b.to_string()).unwrap_or_else(|| "~".into());
        let c = self.client().await?;
        rows(
            &c,
            &format!(
                "SELECT {DREAM_COLS} FROM {DREAM_FROM} WHERE d.deployment_id=$1 AND d.id < $2 ORDER BY d.id DESC LIMIT $3"
            ),
            &[&dep.as_str(), &before, &(limit as i64)],
            dream_of,
        )
        .await
    }

    async fn get_mark(&self, key: &str) -> Result<Option<String>> {
        let c = self.client().await?;
        opt(&c, "SELECT value FROM marks WHERE key=$1", &[&key], |r| Ok(r.try_get(0)?)).await
    }

    async fn mark_once(&self, key: &str, value_: &str) -> Result<String> {
        let c = self.client().await?;
        exec(&c, "INSERT INTO marks (key, value) VALUES ($1,$2) ON CONFLICT (key) DO NOTHING", &[&key, &value_])
            .await?;
        value(&c, "SELECT value FROM marks WHERE key=$1", &[&key]).await
    }

    async fn work_active(&self, dep: &DeploymentId) -> Result<bool> {
        let c = self.client().await?;
        value(
            &c,
            "SELECT EXISTS (SELECT 1 FROM runs WHERE deployment_id=$1 AND kind NOT IN ('observer','dream')
             AND status IN ('queued','running','waiting_on_human'))",
            &[&dep.as_str()],
        )
        .await
    }

    async fn set_mark(&self, key: &str, value_: &str) -> Result<()> {
        let c = self.client().await?;
        exec(
            &c,
            "INSERT INTO marks (key, value) VALUES ($1,$2) ON CONFLICT (key) DO UPDATE SET value=excluded.value",
            &[&key, &value_],
        )
        .await?;
        Ok(())
    }
}
