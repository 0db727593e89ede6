//! The Files API's operations on a deployment's workspace: list, read, write, delete, each
//! with the sandbox held in use for the call. With `features.filesystem_webhooks`, a change
//! made this way is a `filesystem` event on the deployment's default thread.

use crate::conditional::Reads;
use crate::{Engine, Error, InUse, Result};
use herm_sandbox::Sandbox;
use herm_sandbox::files;
use herm_store::{Append, DeploymentRecord};
use herm_types::event::FileChange;
use herm_types::*;
use std::sync::Arc;

pub use herm_sandbox::files::{Entry, MAX_FILE};

/// A file written through the API.
#[derive(Clone, Debug)]
pub struct Written {
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub modified: f64,
}

impl Engine {
    async fn workspace(&self, dep: &DeploymentId) -> Result<(DeploymentRecord, Arc<dyn Sandbox>, InUse)> {
        let d = self.deployment(dep).await?;
        if self.sandbox().is_none() || !d.spec.sandbox.enabled {
            return Err(Error::NoSandbox);
        }
        let (sb, guard) = self.use_sandbox(&d.id, &d.spec).await?;
        Ok((d, sb, guard))
    }

    pub async fn list_files(&self, dep: &DeploymentId, path: &str) -> Result<Vec<Entry>> {
        let (d, sb, _in_use) = self.workspace(dep).await?;
        Ok(files::list(sb.as_ref(), &d.id, path).await?)
    }

    pub async fn read_file(&self, dep: &DeploymentId, path: &str) -> Result<Vec<u8>> {
        let (d, sb, _in_use) = self.workspace(dep).await?;
        Ok(files::read(sb.as_ref(), &d.id, path).await?)
    }

    pub async fn write_file(&self, dep: &DeploymentId, path: &str, data: Vec<u8>) -> Result<Written> {
        files::relative(path)?;
        let (d, sb, _in_use) = self.workspace(dep).await?;
        let (size, modified, created) = files::write(sb.as_ref(), &d.id, path, data).await?;
        self.record_file_change(&d, if created { FileChange::Created } else { FileChange::Modified }, path).await?;
        Ok(Written { size, modified })
    }

    pub async fn delete_file(&self, dep: &DeploymentId, path: &str) -> Result<()> {
        let (d, sb, _in_use) = self.workspace(dep).await?;
        files::delete(sb.as_ref(), &d.id, path).await?;
        self.record_file_change(&d, FileChange::Deleted, path).await
    }

    async fn record_file_change(&self, d: &DeploymentRecord, change: FileChange, path: &str) -> Result<()> {
        if !d.spec.features.filesystem_webhooks {
            return Ok(());
        }
        let rel = files::relative(path)?;
        let thread = d.default_thread_id.clone();
        // Not tied to any run: no condition, but the same single write path.
        self.append_planned(&thread, Reads::Nothing, |_| {
            let ev = NewEvent::new(None, EventKind::Filesystem { change, path: rel.clone() });
            Ok((Append::new(thread.clone(), vec![ev]), ()))
        })
        .await
    }
}
