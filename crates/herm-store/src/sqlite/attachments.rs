//! Attachments in SQLite, their bytes as files: `blobs/<deployment>/<sha256>` beside the
//! database. A file is written to a temporary name, synced and renamed before its record is
//! committed, so a committed reference always has its bytes. Writing a deployment's bytes
//! and removing bytes no record holds any more are serialised by a lock (one per stripe of
//! deployments), so a removal never takes a file that a concurrent write of the same content
//! is about to reference.

use super::rows::*;
use super::{SqliteStore, from_micros, micros};
use crate::*;
use rusqlite::{OptionalExtension, Row, params};
use std::path::{Path, PathBuf};

pub(crate) type AttRow = (String, Option<String>, String, i64);
fn att_row(r: &Row) -> rusqlite::Result<AttRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}
pub(crate) fn att_rec(t: AttRow) -> Result<AttachmentRecord> {
    Ok(AttachmentRecord {
        deployment_id: parse_id(t.0)?,
        thread_id: t.1.map(parse_id).transpose()?,
        reference: json(&t.2)?,
        created_at: from_micros(t.3),
    })
}

/// A hex SHA-256: the only file names under a deployment's directory.
pub(crate) fn is_sha(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl SqliteStore {
    pub(super) fn blob_dir(&self, dep: &DeploymentId) -> PathBuf {
        self.inner.blobs.join(dep.to_string())
    }

    /// The lock serialising writes and removals of the deployment's bytes.
    fn blob_lock(&self, dep: &DeploymentId) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        dep.hash(&mut h);
        let locks = &self.inner.blob_locks;
        &locks[(h.finish() as usize) % locks.len()]
    }

    /// Removes the files of `shas` that no attachment of the deployment references.
    pub(super) async fn sweep_blobs(&self, dep: DeploymentId, shas: Vec<String>) -> Result<()> {
        if shas.is_empty() {
            return Ok(());
        }
        let _held = self.blob_lock(&dep).lock().await;
        let d = dep.to_string();
        let unused = self
            .read(move |c| {
                let mut out = Vec::new();
                for s in shas {
                    let used: bool = c.query_row(
                        "SELECT EXISTS (SELECT 1 FROM attachments WHERE deployment_id=?1 AND sha256=?2)",
                        params![d, s],
                        |r| r.get(0),
                    )?;
                    if !used {
                        out.push(s);
                    }
                }
                Ok(out)
            })
            .await?;
        let dir = self.blob_dir(&dep);
        tokio::task::spawn_blocking(move || {
            for s in unused.iter().filter(|s| is_sha(s)) {
                match std::fs::remove_file(dir.join(s)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
            Ok(())
        })
        .await
        .map_err(|_| Error::Closed)?
    }

    /// Removes a deleted deployment's attachments and their directory.
    pub(super) async fn drop_blobs(&self, dep: &DeploymentId) -> Result<()> {
        let _held = self.blob_lock(dep).lock().await;
        let d = dep.to_string();
        self.write(move |c| Ok(c.execute("DELETE FROM attachments WHERE deployment_id=?1", [d])?)).await?;
        let dir = self.blob_dir(dep);
        tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        })
        .await
        .map_err(|_| Error::Closed)?
    }

    /// Removes the attachments a deleted thread carried, and their bytes where unshared.
    pub(super) async fn drop_thread_blobs(&self, thread: &ThreadId) -> Result<()> {
        let t = thread.to_string();
        let gone: Vec<(String, String)> = self
            .write(move |c| {
                let mut stmt =
                    c.prepare_cached("DELETE FROM attachments WHERE thread_id=?1 RETURNING deployment_id, sha256")?;
                let rows = stmt.query_map([t], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await?;
        let mut by_dep: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (d, s) in gone {
            by_dep.entry(d).or_default().push(s);
        }
        for (d, shas) in by_dep {
            self.sweep_blobs(parse_id(d)?, shas).await?;
        }
        Ok(())
    }
}

/// Removes what a crash left under `blobs`: temporary files, and bytes whose record was never
/// committed (or whose removal was cut short). Runs when the store opens, before any write.
pub(super) fn sweep_orphans(conn: &rusqlite::Connection, blobs: &Path) -> Result<usize> {
    let Ok(deps) = std::fs::read_dir(blobs) else { return Ok(0) };
    let mut removed = 0;
    let mut used = conn.prepare("SELECT EXISTS (SELECT 1 FROM attachments WHERE deployment_id=?1 AND sha256=?2)")?;
    for dep in deps.flatten().filter(|d| d.path().is_dir()) {
        let dep_id = dep.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(dep.path())?.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            let keep = is_sha(&name) && used.query_row(params![dep_id, name], |r| r.get::<_, bool>(0))?;
            if !keep {
                std::fs::remove_file(f.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Writes `bytes` as `dir/name` unless it is there: temporary file, sync, rename, sync dir.
fn write_once(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join(name);
    if path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.{}.tmp", rand::random::<u64>()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[async_trait]
impl AttachmentStore for SqliteStore {
    async fn put_attachment(&self, rec: AttachmentRecord, bytes: Vec<u8>) -> Result<()> {
        let sha = rec.reference.sha256.clone();
        let id =
            rec.reference.attachment_id.clone().ok_or_else(|| Error::Corrupt("an attachment needs its id".into()))?;
        if !is_sha(&sha) {
            return Err(Error::Corrupt("an attachment's sha256 must be 64 lowercase hex digits".into()));
        }
        let _held = self.blob_lock(&rec.deployment_id).lock().await;
        let dir = self.blob_dir(&rec.deployment_id);
        let name = sha.clone();
        tokio::task::spawn_blocking(move || write_once(&dir, &name, &bytes)).await.map_err(|_| Error::Closed)??;
        let reference = serde_json::to_string(&rec.reference).map_err(|e| Error::Corrupt(e.to_string()))?;
        self.write(move |c| {
            c.execute(
                "INSERT INTO attachments (id, deployment_id, thread_id, reference, sha256, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id.to_string(),
                    rec.deployment_id.to_string(),
                    rec.thread_id.map(|t| t.to_string()),
                    reference,
                    sha,
                    micros(rec.created_at)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_attachment(&self, dep: &DeploymentId, id: &AttachmentId) -> Result<Option<AttachmentRecord>> {
        let (d, id) = (dep.to_string(), id.to_string());
        self.read(move |c| {
            one(
                c,
                "SELECT deployment_id, thread_id, reference, created_at FROM attachments WHERE id=?1 AND deployment_id=?2",
                params![id, d],
                att_row,
                att_rec,
            )
        })
        .await
    }

    async fn blob(&self, dep: &DeploymentId, sha256: &str) -> Result<Option<Vec<u8>>> {
        if !is_sha(sha256) {
            return Ok(None);
        }
        let path = self.blob_dir(dep).join(sha256);
        tokio::task::spawn_blocking(move || match std::fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        })
        .await
        .map_err(|_| Error::Closed)?
    }

    async fn remove_attachments(&self, dep: &DeploymentId, ids: &[AttachmentId]) -> Result<()> {
        let (d, ids): (String, Vec<String>) = (dep.to_string(), ids.iter().map(|i| i.to_string()).collect());
        let shas = self
            .write(move |c| {
                let mut shas = Vec::new();
                let mut stmt =
                    c.prepare_cached("DELETE FROM attachments WHERE id=?1 AND deployment_id=?2 RETURNING sha256")?;
                for id in ids {
                    if let Some(s) = stmt.query_row(params![id, d], |r| r.get::<_, String>(0)).optional()? {
                        shas.push(s);
                    }
                }
                Ok(shas)
            })
            .await?;
        self.sweep_blobs(dep.clone(), shas).await
    }
}
