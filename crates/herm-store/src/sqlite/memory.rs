//! Memories, their versions, dreams and marks in SQLite. A write lands only on the version it
//! expects (one transaction: check, update, version row); a purge deletes with
//! `secure_delete` on and checkpoints the journal, so the text leaves the data directory.

use super::rows::*;
use super::{SqliteStore, from_micros, micros, now_micros};
use crate::*;
use herm_types::memory::{MemoryOperation, MemorySource, MemoryVersion};
use rusqlite::{Connection, OptionalExtension, Row, params};

pub(crate) const MEM_COLS: &str = "id, deployment_id, path, content, source, version, file_sha, created_at, updated_at";
pub(crate) type MemRow = (String, String, String, Option<String>, String, i64, Option<String>, i64, i64);
fn mem_row(r: &Row) -> rusqlite::Result<MemRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?))
}
pub(crate) fn mem_rec(t: MemRow) -> Result<MemoryRecord> {
    Ok(MemoryRecord {
        id: parse_id(t.0)?,
        deployment_id: parse_id(t.1)?,
        path: t.2,
        content: t.3,
        source: MemorySource::parse(&t.4).ok_or_else(|| corrupt("memory source"))?,
        version: t.5,
        file_sha: t.6,
        created_at: from_micros(t.7),
        updated_at: from_micros(t.8),
    })
}

pub(crate) const VER_COLS: &str =
    "memory_id, version, operation, path, content, source, run_id, created_at, redacted_at";
pub(crate) type VerRow = (String, i64, String, String, Option<String>, String, Option<String>, i64, Option<i64>);
fn ver_row(r: &Row) -> rusqlite::Result<VerRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?))
}
pub(crate) fn ver_rec(t: VerRow) -> Result<MemoryVersionRecord> {
    Ok(MemoryVersionRecord {
        memory_id: parse_id(t.0)?,
        version: MemoryVersion {
            version: t.1,
            operation: MemoryOperation::parse(&t.2).ok_or_else(|| corrupt("memory operation"))?,
            path: t.3,
            content: t.4,
            source: MemorySource::parse(&t.5).ok_or_else(|| corrupt("memory source"))?,
            run_id: t.6.map(parse_id).transpose()?,
            created_at: from_micros(t.7),
            redacted_at: t.8.map(from_micros),
        },
    })
}

pub(crate) const DREAM_COLS: &str = "d.id, d.deployment_id, d.reason, d.created_at, r.id, r.status";
pub(crate) type DreamRow = (String, String, String, i64, Option<String>, Option<String>);
fn dream_row(r: &Row) -> rusqlite::Result<DreamRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}
pub(crate) fn dream_rec(t: DreamRow) -> Result<DreamRecord> {
    let run = match (t.4, t.5) {
        (Some(id), Some(s)) => Some((parse_id(id)?, RunStatus::parse(&s).ok_or_else(|| corrupt("run status"))?)),
        _ => None,
    };
    Ok(DreamRecord {
        id: parse_id(t.0)?,
        deployment_id: parse_id(t.1)?,
        reason: t.2,
        created_at: from_micros(t.3),
        run,
    })
}
pub(crate) const DREAM_FROM: &str =
    "dreams d LEFT JOIN runs r ON r.kind='dream' AND json_extract(r.trigger, '$.dream_id') = d.id";

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
/// What a write makes of the memory as it stands: its next version, the operation, and when
/// the memory was created; refused when the write was based on another state.
pub(crate) fn next_version(
    current: Option<&MemoryRecord>,
    w: &MemoryWrite,
    now: i64,
) -> Result<(i64, MemoryOperation, i64)> {
    Ok(match (current, w.expected) {
        (None, Expected::Absent) => (1, MemoryOperation::Created, now),
        (Some(_), Expected::Absent) => return Err(Error::Stale),
        (None, Expected::Version(_)) => return Err(Error::NotFound),
        (Some(m), Expected::Version(v)) if m.version != v => return Err(Error::Stale),
        // A deleted memory comes back only as a new memory.
        (Some(m), _) if m.content.is_none() => return Err(Error::NotFound),
        (Some(m), Expected::Version(v)) => {
            let op = if w.content.is_some() { MemoryOperation::Modified } else { MemoryOperation::Deleted };
            (v + 1, op, micros(m.created_at))
        }
    })
}

