//! Session resources. A `memory_store` resource mounts the store's herm deployment into the
//! session's deployment (`memory_mounts`): the agent sees the store's instructions and most
//! relevant memories in its system prompt and reaches the rest with the `store_*` tools,
//! changing it only with `read_write` access. Its writes are versions made by the session
//! (`created_by: session_actor`). herm mounts no filesystem for a store, so `mount_path` is
//! absent. A `file` resource copies an uploaded file into the session's workspace at its
//! `mount_path` (under `/workspace`) when the session is made. `github_repository`
//! resources are refused, naming the feature.

use crate::wire::{new_id, string};
use crate::{Facade, Result, invalid, unsupported};
use herm_types::config::{MemoryMount, MountAccess};
use herm_types::*;
use serde_json::{Value, json};

/// Memory stores a session may mount at most (herm's limit on a deployment's mounts).
const MAX_STORES: usize = herm_types::config::limits::MAX_MEMORY_MOUNTS;
/// Files a session mounts at most.
const MAX_FILES: usize = 100;
/// Where the session of a thread is found (a document per thread).
const THREAD_SESSION: &str = "thread_session";

/// A tool-safe name for a store (`[A-Za-z0-9_-]`, at most 64), unique among `taken` (pure).
fn mount_name(store_name: &str, taken: &[String]) -> String {
    let mut base: String = store_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    base.truncate(56);
    if base.is_empty() {
        base = "store".into();
    }
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// What the agent is told about a mounted store (pure): its name and description, then the
/// caller's instructions, within herm's bound on a mount's instructions (the caller's are
/// kept whole; the description gives way).
fn guidance(name: &str, description: &str, instructions: Option<&str>) -> String {
    let max = herm_types::config::limits::MAX_MOUNT_INSTRUCTIONS;
    let tail = instructions.map(|i| format!("\n{i}")).unwrap_or_default();
    let mut head = if description.is_empty() {
        format!("The memory store \"{name}\".")
    } else {
        format!("The memory store \"{name}\": {description}.")
    };
    while head.len() + tail.len() > max && head.pop().is_some() {}
    format!("{head}{tail}").trim_start().to_owned()
}

/// A session's resources: as shown, and the mounts they make.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    pub shown: Vec<Value>,
    pub mounts: Vec<MemoryMount>,
    /// Uploaded files to copy into the workspace: (path under the workspace, file id).
    pub files: Vec<(String, String)>,
}

impl Facade {
    /// Checks and resolves `resources` (stores must exist and not be archived).
    pub(crate) async fn resources(&self, v: Option<&Value>) -> Result<Resolved> {
        let list = match v {
            None | Some(Value::Null) => return Ok(Resolved::default()),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(invalid("`resources` must be an array")),
        };
        let mut out = Resolved::default();
        for (i, r) in list.iter().enumerate() {
            match r.get("type").and_then(Value::as_str) {
                Some("memory_store") => {}
                Some("file") => {
                    let (shown, rel, id) = self.file_resource(r).await?;
                    if out.files.iter().any(|(r, _)| *r == rel) {
                        return Err(invalid(format!("two files are mounted at `{}`", shown["mount_path"])));
                    }
                    out.shown.push(shown);
                    out.files.push((rel, id));
                    continue;
                }
                Some("github_repository") => {
                    return Err(unsupported(
                        "session resources of type `github_repository` are not supported by herm yet (clone it with `bash`)",
                    ));
                }
                _ => {
                    return Err(invalid(format!(
                        "`resources[{i}].type` must be `memory_store`, `file` or `github_repository`"
                    )));
                }
            }
            crate::wire::object(r, &["type", "memory_store_id", "access", "instructions"])?;
            let id = string(r, "memory_store_id", 256, true)?.unwrap_or_default();
            let access = match r.get("access").and_then(|a| if a.is_null() { None } else { Some(a) }) {
                None => MountAccess::ReadWrite,
                Some(a) if a == "read_write" => MountAccess::ReadWrite,
                Some(a) if a == "read_only" => MountAccess::ReadOnly,
                Some(_) => return Err(invalid(format!("`resources[{i}].access` must be `read_write` or `read_only`"))),
            };
            let instructions = string(r, "instructions", 4096, false)?;
            if instructions.as_ref().is_some_and(|i| i.len() > herm_types::config::limits::MAX_MOUNT_INSTRUCTIONS) {
                return Err(invalid("`instructions` is at most 4096 bytes"));
            }
            if out.shown.iter().any(|s| s["memory_store_id"] == id.as_str()) {
                return Err(invalid(format!("memory store `{id}` is attached twice")));
            }
            let (store, dep) =
                self.memory_store_and_deployment(&id).await.map_err(crate::missing(format!("memory store `{id}`")))?;
            if !store["archived_at"].is_null() {
                return Err(invalid(format!("memory store `{id}` is archived")));
            }
            let taken: Vec<String> = out.mounts.iter().map(|m| m.name.clone()).collect();
            let name = mount_name(store["name"].as_str().unwrap_or_default(), &taken);
            let t = self.now();
            out.shown.push(json!({
                "id": new_id("sesrsc_"), "created_at": t, "updated_at": t,
                "type": "memory_store",
                "memory_store_id": id,
                "access": if access == MountAccess::ReadOnly { "read_only" } else { "read_write" },
                "instructions": instructions,
                "name": store["name"],
                "description": store["description"].as_str().unwrap_or_default(),
                "mount_path": null,
            }));
            let about = guidance(
                store["name"].as_str().unwrap_or_default(),
                store["description"].as_str().unwrap_or_default(),
                instructions.as_deref(),
            );
            out.mounts.push(MemoryMount { deployment_id: dep, name, access, instructions: Some(about) });
        }
        if out.files.len() > MAX_FILES {
            return Err(invalid(format!("a session mounts at most {MAX_FILES} files")));
        }
        if out.mounts.len() > MAX_STORES {
            return Err(invalid(format!("a session mounts at most {MAX_STORES} memory stores")));
        }
        Ok(out)
    }

