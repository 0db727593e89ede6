//! Deployments as the application layer sees them: create (then provision in the
//! background), read, list, edit and delete. Every change to a spec is one
//! [`Engine::edit_spec`]: read the deployment, compute the new spec from it, and write it only
//! if nobody wrote in between (the store's revision check), computing again otherwise. So two
//! concurrent edits (two skills added at once, a PATCH racing a tool policy change) both
//! land, and a caller that names the revision it saw (`If-Match`) is refused instead of
//! overwriting a newer one.

mod check;
pub mod skills;
pub mod tools;

use crate::revise::{Attempt, Retries, check_if_match, stale_is_precondition, written};
use crate::{Engine, Error, Result};
use herm_store::{DeploymentQuery, DeploymentRecord};
use herm_types::config::{DeploymentPatch, DeploymentSpec};
use herm_types::*;

/// Whether a spec edit is checked as a whole (a PATCH, which may change references) or only
/// by the edit itself (a skill or a tool policy, which cannot break a reference; a spec that
/// refers to a since-deleted secret stays editable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    Yes,
    EditOnly,
}

/// The outcome of a spec edit and the deployment's revision after it (the API's new `ETag`).
#[derive(Clone, Debug)]
pub struct Revised<T> {
    pub value: T,
    pub revision: i64,
}

impl Engine {
    /// Validates and stores a new deployment (`provisioning`), then provisions its sandbox
    /// in the background (`ready` or `error`).
    pub async fn create_deployment(&self, mut spec: DeploymentSpec) -> Result<DeploymentRecord> {
        self.check_spec(&spec).await?;
        self.resolve_skills(&mut spec.skills).await?;
        let at = now();
        let rec = DeploymentRecord {
            id: DeploymentId::new(),
            status: DeploymentStatus::Provisioning,
            error: None,
            spec,
            default_thread_id: ThreadId::new(),
            created_at: at,
            updated_at: at,
            revision: 1,
        };
        self.store().create_deployment(rec.clone()).await?;
        self.provision(rec.id.clone());
        Ok(rec)
    }

    /// A live (not deleted) deployment.
    pub async fn deployment(&self, id: &DeploymentId) -> Result<DeploymentRecord> {
        self.store().get_deployment(id).await?.ok_or(Error::NotFound("deployment"))
    }

    /// Live deployments, newest first.
    pub async fn list_deployments(&self, q: DeploymentQuery) -> Result<Vec<DeploymentRecord>> {
        Ok(self.store().list_deployments(q).await?)
    }

    /// Applies a PATCH: omitted fields unchanged, `secrets` merged per key. New skills are
    /// resolved (fetched) once, before the conditional write.
    pub async fn patch_deployment(
        &self,
        id: &DeploymentId,
        patch: DeploymentPatch,
        if_match: Option<i64>,
    ) -> Result<DeploymentRecord> {
        let skills = match &patch.skills {
            Some(list) => {
                let mut list = list.clone();
                self.resolve_skills(&mut list).await?;
                Some(list)
            }
            None => None,
        };
        let (rec, ()) = self
            .edit_spec(id, if_match, Checked::Yes, |d| {
                let mut spec = d.spec.patched(patch.clone());
                if let Some(s) = &skills {
                    spec.skills = s.clone();
                }
                Ok((spec, ()))
            })
            .await?;
        Ok(rec)
    }

    /// The one way a deployment's spec changes. `edit` computes the new spec from the
    /// current record (and may refuse); it runs again if another write landed first. With
    /// [`Checked::Yes`] the new spec passes the whole of `check_spec` (its references resolve)
    /// before it is written. With `if_match`, the current revision must be that one:
    /// [`Error::PreconditionFailed`] otherwise, and no second try.
    pub async fn edit_spec<T>(
        &self,
        id: &DeploymentId,
        if_match: Option<i64>,
        checked: Checked,
        mut edit: impl FnMut(&DeploymentRecord) -> Result<(DeploymentSpec, T)>,
    ) -> Result<(DeploymentRecord, T)> {
        let mut retries = Retries::default();
        loop {
            let d = self.deployment(id).await?;
            check_if_match(if_match, d.revision)?;
            let (spec, out) = edit(&d)?;
            if checked == Checked::Yes {
                self.check_spec(&spec).await?;
            }
            match written(self.store().update_deployment_spec(id, &spec, d.revision).await, if_match)? {
                Attempt::Landed(revision) => {
                    return Ok((DeploymentRecord { spec, revision, updated_at: now(), ..d }, out));
                }
                Attempt::Lost => retries.lost().await?,
            }
        }
    }

    /// Deletes a deployment: its runs stop for good, its sandbox is removed (the workspace
    /// too unless `keep_workspace`), its MCP connections are closed.
    pub async fn delete_deployment(
        &self,
        id: &DeploymentId,
        if_match: Option<i64>,
        keep_workspace: bool,
    ) -> Result<()> {
        self.store().delete_deployment(id, if_match).await.map_err(stale_is_precondition)?;
        self.media_cache().forget(id);
        self.destroy_sandbox(id, keep_workspace).await;
        self.mcp().forget(id);
        self.inner.logs.forget_deployment(id);
        Ok(())
    }
}