pub(crate) fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// The write transaction of [`MemoryStore::write_memory`].
fn write_tx(c: &Connection, w: &MemoryWrite, now: i64) -> Result<MemoryRecord> {
    let current = c
        .prepare_cached(&format!("SELECT {MEM_COLS} FROM memories WHERE id=?1"))?
        .query_row([w.memory_id.as_str()], mem_row)
        .optional()?
        .map(mem_rec)
        .transpose()?;
    let (version, operation, created_at) = next_version(current.as_ref(), w, now)?;
    if w.content.is_some() {
        let taken: Option<String> = c
            .prepare_cached("SELECT id FROM memories WHERE deployment_id=?1 AND path=?2 AND content IS NOT NULL")?
            .query_row(params![w.deployment_id.as_str(), w.path], |r| r.get(0))
            .optional()?;
        if taken.is_some_and(|id| id != w.memory_id.as_str()) {
            return Err(Error::Conflict(format!("a memory already lives at `{}`", w.path)));
        }
    }
    c.prepare_cached(
        "INSERT INTO memories (id, deployment_id, path, content, source, version, file_sha, created_at, updated_at)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)
         ON CONFLICT (id) DO UPDATE SET path=excluded.path, content=excluded.content, source=excluded.source,
           version=excluded.version, file_sha=COALESCE(excluded.file_sha, memories.file_sha), updated_at=excluded.updated_at",
    )?
    .execute(params![
        w.memory_id.as_str(),
        w.deployment_id.as_str(),
        w.path,
        w.content,
        w.source.as_str(),
        version,
        w.file_sha,
        created_at,
        now
    ])?;
    c.prepare_cached(
        "INSERT INTO memory_versions (memory_id, deployment_id, version, operation, path, content, source, run_id, created_at)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
    )?
    .execute(params![
        w.memory_id.as_str(),
        w.deployment_id.as_str(),
        version,
        operation.as_str(),
        w.path,
        w.content,
        w.source.as_str(),
        w.run_id.as_ref().map(|r| r.as_str()),
        now
    ])?;
    one(c, &format!("SELECT {MEM_COLS} FROM memories WHERE id=?1"), [w.memory_id.as_str()], mem_row, mem_rec)?
        .ok_or(Error::NotFound)
}

#[async_trait::async_trait]
impl MemoryStore for SqliteStore {
    async fn write_memory(&self, w: MemoryWrite) -> Result<MemoryRecord> {
        self.write(move |c| write_tx(c, &w, now_micros())).await
    }

    async fn get_memory(&self, id: &MemoryId) -> Result<Option<MemoryRecord>> {
        let id = id.to_string();
        self.read(move |c| one(c, &format!("SELECT {MEM_COLS} FROM memories WHERE id=?1"), [id], mem_row, mem_rec))
            .await
    }

    async fn memory_at(&self, dep: &DeploymentId, path: &str) -> Result<Option<MemoryRecord>> {
        let (dep, path) = (dep.to_string(), path.to_owned());
        self.read(move |c| {
            one(
                c,
                &format!("SELECT {MEM_COLS} FROM memories WHERE deployment_id=?1 AND path=?2 AND content IS NOT NULL"),
                [dep, path],
                mem_row,
                mem_rec,
            )
        })
        .await
    }

    async fn list_memories(&self, dep: &DeploymentId, q: MemoryQuery) -> Result<Vec<MemoryRecord>> {
        let dep = dep.to_string();
        self.read(move |c| {
            let prefix = format!("{}%", like_escape(q.prefix.as_deref().unwrap_or("")));
            let needle = q.q.as_deref().map(str::to_lowercase).unwrap_or_default();
            let before = q.before.map(|b| b.to_string()).unwrap_or_else(|| "~".into());
            collect(
                c,
                &format!(
                    "SELECT {MEM_COLS} FROM memories WHERE deployment_id=?1 AND content IS NOT NULL
                     AND path LIKE ?2 ESCAPE '\\' AND id < ?3
                     AND (?4 = '' OR instr(lower(content), ?4) > 0 OR instr(lower(path), ?4) > 0)
                     ORDER BY id DESC LIMIT ?5"
                ),
                params![dep, prefix, before, needle, q.limit as i64],
                mem_row,
                mem_rec,
            )
        })
        .await
    }

