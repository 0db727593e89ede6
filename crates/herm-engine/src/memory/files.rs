//! The memory mirror: every live memory is a file under `/workspace/memory/<path>`, so the
//! agent reads and edits memory with its file tools. The store is the record; a sync
//! compares each file with the store and with what the file held when the two last agreed
//! (`file_sha`), and moves whichever side changed:
//!
//! | file vs store | file vs last agreed | action |
//! |---|---|---|
//! | same | — | nothing (remember the agreement) |
//! | missing | agreed before | the agent deleted it: a `deleted` version |
//! | missing | never written, or the store moved on | write the file |
//! | differs | file unchanged | the store moved on: write the file |
//! | differs | file changed | the agent edited it: a new version (on top of any API change) |
//! | a file with no memory | — | the agent created it: a new memory |
//!
//! Syncs of one deployment never overlap. They run before a run's first model call (if the
//! sandbox is up), after the agent's file tools touch `memory/`, and after a memory changes.

use super::{Writer, sha};
use crate::{Engine, Result};
use herm_sandbox::files;
use herm_store::{DeploymentRecord, MemoryRecord};
use herm_types::memory::{self as m, MAX_CONTENT, MEMORY_DIR};
use herm_types::*;
use std::collections::HashMap;
use std::sync::Arc;

/// What one sync did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Synced {
    /// Files written from the store (or removed for deleted memories).
    pub pushed: usize,
    /// Changes taken from the files into the store.
    pub pulled: usize,
}

/// What to do about one path.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Agree,
    Push,
    RemoveFile,
    TakeEdit,
    TakeDeletion,
    TakeNew,
    Nothing,
}

/// The table above, for one path: the live memory there (with its content's hash), the file's
/// hash, and a deleted memory last seen there.
fn step(live: Option<(&MemoryRecord, &str)>, file: Option<&str>, deleted: Option<&MemoryRecord>) -> Step {
    match (live, file) {
        (Some((_, want)), Some(h)) if h == want => Step::Agree,
        (Some((r, want)), None) => match r.file_sha.as_deref() {
            Some(agreed) if agreed == want => Step::TakeDeletion,
            _ => Step::Push,
        },
        (Some((r, _)), Some(h)) => match r.file_sha.as_deref() {
            Some(agreed) if agreed == h => Step::Push,
            _ => Step::TakeEdit,
        },
        (None, Some(h)) => match deleted.and_then(|d| d.file_sha.as_deref()) {
            // The file is what the deleted memory held: the deletion reaches the file.
            Some(agreed) if agreed == h => Step::RemoveFile,
            _ => Step::TakeNew,
        },
        (None, None) => Step::Nothing,
    }
}

/// The mark of a purged memory's path whose file could not be removed yet.
fn purged_mark(dep: &DeploymentId, path: &str) -> String {
    format!("purged:{dep}:{path}")
}

impl Engine {
    /// Syncs the deployment's memory files in the background (see
    /// [`Self::sync_memory_files_if_up`]).
    pub(crate) fn push_memory_files_soon(&self, dep: &DeploymentId) {
        let (me, dep) = (self.clone(), dep.clone());
        self.inner.tasks.spawn(async move {
            if let Ok(d) = me.deployment(&dep).await {
                me.sync_memory_files_if_up(&d, None).await;
            }
        });
    }

    /// Syncs the memory files if the deployment's sandbox is already up (a stopped one is
    /// synced when a run next starts it); a failure is logged, the next sync repairs it.
    pub(crate) async fn sync_memory_files_if_up(&self, d: &DeploymentRecord, run: Option<&RunId>) {
        let Some(sb) = self.sandbox() else { return };
        if !d.spec.sandbox.enabled || !matches!(sb.status(&d.id).await, Ok(herm_sandbox::Status::Running)) {
            return;
        }
        if let Err(e) = self.sync_memory_files(d, run).await {
            tracing::warn!(deployment = %d.id, error = %e, "memory file sync failed");
        }
    }

