//! What a spec must satisfy beyond its own shape (`DeploymentSpec::validate`): the
//! references it makes resolve (secrets, the model's provider), its skills can be fetched and
//! parsed, and every field it sets is one this server acts on.

use crate::tools::http::secrets_used;
use crate::{Engine, Error, Result};
use herm_types::config::{DeploymentSpec, FieldError, SkillSpec};
use herm_types::*;
use std::collections::BTreeSet;

/// Fields this server accepts but cannot act on yet, at values other than their defaults:
/// refused, never silently ignored. Each disappears from here when its capability lands.
/// `backend` is this node's sandbox backend, if it has one.
pub(crate) fn unsupported(spec: &DeploymentSpec, backend: Option<&str>) -> Vec<FieldError> {
    let mut out = Vec::new();
    if let Some(t) = spec.sandbox.kind.as_deref()
        && Some(t) != backend
    {
        let here = backend.map(|b| format!("the `{b}` sandbox")).unwrap_or_else(|| "no sandbox".into());
        out.push(FieldError::new("sandbox.type", format!("this server runs {here}; `{t}` is not available here")));
    }
    if !spec.sandbox.persistent_filesystem {
        out.push(FieldError::new(
            "sandbox.persistent_filesystem",
            "a workspace that is discarded when the sandbox stops is not supported yet",
        ));
    }
    let f = &spec.features;
    if f.dreaming && !f.memory {
        out.push(FieldError::new("features.dreaming", "dreaming consolidates memory: it needs `features.memory`"));
    }
    out
}

impl Engine {
    /// Everything about a spec that needs more than the spec: 400 for bad fields, 422 for
    /// unsupported ones and for references that do not resolve.
    pub(crate) async fn check_spec(&self, spec: &DeploymentSpec) -> Result<()> {
        let errs = spec.validate();
        if !errs.is_empty() {
            return Err(Error::Invalid(errs));
        }
        let unsupported = unsupported(spec, self.sandbox().map(|s| s.backend()));
        if !unsupported.is_empty() {
            return Err(Error::Unsupported(unsupported));
        }
        if let Some(m) = &spec.model {
            let provider = m.split('/').next().unwrap_or_default();
            if !self.providers().exists(provider).await? {
                return Err(Error::Invalid(vec![FieldError::new(
                    "model",
                    format!("provider `{provider}` is not configured"),
                )]));
            }
        }
        let mut unmounted = Vec::new();
        for (i, m) in spec.memory_mounts.iter().enumerate() {
            let memory_on =
                self.store().get_deployment(&m.deployment_id).await?.is_some_and(|d| d.spec.features.memory);
            if !memory_on {
                unmounted.push(FieldError::new(
                    format!("memory_mounts[{i}].deployment_id"),
                    format!("`{}` is not a deployment with `features.memory`", m.deployment_id),
                ));
            }
        }
        if !unmounted.is_empty() {
            return Err(Error::Invalid(unmounted));
        }
        let mut bad = Vec::new();
        for (name, r) in &spec.secrets {
            if !self.secret_exists(r).await? {
                bad.push(FieldError::new(format!("secrets.{name}"), format!("`{r}` is not a stored secret")));
            }
        }
        for (i, t) in spec.http_tools.iter().enumerate() {
            for n in secrets_used(t) {
                if !spec.secrets.contains_key(&n) {
                    bad.push(FieldError::new(
                        format!("http_tools[{i}]"),
                        format!("uses `{{{{secrets.{n}}}}}` but the deployment maps no secret `{n}`"),
                    ));
                }
            }
        }
        if bad.is_empty() { Ok(()) } else { Err(Error::InvalidSecretRef(bad)) }
    }

    /// Whether `reference` names a stored (not deleted) secret.
    pub(crate) async fn secret_exists(&self, reference: &str) -> Result<bool> {
        Ok(match SecretId::parse(reference) {
            Ok(sid) => self.store().get_secret(&sid).await?.is_some(),
            Err(_) => false,
        })
    }

    /// Resolves every skill (ids, URL fetches, front matter); a bad one is
    /// [`Error::InvalidSkill`].
    pub(crate) async fn resolve_skills(&self, skills: &mut [SkillSpec]) -> Result<()> {
        let mut names = BTreeSet::new();
        for (i, s) in skills.iter_mut().enumerate() {
            if !names.insert(s.name.clone()) {
                return Err(Error::InvalidSkill(FieldError::new(format!("skills[{i}].name"), "duplicate skill name")));
            }
            *s = crate::skills::resolve(self.http(), s.clone(), now())
                .await
                .map_err(|e| Error::InvalidSkill(FieldError::new(format!("skills[{i}]"), e)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> DeploymentSpec {
        let mut base = serde_json::json!({"customer_id": "c", "name": "n", "system_prompt": "s"});
        if let (Some(b), Some(extra)) = (base.as_object_mut(), v.as_object()) {
            b.extend(extra.clone());
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn defaults_are_supported_and_each_unbuilt_capability_is_named() {
        let cases = [
            (serde_json::json!({}), vec![]),
            (serde_json::json!({"features": {"memory": true, "dreaming": false, "automations": true}}), vec![]),
            (serde_json::json!({"features": {"dreaming": true}}), vec![]),
            (serde_json::json!({"features": {"memory": false}}), vec![]),
            (serde_json::json!({"features": {"memory": false, "dreaming": true}}), vec!["features.dreaming"]),
            (serde_json::json!({"features": {"filesystem_webhooks": true, "steering": false}}), vec![]),
        ];
        for (v, want) in cases {
            let got: Vec<String> = unsupported(&spec(v.clone()), Some("docker")).into_iter().map(|e| e.path).collect();
            assert_eq!(got, want, "{v}");
        }
        // The sandbox type must be this node's backend; a workspace is always persistent.
        let typed = spec(serde_json::json!({"sandbox": {"type": "namespaces"}}));
        assert!(unsupported(&typed, Some("namespaces")).is_empty());
        let paths = |s: &DeploymentSpec, b| unsupported(s, b).into_iter().map(|e| e.path).collect::<Vec<_>>();
        assert_eq!(paths(&typed, Some("docker")), vec!["sandbox.type"]);
        assert_eq!(paths(&typed, None), vec!["sandbox.type"]);
        let ephemeral = spec(serde_json::json!({"sandbox": {"persistent_filesystem": false}}));
        assert_eq!(paths(&ephemeral, Some("docker")), vec!["sandbox.persistent_filesystem"]);
    }
}
