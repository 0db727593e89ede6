//! The Tools API's operations: which tools a deployment's agent has, and a per-tool policy
//! stored as an exact entry of the spec's `tool_policies` (a spec edit).

use super::{Checked, Revised};
use crate::tools::{Tool, policy_for};
use crate::{Engine, Error, Result};
use herm_types::DeploymentId;
use herm_types::config::ToolPermission;

impl Engine {
    /// Every tool of the deployment on this node, with its permission.
    pub async fn deployment_tools(&self, dep: &DeploymentId) -> Result<Vec<Tool>> {
        let d = self.deployment(dep).await?;
        Ok(self.tools(&d.id, &d.spec).await.all().to_vec())
    }

    /// Sets one tool's policy: `enabled: false` disables it, `permission` sets it, and
    /// re-enabling a disabled tool keeps whether it asks (allow if it never asked).
    pub async fn set_tool_policy(
        &self,
        dep: &DeploymentId,
        name: &str,
        if_match: Option<i64>,
        enabled: Option<bool>,
        permission: Option<ToolPermission>,
    ) -> Result<Revised<Tool>> {
        let d = self.deployment(dep).await?;
        let tools = self.tools(&d.id, &d.spec).await;
        let Some(default) = tools.all().iter().find(|t| t.name == name).map(|t| t.default_permission) else {
            return Err(Error::NotFound("tool"));
        };
        let (d, ()) = self
            .edit_spec(dep, if_match, Checked::EditOnly, |d| {
                let mut spec = d.spec.clone();
                let current = policy_for(&spec, name).unwrap_or(default);
                let new = match (enabled, permission) {
                    (Some(false), _) | (_, Some(ToolPermission::Disabled)) => ToolPermission::Disabled,
                    (_, Some(perm)) => perm,
                    (Some(true), None) if current == ToolPermission::Disabled => ToolPermission::AlwaysAllow,
                    _ => current,
                };
                spec.tool_policies.insert(name.to_owned(), new);
                Ok((spec, ()))
            })
            .await?;
        let tools = self.tools(&d.id, &d.spec).await;
        let tool = tools.all().iter().find(|t| t.name == name).cloned().ok_or(Error::NotFound("tool"))?;
        Ok(Revised { value: tool, revision: d.revision })
    }
}
