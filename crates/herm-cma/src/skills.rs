//! Uploaded skills: a skill is a directory of files with a `SKILL.md` at its root, kept by
//! the facade as versions (each a document holding its files). An agent names a skill by id
//! (and a version, or the latest); a session's deployment then carries the version's
//! SKILL.md as a herm skill (listed in the system prompt, its body loaded with `load_skill`),
//! and the skill's other files are written into the session's workspace under
//! `skills/<name>/`, where its instructions can use them. `content` downloads a version as a
//! zip archive. Anthropic's prebuilt skills are not available.

use crate::wire::{self, new_id};
use crate::{Error, Facade, PageQuery, Result, invalid, unsupported};
use base64::Engine as _;
use herm_store::History;
use herm_types::config::SkillSpec;
use serde_json::{Value, json};
use std::io::Write;

pub(crate) const KIND: &str = "skill";
const VERSION: &str = "skill_version";
/// An upload's files at most, and their bytes together.
pub const MAX_FILES: usize = 200;
pub const MAX_BYTES: usize = 8 * 1024 * 1024;
/// Where a session's skill files are written, under the workspace.
pub const WORKSPACE_DIR: &str = "skills";

/// One uploaded file: its path (`my-skill/SKILL.md`) and bytes.
#[derive(Clone, Debug)]
pub struct Upload {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// A checked upload: the skill's directory, its SKILL.md's name and description, the files
/// relative to the directory.
#[derive(Debug)]
struct Checked {
    name: String,
    description: String,
    body: String,
    files: Vec<(String, Vec<u8>)>,
}

/// A skill name: kebab-case, 1-64 (pure).
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !n.starts_with('-')
        && !n.ends_with('-')
}

/// Checks an upload's shape (pure): one top-level directory holding SKILL.md, safe paths,
/// within the limits; the front matter's `name` is the skill's name.
fn check(files: Vec<Upload>) -> Result<Checked> {
    if files.is_empty() {
        return Err(invalid("`files` must hold the skill's files, with a SKILL.md at the root of its directory"));
    }
    if files.len() > MAX_FILES {
        return Err(invalid(format!("a skill holds at most {MAX_FILES} files")));
    }
    if files.iter().map(|f| f.bytes.len()).sum::<usize>() > MAX_BYTES {
        return Err(invalid(format!("a skill's files are at most {MAX_BYTES} bytes together")));
    }
    let mut dir: Option<String> = None;
    let mut out = Vec::new();
    for f in files {
        let p = f.path.replace('\\', "/");
        let (top, rest) = p.split_once('/').ok_or_else(|| {
            invalid(format!("`{}`: files must be inside the skill's directory (`my-skill/SKILL.md`)", f.path))
        })?;
        let parts: Vec<&str> = p.split('/').collect();
        if parts.iter().any(|s| s.is_empty() || *s == "." || *s == "..") || p.len() > 512 {
            return Err(invalid(format!("`{}` is not a relative path inside the skill's directory", f.path)));
        }
        match &dir {
            None => dir = Some(top.to_owned()),
            Some(d) if d == top => {}
            Some(d) => return Err(invalid(format!("all files must be in one top-level directory (`{d}/`)"))),
        }
        if out.iter().any(|(r, _): &(String, Vec<u8>)| r == rest) {
            return Err(invalid(format!("`{}` is uploaded twice", f.path)));
        }
        out.push((rest.to_owned(), f.bytes));
    }
    let dir = dir.unwrap_or_default();
    let skill_md = out
        .iter()
        .find(|(r, _)| r == "SKILL.md")
        .ok_or_else(|| invalid(format!("the skill has no `{dir}/SKILL.md`")))?;
    let text = std::str::from_utf8(&skill_md.1).map_err(|_| invalid("SKILL.md is not UTF-8"))?;
    let parsed = herm_engine::skills::parse(text).map_err(|e| invalid(format!("SKILL.md: {e}")))?;
    if !valid_name(&parsed.name) {
        return Err(invalid("SKILL.md's `name` must be kebab-case: lowercase letters, digits and `-`, 1-64"));
    }
    Ok(Checked { name: parsed.name, description: parsed.description, body: text.to_owned(), files: out })
}

/// A version id: microseconds since the epoch, after `last` (ids sort as they were made).
fn next_version(now: chrono::DateTime<chrono::Utc>, last: Option<&str>) -> String {
    let t = now.timestamp_micros();
    let after = last.and_then(|l| l.parse::<i64>().ok()).map_or(t, |l| (l + 1).max(t));
    format!("{after:016}")
}

