//! Mounted memory stores (`memory_mounts`): other deployments' memories this deployment's
//! agent reaches by name with `store_search`, `store_read`, `store_write` and
//! `store_delete` (the last two only on `read_write` mounts), and sees in its system prompt
//! (each store's instructions and its memories most relevant to the run's message). A write
//! is a version of the mounted deployment's memory by the calling run, through the one way a
//! memory changes. Memory runs (observer, dream) are never offered these tools: they tend
//! their own deployment's memory only.

use super::rank::Doc;
use super::tools::{self, Op};
use crate::tools::source::{CallContext, Offer, Ran, ToolRunner, ToolSource};
use crate::tools::{Origin, Tool, ToolOutput};
use crate::{Engine, Error, Result};
use herm_store::DeploymentRecord;
use herm_types::DeploymentId;
use herm_types::config::{DeploymentSpec, MemoryMount, MountAccess};
use serde_json::{Value, json};
use std::sync::Arc;

/// The source of the mounted stores' tools.
pub struct MountTools;

#[async_trait::async_trait]
impl ToolSource for MountTools {
    async fn offer(&self, _: &Engine, _: &DeploymentId, spec: &DeploymentSpec) -> Offer {
        let mounts = &spec.memory_mounts;
        if mounts.is_empty() {
            return Offer::default();
        }
        let writable: Vec<&str> =
            mounts.iter().filter(|m| m.access == MountAccess::ReadWrite).map(|m| m.name.as_str()).collect();
        let all: Vec<&str> = mounts.iter().map(|m| m.name.as_str()).collect();
        let tool = |name: &str, description: &str, op: Op, stores: &[&str]| {
            let mut schema = tools::schema(op);
            schema["properties"]["store"] =
                json!({"type": "string", "enum": stores, "description": "the store's name"});
            if let Some(r) = schema["required"].as_array_mut() {
                r.insert(0, json!("store"));
            }
            let mut t = Tool::new(name, description, schema, Origin::Builtin, Arc::new(Runner(op)));
            t.repeat_safe = matches!(op, Op::Search | Op::Read);
            t
        };
        let mut offered = vec![
            tool(
                "store_search",
                "Search a memory store by words; optionally only under a path prefix.",
                Op::Search,
                &all,
            ),
            tool("store_read", "Read one memory of a memory store, with its version.", Op::Read, &all),
        ];
        if !writable.is_empty() {
            offered.push(tool(
                "store_write",
                "Create or replace a memory in a memory store you may change. Give `expected_version` (from \
                 store_read) to replace only the version you read.",
                Op::Write,
                &writable,
            ));
            offered.push(tool(
                "store_delete",
                "Delete a memory of a memory store you may change (its history is kept).",
                Op::Delete,
                &writable,
            ));
        }
        Offer::fixed(offered)
    }
}

/// What a call may do on a mount, or why not (pure).
fn allowed(mounts: &[MemoryMount], store: &str, op: Op) -> std::result::Result<MemoryMount, String> {
    let m = mounts.iter().find(|m| m.name == store).ok_or_else(|| {
        let names: Vec<&str> = mounts.iter().map(|m| m.name.as_str()).collect();
        format!("no memory store is named `{store}`; the stores are: {}", names.join(", "))
    })?;
    if m.access == MountAccess::ReadOnly && matches!(op, Op::Write | Op::Delete) {
        return Err(format!("the memory store `{store}` is read-only"));
    }
    Ok(m.clone())
}

/// Paths may be given from the store's root (`/style/tabs.md`, as some APIs show them).
fn relative(args: &Value) -> Value {
    let mut a = args.clone();
    for k in ["path", "prefix"] {
        if let Some(p) = a.get(k).and_then(Value::as_str) {
            a[k] = json!(p.trim_start_matches('/'));
        }
    }
    a
}

struct Runner(Op);

#[async_trait::async_trait]
impl ToolRunner for Runner {
    async fn run(&self, cx: &CallContext<'_>, args: &Value) -> Result<Ran> {
        let store = args.get("store").and_then(Value::as_str).unwrap_or_default();
        let done = match allowed(&cx.dep.spec.memory_mounts, store, self.0) {
            Err(why) => Err(Error::Validation(why)),
            Ok(m) => match cx.engine.deployment(&m.deployment_id).await {
                Ok(target) if target.spec.features.memory => {
                    tools::apply(self.0, cx.engine, &target, cx.run, &relative(args)).await
                }
                Ok(_) | Err(Error::NotFound(_)) => {
                    Err(Error::Validation(format!("the memory store `{store}` is no longer available")))
                }
                Err(e) => Err(e),
            },
        };
        Ok(Ran::output(match done {
            Ok(msg) => ToolOutput { content: msg, is_error: false, attachments: Vec::new() },
            Err(e) => ToolOutput::error(e.to_string()),
        }))
    }
}