    /// A `file` resource: as shown, its path under the workspace, and its file's id.
    pub(crate) async fn file_resource(&self, r: &Value) -> Result<(Value, String, String)> {
        crate::wire::object(r, &["type", "file_id", "mount_path"])?;
        let id = string(r, "file_id", 256, true)?.unwrap_or_default();
        let f = self.file(&id).await.map_err(crate::missing(format!("file `{id}`")))?;
        let mount = string(r, "mount_path", 1024, false)?;
        let (shown, rel) = crate::files::workspace_path(mount.as_deref(), f["filename"].as_str().unwrap_or("unnamed"))?;
        let t = self.now();
        let v = json!({"id": new_id("sesrsc_"), "type": "file", "file_id": id, "mount_path": shown,
                       "created_at": t, "updated_at": t});
        Ok((v, rel, id))
    }

    /// Remembers that `thread` is session `session`'s (what a memory version written by one
    /// of its runs names).
    pub(crate) async fn remember_thread(&self, thread: &ThreadId, session: &str) -> Result<()> {
        self.put(THREAD_SESSION, thread.as_str(), 1, json!({"session_id": session}), herm_store::History::Drop).await
    }

    pub(crate) async fn forget_thread(&self, thread: &ThreadId) {
        if let Err(e) = self.engine.delete_document(THREAD_SESSION, thread.as_str()).await {
            tracing::warn!(thread = %thread, error = %e, "a session's thread record was not removed");
        }
    }

    /// The session whose run `run` is, if it is one's.
    pub(crate) async fn session_of_run(&self, run: &RunId) -> Option<String> {
        let r = self.engine.run_by_id(run).await.ok()?;
        let d = self.engine.document(THREAD_SESSION, r.thread_id.as_str(), None).await.ok()??;
        d.body["session_id"].as_str().map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guidance_keeps_the_instructions_whole_within_herms_bound() {
        assert_eq!(guidance("notes", "", None), "The memory store \"notes\".");
        assert_eq!(
            guidance("notes", "team notes", Some("Be terse.")),
            "The memory store \"notes\": team notes.\nBe terse."
        );
        let long = "i".repeat(4000);
        let g = guidance("notes", &"d".repeat(2048), Some(&long));
        assert!(g.len() <= 4096 && g.ends_with(&long) && g.starts_with("The memory store"), "{}", g.len());
        let all = "i".repeat(4096);
        assert_eq!(guidance("notes", "d", Some(&all)).len(), 4096);
    }

    #[test]
    fn mount_names_are_tool_safe_and_unique() {
        let table = [
            ("User Preferences", vec![], "user-preferences"),
            ("notes", vec!["notes".to_owned()], "notes-2"),
            ("notes", vec!["notes".to_owned(), "notes-2".to_owned()], "notes-3"),
            ("  ☃ ", vec![], "store"),
            ("a_b.c", vec![], "a_b-c"),
        ];
        for (input, taken, want) in table {
            assert_eq!(mount_name(input, &taken), want, "{input}");
        }
        assert_eq!(mount_name(&"x".repeat(100), &[]).len(), 56);
    }
}
