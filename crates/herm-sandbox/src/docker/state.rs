//! What the Docker backend keeps on the host because Docker cannot: which herm owns a
//! container (an id made once per data directory, so two herm servers on one engine never
//! take each other's sandboxes for orphans), and which workspace volume a deployment uses
//! when it claimed a pre-started pool container (a volume cannot be renamed, so the pool's
//! volume stays the deployment's for good).
//!
//! Claims are written durably (file fsync, then directory fsync) before the container is
//! renamed: after a crash at any point a deployment either has its claim or never had the
//! pool container.

use crate::{Error, Result};
use herm_types::{DeploymentId, EventId};
use std::io::Write;
use std::path::{Path, PathBuf};

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Engine(format!("{what} {}: {e}", path.display()))
}

pub(crate) struct State {
    dir: PathBuf,
    /// This herm's id, on the labels of everything it creates.
    pub(crate) owner: String,
}

impl State {
    /// Opens (creating) the state directory and reads or makes the owner id.
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let claims = dir.join("claims");
        std::fs::create_dir_all(&claims).map_err(|e| io("cannot create", &claims, e))?;
        let file = dir.join("owner");
        let owner = match std::fs::read_to_string(&file) {
            Ok(s) if valid_owner(s.trim()) => s.trim().to_owned(),
            _ => {
                let owner = EventId::new().as_str().trim_start_matches(EventId::PREFIX).to_owned();
                write_durably(&file, owner.as_bytes())?;
                owner
            }
        };
        Ok(Self { dir: dir.to_owned(), owner })
    }

    fn claim_path(&self, dep: &DeploymentId) -> PathBuf {
        self.dir.join("claims").join(dep.as_str())
    }

    /// The pool volume the deployment claimed, if it claimed one.
    pub(crate) fn claimed_volume(&self, dep: &DeploymentId) -> Option<String> {
        let v = std::fs::read_to_string(self.claim_path(dep)).ok()?;
        let v = v.trim();
        valid_volume(v).then(|| v.to_owned())
    }

    /// Every claimed volume (pool volumes not among them are free to remove).
    pub(crate) fn claimed_volumes(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.dir.join("claims")) else { return Vec::new() };
        rd.filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .map(|v| v.trim().to_owned())
            .filter(|v| valid_volume(v))
            .collect()
    }

    pub(crate) fn claim(&self, dep: &DeploymentId, volume: &str) -> Result<()> {
        write_durably(&self.claim_path(dep), volume.as_bytes())
    }

    pub(crate) fn release(&self, dep: &DeploymentId) -> Result<()> {
        match std::fs::remove_file(self.claim_path(dep)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("cannot remove", &self.claim_path(dep), e)),
        }
    }
}

fn valid_owner(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Only names herm gives pool volumes are read back: a claim file never names another volume.
fn valid_volume(s: &str) -> bool {
    s.strip_prefix("herm-ws-pool-").is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Writes `path` through a temporary file, fsyncs it, renames it into place and fsyncs the
/// directory, so the file is either absent or whole after a crash.
fn write_durably(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| io("cannot write", &tmp, e))?;
    f.write_all(data).and_then(|_| f.sync_all()).map_err(|e| io("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("cannot rename", path, e))?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent).and_then(|d| d.sync_all()).map_err(|e| io("cannot sync", parent, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn owner_survives_reopening_and_claims_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let a = State::open(dir.path()).unwrap();
        let b = State::open(dir.path()).unwrap();
        assert_eq!(a.owner, b.owner);
        assert!(valid_owner(&a.owner));
        let dep = DeploymentId::new();
        assert_eq!(a.claimed_volume(&dep), None);
        a.claim(&dep, "herm-ws-pool-abc123").unwrap();
        assert_eq!(b.claimed_volume(&dep).as_deref(), Some("herm-ws-pool-abc123"));
        assert_eq!(b.claimed_volumes(), vec!["herm-ws-pool-abc123".to_owned()]);
        a.release(&dep).unwrap();
        a.release(&dep).unwrap();
        assert_eq!(b.claimed_volume(&dep), None);
    }

    #[test]
    fn a_claim_file_naming_any_other_volume_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        let dep = DeploymentId::new();
        for bad in ["herm-ws-dep_other", "/var/lib/docker", "herm-ws-pool-", "herm-ws-pool-a/b", ""] {
            std::fs::write(s.claim_path(&dep), bad).unwrap();
            assert_eq!(s.claimed_volume(&dep), None, "{bad}");
        }
    }
}