fn version_key(skill: &str, version: &str) -> String {
    format!("{skill}:{version}")
}

fn shown_skill(mut s: Value) -> Value {
    if let Some(m) = s.as_object_mut() {
        m.remove("_name");
    }
    s
}

fn shown_version(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.remove("_files");
        m.remove("_body");
    }
    v
}

/// A skill version as a session's deployment needs it.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub spec: SkillSpec,
    /// Files other than SKILL.md, relative to the skill's directory.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Facade {
    pub async fn create_skill(&self, display_name: Option<String>, files: Vec<Upload>) -> Result<Value> {
        let c = check(files)?;
        if display_name.as_ref().is_some_and(|d| d.chars().count() > 255 || d.contains('\n')) {
            return Err(invalid("`display_name` is one line of at most 255 characters"));
        }
        let id = new_id("skill_");
        let version = next_version(self.engine.now(), None);
        self.put_version(&id, &version, &c).await?;
        let t = self.now();
        let s = json!({
            "id": id, "type": "skill", "display_name": display_name.unwrap_or_else(|| c.name.clone()),
            "latest_version_id": version, "source": "custom", "created_at": t, "updated_at": t, "_name": c.name,
        });
        if let Err(e) = self.put(KIND, &id, 1, s.clone(), History::Drop).await {
            let _ = self.engine.delete_document(VERSION, &version_key(&id, &version)).await;
            return Err(e);
        }
        Ok(shown_skill(s))
    }

    async fn put_version(&self, skill: &str, version: &str, c: &Checked) -> Result<Value> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let files: Vec<Value> = c.files.iter().map(|(p, b)| json!({"path": p, "b64": b64.encode(b)})).collect();
        let v = json!({
            "id": version, "type": "skill_version", "skill_id": skill, "name": c.name,
            "description": c.description, "created_at": self.now(), "_body": c.body, "_files": files,
        });
        self.put(VERSION, &version_key(skill, version), 1, v.clone(), History::Drop).await?;
        Ok(shown_version(v))
    }

    pub async fn skill(&self, id: &str) -> Result<Value> {
        Ok(shown_skill(self.doc(KIND, id, None).await?.body))
    }

    /// `source=custom` (or none) lists the uploaded skills; herm has no others.
    pub async fn list_skills(&self, q: &PageQuery, source: Option<&str>) -> Result<wire::Page> {
        match source {
            None | Some("custom") => {}
            Some("anthropic" | "anthropic_example" | "plugin") => {
                return Ok(wire::Page { data: vec![], next_page: None });
            }
            Some(_) => return Err(invalid("`source` must be `custom`, `anthropic`, `anthropic_example` or `plugin`")),
        }
        let (data, next_page) = self.doc_page(KIND, q, true, |_| true).await?;
        Ok(wire::Page { data: data.into_iter().map(shown_skill).collect(), next_page })
    }

    /// A new version: its SKILL.md must keep the skill's name.
    pub async fn create_skill_version(&self, skill: &str, files: Vec<Upload>) -> Result<Value> {
        let c = check(files)?;
        wire::again_on_lost_race(|| async {
            let cur = self.doc(KIND, skill, None).await?;
            if cur.body["_name"] != c.name.as_str() {
                return Err(invalid(format!(
                    "SKILL.md's `name` is `{}`, but this skill is `{}`: every version keeps the skill's name",
                    c.name,
                    cur.body["_name"].as_str().unwrap_or_default()
                )));
            }
            let version = next_version(self.engine.now(), cur.body["latest_version_id"].as_str());
            let shown = self.put_version(skill, &version, &c).await?;
            let mut s = cur.body.clone();
            s["latest_version_id"] = json!(version);
            s["updated_at"] = json!(self.now());
            if let Err(e) = self.put(KIND, skill, cur.version + 1, s, History::Drop).await {
                let _ = self.engine.delete_document(VERSION, &version_key(skill, &version)).await;
                return Err(e);
            }
            Ok(shown)
        })
        .await
    }

    /// The skill's versions, newest first.
    async fn versions(&self, skill: &str) -> Result<Vec<Value>> {
        self.doc(KIND, skill, None).await?;
        let prefix = format!("{skill}:");
        let mut after = Some(prefix.clone());
        let mut out = Vec::new();
        loop {
            let page = self.engine.documents(VERSION, after.clone(), false, 100).await?;
            let n = page.len();
            for d in page {
                if !d.id.starts_with(&prefix) {
                    out.reverse();
                    return Ok(out);
                }
                after = Some(d.id.clone());
                out.push(d.body);
            }
            if n < 100 {
                out.reverse();
                return Ok(out);
            }
        }
    }

    pub async fn list_skill_versions(&self, skill: &str, q: &PageQuery) -> Result<wire::Page> {
        let all = self.versions(skill).await?.into_iter().map(shown_version).collect();
        wire::page_after_id(all, q)
    }

    async fn version_doc(&self, skill: &str, version: &str) -> Result<Value> {
        let v = if version == "latest" {
            self.doc(KIND, skill, None).await?.body["latest_version_id"].as_str().unwrap_or_default().to_owned()
        } else {
            self.doc(KIND, skill, None).await?;
            version.to_owned()
        };
        let d = self.engine.document(VERSION, &version_key(skill, &v), None).await?;
        Ok(d.ok_or(Error::NotFound(VERSION))?.body)
    }

    pub async fn skill_version(&self, skill: &str, version: &str) -> Result<Value> {
        Ok(shown_version(self.version_doc(skill, version).await?))
    }

    /// Deletes a version; the latest becomes the one before it. A skill's only version is
    /// deleted with the skill.
    pub async fn delete_skill_version(&self, skill: &str, version: &str) -> Result<Value> {
        let all = self.versions(skill).await?;
        if !all.iter().any(|v| v["id"] == version) {
            return Err(Error::NotFound(VERSION));
        }
        if all.len() == 1 {
            return Err(Error::Conflict("this is the skill's only version: delete the skill instead".into()));
        }
        let cur = self.doc(KIND, skill, None).await?;
        if cur.body["latest_version_id"] == version {
            let previous = all.iter().find(|v| v["id"] != version).map(|v| v["id"].clone()).unwrap_or(Value::Null);
            let mut s = cur.body.clone();
            s["latest_version_id"] = previous;
            s["updated_at"] = json!(self.now());
            self.put(KIND, skill, cur.version + 1, s, History::Drop).await?;
        }
        self.engine.delete_document(VERSION, &version_key(skill, version)).await?;
        Ok(json!({"id": version, "type": "skill_version_deleted"}))
    }

    /// Deletes the skill with all its versions (sessions made before keep their copy).
    pub async fn delete_skill(&self, skill: &str) -> Result<Value> {
        for v in self.versions(skill).await? {
            self.engine.delete_document(VERSION, &version_key(skill, v["id"].as_str().unwrap_or_default())).await?;
        }
        self.engine.delete_document(KIND, skill).await?;
        Ok(json!({"id": skill, "type": "skill_deleted"}))
    }

    /// A version's files as a zip archive under the skill's name.
    pub async fn skill_version_content(&self, skill: &str, version: &str) -> Result<Vec<u8>> {
        let v = self.version_doc(skill, version).await?;
        let name = v["name"].as_str().unwrap_or("skill");
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        let fail = |e: &dyn std::fmt::Display| Error::Internal(format!("a skill archive could not be made: {e}"));
        for (path, bytes) in files_of(&v) {
            zip.start_file(format!("{name}/{path}"), opts).map_err(|e| fail(&e))?;
            zip.write_all(&bytes).map_err(|e| fail(&e))?;
        }
        Ok(zip.finish().map_err(|e| fail(&e))?.into_inner())
    }

    /// Checks an agent's `skills` (custom ones must exist, at the version named) and gives
    /// them in CMA's shape.
    pub(crate) async fn agent_skills(&self, v: Option<&Value>) -> Result<Vec<Value>> {
        let list = match v {
            None | Some(Value::Null) => return Ok(vec![]),
            Some(Value::Array(a)) if a.len() <= herm_types::config::limits::MAX_SKILLS => a,
            Some(_) => return Err(invalid("`skills` must be an array of at most 20 skills")),
        };
        let mut out = Vec::new();
        for s in list {
            crate::wire::object(s, &["type", "skill_id", "version"])?;
            match s.get("type").and_then(Value::as_str) {
                Some("custom") => {}
                Some("anthropic") => {
                    return Err(unsupported(
                        "Anthropic's prebuilt skills are not available on herm: upload the skill (`POST /v1/skills`) and name it as a `custom` skill",
                    ));
                }
                _ => return Err(invalid("a skill's `type` must be `custom` or `anthropic`")),
            }
            let id = s.get("skill_id").and_then(Value::as_str).ok_or_else(|| invalid("`skill_id` is required"))?;
            let version = match s.get("version") {
                None | Some(Value::Null) => None,
                Some(Value::String(v)) => Some(v.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(_) => return Err(invalid("a skill's `version` must be a string")),
            };
            self.version_doc(id, version.as_deref().unwrap_or("latest")).await.map_err(|e| match e {
                Error::NotFound(_) => {
                    invalid(format!("skill `{id}` (version {}) not found", version.as_deref().unwrap_or("latest")))
                }
                e => e,
            })?;
            if out.iter().any(|o: &Value| o["skill_id"] == id) {
                return Err(invalid(format!("skill `{id}` is named twice")));
            }
            out.push(json!({"type": "custom", "skill_id": id, "version": version}));
        }
        Ok(out)
    }

    /// The versions an agent's skills name now (the latest where none is named).
    pub(crate) async fn resolve_skills(&self, skills: &Value) -> Result<Vec<Resolved>> {
        let mut out = Vec::new();
        for s in skills.as_array().into_iter().flatten() {
            let id = s["skill_id"].as_str().unwrap_or_default();
            let v = self.version_doc(id, s["version"].as_str().unwrap_or("latest")).await.map_err(|e| match e {
                Error::NotFound(_) => invalid(format!("skill `{id}` no longer exists (skill_not_found)")),
                e => e,
            })?;
            let name = v["name"].as_str().unwrap_or_default().to_owned();
            let files: Vec<(String, Vec<u8>)> = files_of(&v).into_iter().filter(|(p, _)| p != "SKILL.md").collect();
            let mut body = v["_body"].as_str().unwrap_or_default().to_owned();
            if !files.is_empty() {
                body.push_str(&format!(
                    "\n\n(This skill's files are in /workspace/{WORKSPACE_DIR}/{name}/: {}.)\n",
                    files.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>().join(", ")
                ));
            }
            out.push(Resolved {
                spec: SkillSpec {
                    skill_id: Some(format!("{id}@{}", v["id"].as_str().unwrap_or_default())),
                    name,
                    source: "inline".into(),
                    description: v["description"].as_str().map(str::to_owned),
                    created_at: None,
                    content: Some(body),
                    url: None,
                    path: None,
                },
                files,
            });
        }
        Ok(out)
    }
}