/// The prompt section of one mounted store (pure): its name, access, instructions, then its
/// memories most relevant to `query` within `budget` tokens.
pub fn section(m: &MemoryMount, docs: &[Doc<'_>], query: &str, budget: u64) -> String {
    let access = match m.access {
        MountAccess::ReadWrite => "read-write: change it with `store_write` and `store_delete`",
        MountAccess::ReadOnly => "read-only",
    };
    let mut s = format!("\n\n## Memory store `{}` ({access})\n", m.name);
    if let Some(i) = m.instructions.as_deref().filter(|i| !i.trim().is_empty()) {
        s.push_str(i.trim_end());
        s.push('\n');
    }
    if docs.is_empty() {
        s.push_str("(The store is empty.)\n");
        return s;
    }
    let search = format!("`store_search` (store `{}`)", m.name);
    s.push_str(&super::load::ranked(docs, query, budget, &search).0);
    s
}

impl Engine {
    /// The mounted stores' prompt sections for a run whose message is `query` (a store that
    /// cannot be read is named as unavailable, and the run goes on).
    pub(crate) async fn mounts_prompt(&self, dep: &DeploymentRecord, query: &str) -> String {
        let mounts = &dep.spec.memory_mounts;
        if mounts.is_empty() {
            return String::new();
        }
        let budget = (self.options().memory.prompt_tokens / mounts.len() as u64).max(200);
        let mut out = String::new();
        for m in mounts {
            match self.store().memory_texts(&m.deployment_id).await {
                Ok(all) => {
                    let docs: Vec<Doc<'_>> = all.iter().map(super::doc).collect();
                    out.push_str(&section(m, &docs, query, budget));
                }
                Err(e) => {
                    tracing::warn!(deployment = %dep.id, store = %m.name, error = %e, "a mounted store could not be read");
                    out.push_str(&format!("\n\n## Memory store `{}`\n(Unavailable right now.)\n", m.name));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(name: &str, access: MountAccess) -> MemoryMount {
        MemoryMount {
            deployment_id: DeploymentId::new(),
            name: name.into(),
            access,
            instructions: Some("Team conventions.".into()),
        }
    }

    #[test]
    fn access_is_checked_per_operation() {
        let mounts = [mount("team", MountAccess::ReadOnly), mount("notes", MountAccess::ReadWrite)];
        let table = [
            ("team", Op::Read, Ok(())),
            ("team", Op::Search, Ok(())),
            ("team", Op::Write, Err("the memory store `team` is read-only")),
            ("team", Op::Delete, Err("the memory store `team` is read-only")),
            ("notes", Op::Write, Ok(())),
            ("notes", Op::Delete, Ok(())),
            ("other", Op::Read, Err("no memory store is named `other`; the stores are: team, notes")),
        ];
        for (store, op, want) in table {
            let got = allowed(&mounts, store, op).map(|m| assert_eq!(m.name, store));
            assert_eq!(got, want.map_err(String::from), "{store}");
        }
    }

    #[test]
    fn a_section_names_the_store_its_access_and_its_most_relevant_memories() {
        let t = chrono::Utc::now();
        let docs = [
            Doc { path: "style.md", content: "tabs, not spaces", updated_at: t },
            Doc { path: "big.md", content: &"b".repeat(8000), updated_at: t },
        ];
        let s = section(&mount("team", MountAccess::ReadOnly), &docs, "style", 200);
        assert!(s.contains("## Memory store `team` (read-only)\nTeam conventions.\n"), "{s}");
        assert!(s.contains("### style.md\ntabs, not spaces"), "{s}");
        assert!(!s.contains("bbbb") && s.contains("`store_search` (store `team`)"), "{s}");
        assert!(!s.contains("this customer"), "{s}");
        let rw = section(&mount("notes", MountAccess::ReadWrite), &[], "x", 200);
        assert!(
            rw.contains("(read-write: change it with `store_write`") && rw.contains("(The store is empty.)"),
            "{rw}"
        );
    }
}