    /// Removes a purged memory's file now, starting the sandbox if it must (the caller
    /// holds the deployment's sync lock). If it cannot, the path is marked so the next sync
    /// removes the file instead of taking it for a new memory.
    pub(crate) async fn remove_memory_file(&self, dep: &DeploymentId, path: &str) -> Result<()> {
        let d = self.deployment(dep).await?;
        if self.sandbox().is_none() || !d.spec.sandbox.enabled {
            return Ok(());
        }
        let rel = format!("{MEMORY_DIR}/{path}");
        let out = match self.use_sandbox(dep, &d.spec).await {
            Ok((sb, _in_use)) => match files::delete(sb.as_ref(), dep, &rel).await {
                Ok(()) | Err(herm_sandbox::Error::NotFound(_)) => Ok(()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = out {
            tracing::warn!(deployment = %dep, error = %e, "a deleted memory's file is removed at the next sync");
            self.store().set_mark(&purged_mark(dep, path), "1").await?;
        }
        Ok(())
    }

    pub(crate) fn memory_sync_lock(&self, dep: &DeploymentId) -> Arc<tokio::sync::Mutex<()>> {
        self.inner.memory_sync.lock().entry(dep.clone()).or_default().clone()
    }

    /// Brings the workspace files and the store into agreement (see the module docs); changes
    /// taken from files are the agent's, for `run`.
    pub(crate) async fn sync_memory_files(&self, d: &DeploymentRecord, run: Option<&RunId>) -> Result<Synced> {
        let dep = &d.id;
        if self.sandbox().is_none() || !d.spec.sandbox.enabled || !d.spec.features.memory {
            return Ok(Synced::default());
        }
        let lock = self.memory_sync_lock(dep);
        let _one = lock.lock().await;
        let (sb, _in_use) = self.use_sandbox(dep, &d.spec).await?;
        let on_disk = files::hashes(sb.as_ref(), dep, MEMORY_DIR, MAX_CONTENT as u64).await?;
        let all = self.store().all_memories(dep).await?;
        let mut live: HashMap<&str, (&MemoryRecord, String)> = HashMap::new();
        let mut deleted: HashMap<&str, &MemoryRecord> = HashMap::new();
        for r in &all {
            match &r.content {
                Some(c) => {
                    live.insert(r.path.as_str(), (r, sha(c)));
                }
                None => {
                    let newer = deleted.get(r.path.as_str()).is_none_or(|o| o.updated_at < r.updated_at);
                    if newer {
                        deleted.insert(r.path.as_str(), r);
                    }
                }
            }
        }
        let mut paths: Vec<&str> = live.keys().copied().chain(on_disk.keys().map(String::as_str)).collect();
        paths.sort_unstable();
        paths.dedup();
        let mut done = Synced::default();
        for path in paths {
            let l = live.get(path).map(|(r, h)| (*r, h.as_str()));
            let file = on_disk.get(path).map(String::as_str);
            let rel = format!("{MEMORY_DIR}/{path}");
            let agent = Writer { from_file: true, ..Writer::agent(run.cloned()) };
            match step(l, file, deleted.get(path).copied()) {
                Step::Nothing => {}
                Step::Agree => {
                    if let Some((r, h)) = l
                        && r.file_sha.as_deref() != Some(h)
                    {
                        self.store().set_memory_file(&r.id, r.version, Some(h.to_owned())).await?;
                    }
                }
                Step::Push => {
                    let Some((r, h)) = l else { continue };
                    let text = r.content.clone().unwrap_or_default();
                    files::write(sb.as_ref(), dep, &rel, text.into_bytes()).await?;
                    self.store().set_memory_file(&r.id, r.version, Some(h.to_owned())).await?;
                    done.pushed += 1;
                }
                Step::RemoveFile => {
                    if let Some(r) = deleted.get(path) {
                        files::delete(sb.as_ref(), dep, &rel).await?;
                        self.store().set_memory_file(&r.id, r.version, None).await?;
                        done.pushed += 1;
                    }
                }
                Step::TakeDeletion => {
                    let Some((r, _)) = l else { continue };
                    done.pulled += taken(self.put_memory(d, path, None, agent, Some(r.version)).await, path);
                }
                Step::TakeNew if self.store().get_mark(&purged_mark(dep, path)).await?.is_some_and(|v| v == "1") => {
                    files::delete(sb.as_ref(), dep, &rel).await?;
                    self.store().set_mark(&purged_mark(dep, path), "0").await?;
                    done.pushed += 1;
                }
                Step::TakeEdit | Step::TakeNew => {
                    if m::check_path(path).is_err() {
                        continue;
                    }
                    let Ok(Ok(text)) = files::read(sb.as_ref(), dep, &rel).await.map(String::from_utf8) else {
                        continue;
                    };
                    let expected = l.map(|(r, _)| r.version).or(Some(0));
                    done.pulled += taken(self.put_memory(d, path, Some(text), agent, expected).await, path);
                }
            }
        }
        Ok(done)
    }
}

/// 1 for a change taken from a file; a race lost to another write is left for the next sync.
fn taken(r: Result<MemoryRecord>, path: &str) -> usize {
    match r {
        Ok(_) => 1,
        Err(e) => {
            tracing::info!(path, error = %e, "memory file change not taken now");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herm_types::memory::MemorySource;

    fn rec(content: Option<&str>, file_sha: Option<&str>) -> MemoryRecord {
        MemoryRecord {
            id: MemoryId::new(),
            deployment_id: DeploymentId::new(),
            path: "p.md".into(),
            content: content.map(Into::into),
            source: MemorySource::Api,
            version: 1,
            file_sha: file_sha.map(Into::into),
            created_at: now(),
            updated_at: now(),
        }
    }

    #[test]
    fn each_side_that_moved_wins() {
        let (a, b, c) = ("aaa", "bbb", "ccc");
        type Case<'a> = (Option<MemoryRecord>, Option<&'a str>, Option<MemoryRecord>, Step);
        let cases: Vec<Case<'_>> = vec![
            (Some(rec(Some("x"), None)), Some(a), None, Step::Agree),
            (Some(rec(Some("x"), None)), None, None, Step::Push),
            (Some(rec(Some("x"), Some(a))), None, None, Step::TakeDeletion),
            (Some(rec(Some("x"), Some(b))), None, None, Step::Push),
            (Some(rec(Some("x"), Some(b))), Some(b), None, Step::Push),
            (Some(rec(Some("x"), Some(a))), Some(c), None, Step::TakeEdit),
            (Some(rec(Some("x"), Some(b))), Some(c), None, Step::TakeEdit),
            (Some(rec(Some("x"), None)), Some(c), None, Step::TakeEdit),
            (None, Some(c), None, Step::TakeNew),
            (None, Some(c), Some(rec(None, Some(c))), Step::RemoveFile),
            (None, Some(c), Some(rec(None, Some(b))), Step::TakeNew),
            (None, None, Some(rec(None, Some(b))), Step::Nothing),
        ];
        for (i, (live, file, deleted, want)) in cases.into_iter().enumerate() {
            // `a` stands for the live memory's content hash.
            let l = live.as_ref().map(|r| (r, a));
            assert_eq!(step(l, file, deleted.as_ref()), want, "case {i}");
        }
    }
}
