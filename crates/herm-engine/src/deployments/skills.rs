//! The Skills API's operations: a skill is part of its deployment's spec, so adding,
//! replacing or removing one is a spec edit (see [`Engine::edit_spec`]). A skill is resolved
//! (fetched, parsed) once, before the edit; the edit checks names and the count against the
//! spec as it is at that moment.

use super::{Checked, Revised};
use crate::{Engine, Error, Result};
use herm_types::config::{FieldError, SkillSpec, limits};
use herm_types::*;

fn invalid(e: String) -> Error {
    Error::InvalidSkill(FieldError::new("skill", e))
}

impl Engine {
    /// Adds a skill; returns it resolved, with its id.
    pub async fn add_skill(
        &self,
        dep: &DeploymentId,
        if_match: Option<i64>,
        mut skill: SkillSpec,
    ) -> Result<Revised<SkillSpec>> {
        skill.skill_id = None;
        skill.created_at = None;
        let skill = crate::skills::resolve(self.http(), skill, now()).await.map_err(invalid)?;
        let (d, s) = self
            .edit_spec(dep, if_match, Checked::EditOnly, |d| {
                if d.spec.skills.len() >= limits::MAX_SKILLS {
                    return Err(Error::Validation(format!("a deployment has at most {} skills", limits::MAX_SKILLS)));
                }
                if d.spec.skills.iter().any(|k| k.name == skill.name) {
                    return Err(Error::Conflict(format!("a skill named `{}` exists", skill.name)));
                }
                let mut spec = d.spec.clone();
                spec.skills.push(skill.clone());
                Ok((spec, skill.clone()))
            })
            .await?;
        Ok(Revised { value: s, revision: d.revision })
    }

    /// A skill of the deployment by id.
    pub async fn skill(&self, dep: &DeploymentId, id: &str) -> Result<SkillSpec> {
        let d = self.deployment(dep).await?;
        d.spec.skills.into_iter().find(|s| s.skill_id.as_deref() == Some(id)).ok_or(Error::NotFound("skill"))
    }

    /// Replaces a skill, keeping its id and creation time.
    pub async fn replace_skill(
        &self,
        dep: &DeploymentId,
        id: &str,
        if_match: Option<i64>,
        mut skill: SkillSpec,
    ) -> Result<Revised<SkillSpec>> {
        let old = self.skill(dep, id).await?;
        skill.skill_id = Some(id.to_owned());
        skill.created_at = old.created_at;
        skill.description = None;
        let skill = crate::skills::resolve(self.http(), skill, now()).await.map_err(invalid)?;
        let (d, s) = self
            .edit_spec(dep, if_match, Checked::EditOnly, |d| {
                let mut spec = d.spec.clone();
                let i = spec
                    .skills
                    .iter()
                    .position(|s| s.skill_id.as_deref() == Some(id))
                    .ok_or(Error::NotFound("skill"))?;
                if spec.skills.iter().enumerate().any(|(j, k)| j != i && k.name == skill.name) {
                    return Err(Error::Conflict(format!("a skill named `{}` exists", skill.name)));
                }
                spec.skills[i] = skill.clone();
                Ok((spec, skill.clone()))
            })
            .await?;
        Ok(Revised { value: s, revision: d.revision })
    }

    /// Removes a skill.
    pub async fn remove_skill(&self, dep: &DeploymentId, id: &str, if_match: Option<i64>) -> Result<Revised<()>> {
        let (d, ()) = self
            .edit_spec(dep, if_match, Checked::EditOnly, |d| {
                let mut spec = d.spec.clone();
                let before = spec.skills.len();
                spec.skills.retain(|s| s.skill_id.as_deref() != Some(id));
                if spec.skills.len() == before {
                    return Err(Error::NotFound("skill"));
                }
                Ok((spec, ()))
            })
            .await?;
        Ok(Revised { value: (), revision: d.revision })
    }
}