fn files_of(v: &Value) -> Vec<(String, Vec<u8>)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    v["_files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| Some((f["path"].as_str()?.to_owned(), b64.decode(f["b64"].as_str()?).ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(path: &str, text: &str) -> Upload {
        Upload { path: path.into(), bytes: text.as_bytes().to_vec() }
    }

    const MD: &str = "---\nname: csv-report\ndescription: Make a CSV report.\n---\nRun scripts/report.py.\n";

    #[test]
    fn an_upload_is_one_directory_with_skill_md_and_safe_paths() {
        let c = check(vec![up("csv-report/SKILL.md", MD), up("csv-report/scripts/report.py", "print(1)")]).unwrap();
        assert_eq!((c.name.as_str(), c.description.as_str()), ("csv-report", "Make a CSV report."));
        assert_eq!(c.files.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), ["SKILL.md", "scripts/report.py"]);
        let refused = [
            (vec![], "must hold"),
            (vec![up("SKILL.md", MD)], "inside the skill's directory"),
            (vec![up("a/SKILL.md", MD), up("b/x.py", "")], "one top-level directory"),
            (vec![up("a/SKILL.md", MD), up("a/../x.py", "")], "not a relative path"),
            (vec![up("a/SKILL.md", MD), up("a/SKILL.md", MD)], "twice"),
            (vec![up("a/README.md", "x")], "no `a/SKILL.md`"),
            (vec![up("a/SKILL.md", "no front matter")], "SKILL.md:"),
            (vec![up("a/SKILL.md", &MD.replace("csv-report", "CSV Report"))], "kebab-case"),
        ];
        for (files, words) in refused {
            let e = check(files).unwrap_err().to_string();
            assert!(e.contains(words), "{e} lacks {words}");
        }
        let big = vec![up("a/SKILL.md", MD), Upload { path: "a/x.bin".into(), bytes: vec![0; MAX_BYTES] }];
        assert!(check(big).unwrap_err().to_string().contains("bytes"));
    }

    #[test]
    fn version_ids_grow_even_within_one_microsecond() {
        let t = chrono::DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap();
        assert_eq!(next_version(t, None), "1700000000000000");
        assert_eq!(next_version(t, Some("1700000000000000")), "1700000000000001");
        assert_eq!(next_version(t, Some("1600000000000000")), "1700000000000000");
        assert!(valid_name("a-1") && !valid_name("-a") && !valid_name("A") && !valid_name(""));
    }
}
