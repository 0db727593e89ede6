//! Skills: SKILL.md playbooks with YAML front matter (`name`, `description`) and a body the
//! agent loads only when a task needs it (progressive disclosure: the system prompt lists
//! names and descriptions; the `load_skill` tool returns a body).

use herm_types::config::SkillSpec;
use serde::Deserialize;

/// Largest SKILL.md accepted.
pub const MAX_SKILL: usize = 256 * 1024;

#[derive(Deserialize)]
struct FrontMatter {
    name: String,
    description: String,
}

/// A parsed SKILL.md.
#[derive(Clone, Debug, PartialEq)]
pub struct Skill {
    pub name: String,
    pub description: String,
    pub body: String,
}

/// Parses SKILL.md: `---`, YAML with `name` and `description`, `---`, then the body.
pub fn parse(text: &str) -> Result<Skill, String> {
    if text.len() > MAX_SKILL {
        return Err(format!("SKILL.md is larger than {MAX_SKILL} bytes"));
    }
    let t = text.trim_start_matches('\u{feff}');
    let rest = t.strip_prefix("---").ok_or("SKILL.md must start with YAML front matter (`---`)")?;
    let end = rest.find("\n---").ok_or("the front matter is not closed with `---`")?;
    let yaml = &rest[..end];
    let body = rest[end + 4..].trim_start_matches(['-']).trim_start_matches(['\r', '\n']).to_owned();
    let fm: FrontMatter = yaml_serde::from_str(yaml).map_err(|e| format!("invalid front matter: {e}"))?;
    if fm.name.trim().is_empty() || fm.description.trim().is_empty() {
        return Err("front matter `name` and `description` must not be empty".into());
    }
    if fm.description.len() > 2000 {
        return Err("front matter `description` is longer than 2000 bytes".into());
    }
    Ok(Skill { name: fm.name.trim().into(), description: fm.description.trim().into(), body })
}

/// Resolves a skill from its source at create/update: assigns an id, fetches a URL, checks
/// the front matter. `file` skills are checked when a run reads them.
pub async fn resolve(
    http: &reqwest::Client,
    mut s: SkillSpec,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<SkillSpec, String> {
    if s.skill_id.is_none() {
        s.skill_id = Some(format!("skl_{}", herm_types::EventId::new().as_str().trim_start_matches("evt_")));
    }
    s.created_at.get_or_insert(now);
    match s.source.as_str() {
        "inline" => {
            let parsed = parse(s.content.as_deref().unwrap_or_default())?;
            s.description = Some(parsed.description);
        }
        "url" => {
            let url = s.url.clone().unwrap_or_default();
            let resp = http
                .get(&url)
                .timeout(std::time::Duration::from_secs(15))
                .send()
                .await
                .map_err(|_| format!("could not fetch `{url}`"))?;
            if !resp.status().is_success() {
                return Err(format!("fetching `{url}` returned {}", resp.status().as_u16()));
            }
            let bytes = resp.bytes().await.map_err(|_| format!("could not read `{url}`"))?;
            let text = String::from_utf8(bytes.to_vec()).map_err(|_| "the skill is not UTF-8 text".to_owned())?;
            let parsed = parse(&text)?;
            s.description = Some(parsed.description);
            s.content = Some(text);
        }
        "file" => {
            herm_sandbox::files::relative(s.path.as_deref().unwrap_or_default()).map_err(|e| e.to_string())?;
        }
        other => return Err(format!("unknown skill source `{other}`")),
    }
    Ok(s)
}

impl crate::Engine {
    /// The SKILL.md text of a deployment's skill: kept for inline and URL skills, read from
    /// the workspace for file skills.
    pub(crate) async fn skill_text(
        &self,
        dep: &herm_store::DeploymentRecord,
        name: &str,
    ) -> std::result::Result<String, String> {
        let skill = dep
            .spec
            .skills
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| format!("there is no skill named `{name}`"))?;
        if skill.source != "file" {
            return Ok(skill.content.clone().unwrap_or_default());
        }
        let (sb, _in_use) = self.use_sandbox(&dep.id, &dep.spec).await.map_err(|e| e.to_string())?;
        let bytes = herm_sandbox::files::read(sb.as_ref(), &dep.id, skill.path.as_deref().unwrap_or_default())
            .await
            .map_err(|e| format!("skill `{name}`: {e}"))?;
        String::from_utf8(bytes).map_err(|_| format!("skill `{name}` is not UTF-8 text"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_front_matter_and_body() {
        let s = parse("---\nname: refunds\ndescription: How to issue a refund.\n---\n# Steps\n1. Check the order.\n")
            .unwrap();
        assert_eq!((s.name.as_str(), s.description.as_str()), ("refunds", "How to issue a refund."));
        assert_eq!(s.body, "# Steps\n1. Check the order.\n");
        for bad in ["no front matter", "---\nname: x\n", "---\nname: x\n---\nbody", "---\n: : :\n---\n"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