    async fn memory_texts(&self, dep: &DeploymentId) -> Result<Vec<MemoryText>> {
        let dep = dep.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT path, content, version, updated_at FROM memories WHERE deployment_id=?1 AND content IS NOT NULL",
            )?;
            let rows = stmt.query_map([dep], |r| {
                Ok(MemoryText { path: r.get(0)?, content: r.get(1)?, version: r.get(2)?, updated_at: from_micros(r.get(3)?) })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn all_memories(&self, dep: &DeploymentId) -> Result<Vec<MemoryRecord>> {
        let dep = dep.to_string();
        self.read(move |c| {
            collect(c, &format!("SELECT {MEM_COLS} FROM memories WHERE deployment_id=?1"), [dep], mem_row, mem_rec)
        })
        .await
    }

    async fn memory_versions(&self, id: &MemoryId) -> Result<Vec<MemoryVersionRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            collect(
                c,
                &format!("SELECT {VER_COLS} FROM memory_versions WHERE memory_id=?1 ORDER BY version"),
                [id],
                ver_row,
                ver_rec,
            )
        })
        .await
    }

    async fn memory_versions_by_run(&self, run: &RunId) -> Result<Vec<MemoryVersionRecord>> {
        let run = run.to_string();
        self.read(move |c| {
            collect(
                c,
                &format!("SELECT {VER_COLS} FROM memory_versions WHERE run_id=?1 ORDER BY seq"),
                [run],
                ver_row,
                ver_rec,
            )
        })
        .await
    }

    async fn redact_memory_version(&self, id: &MemoryId, version: i64) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE memory_versions SET content=NULL, redacted_at=COALESCE(redacted_at, ?3)
                     WHERE memory_id=?1 AND version=?2",
                )?
                .execute(params![id, version, now_micros()])?;
            Ok(n > 0)
        })
        .await
    }

    async fn purge_memory(&self, id: &MemoryId) -> Result<bool> {
        let id = id.to_string();
        let gone = self
            .write(move |c| {
                // Freed pages and cells are overwritten with zeros (the writer keeps this on).
                let n = c.prepare_cached("DELETE FROM memories WHERE id=?1")?.execute([&id])?;
                c.prepare_cached("DELETE FROM memory_versions WHERE memory_id=?1")?.execute([&id])?;
                Ok(n > 0)
            })
            .await?;
        self.checkpoint().await?;
        Ok(gone)
    }

    async fn set_memory_file(&self, id: &MemoryId, version: i64, sha: Option<String>) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| {
            let n = c
                .prepare_cached("UPDATE memories SET file_sha=?3 WHERE id=?1 AND version=?2")?
                .execute(params![id, version, sha])?;
            Ok(n > 0)
        })
        .await
    }

    async fn memory_material(&self, dep: &DeploymentId) -> Result<i64> {
        let dep = dep.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT COALESCE(MAX(v.seq), 0) FROM memory_versions v LEFT JOIN runs r ON r.id = v.run_id
                 WHERE v.deployment_id=?1 AND (r.kind IS NULL OR r.kind != 'dream')",
            )?
            .query_row([dep], |r| r.get(0))?)
        })
        .await
    }

    async fn insert_dream(&self, d: DreamRecord) -> Result<()> {
        self.write(move |c| {
            c.prepare_cached("INSERT INTO dreams (id, deployment_id, reason, created_at) VALUES (?1,?2,?3,?4)")?
                .execute(params![d.id.as_str(), d.deployment_id.as_str(), d.reason, micros(d.created_at)])?;
            Ok(())
        })
        .await
    }

    async fn get_dream(&self, id: &DreamId) -> Result<Option<DreamRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            one(c, &format!("SELECT {DREAM_COLS} FROM {DREAM_FROM} WHERE d.id=?1"), [id], dream_row, dream_rec)
        })
        .await
    }

    async fn list_dreams(&self, dep: &DeploymentId, before: Option<DreamId>, limit: usize) -> Result<Vec<DreamRecord>> {
        let dep = dep.to_string();
        let before = before.map(|b| b.to_string()).unwrap_or_else(|| "~".into());
        self.read(move |c| {
            collect(
                c,
                &format!(
                    "SELECT {DREAM_COLS} FROM {DREAM_FROM} WHERE d.deployment_id=?1 AND d.id < ?2
                     ORDER BY d.id DESC LIMIT ?3"
                ),
                params![dep, before, limit as i64],
                dream_row,
                dream_rec,
            )
        })
        .await
    }

    async fn get_mark(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_owned();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT value FROM marks WHERE key=?1")?.query_row([key], |r| r.get(0)).optional()?)
        })
        .await
    }

    async fn mark_once(&self, key: &str, value: &str) -> Result<String> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(move |c| {
            c.prepare_cached("INSERT INTO marks (key, value) VALUES (?1,?2) ON CONFLICT (key) DO NOTHING")?
                .execute(params![key, value])?;
            Ok(c.prepare_cached("SELECT value FROM marks WHERE key=?1")?.query_row([key], |r| r.get(0))?)
        })
        .await
    }

    async fn work_active(&self, dep: &DeploymentId) -> Result<bool> {
        let dep = dep.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE deployment_id=?1 AND kind NOT IN ('observer','dream')
                 AND status IN ('queued','running','waiting_on_human'))",
            )?
            .query_row([dep], |r| r.get(0))?)
        })
        .await
    }

    async fn set_mark(&self, key: &str, value: &str) -> Result<()> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO marks (key, value) VALUES (?1,?2) ON CONFLICT (key) DO UPDATE SET value=excluded.value",
            )?
            .execute(params![key, value])?;
            Ok(())
        })
        .await
    }
}
