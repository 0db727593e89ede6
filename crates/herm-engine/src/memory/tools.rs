//! The agent's memory tools (with `features.memory`): `memory_search`, `memory_read`,
//! `memory_write` and `memory_delete`. They are the only tools memory runs (observer, dream)
//! are offered. Writes are the agent's versions, for the calling run, conditional on
//! `expected_version` when the model gives one.

use super::Writer;
use super::rank::{self, Doc};
use crate::tools::source::{CallContext, Offer, Ran, ToolRunner, ToolSource};
use crate::tools::{Origin, Tool, ToolOutput};
use crate::{Engine, Error, Result};
use herm_store::DeploymentRecord;
use herm_types::config::DeploymentSpec;
use herm_types::{DeploymentId, RunId};
use serde_json::{Value, json};
use std::sync::Arc;

/// Matches returned by a search at most.
const MAX_RESULTS: usize = 20;
/// Characters of each match's text shown by a search.
const SNIPPET: usize = 300;

/// The source of the memory tools.
pub struct MemoryTools;

#[derive(Clone, Copy)]
pub(crate) enum Op {
    Search,
    Read,
    Write,
    Delete,
}

#[async_trait::async_trait]
impl ToolSource for MemoryTools {
    async fn offer(&self, _: &Engine, _: &DeploymentId, spec: &DeploymentSpec) -> Offer {
        if !spec.features.memory {
            return Offer::default();
        }
        Offer::fixed(TOOLS.clone())
    }
}

/// The tools, built once (a step's offer clones them instead of building their schemas).
static TOOLS: std::sync::LazyLock<Vec<Tool>> = std::sync::LazyLock::new(|| {
    let tool = |name: &str, description: &str, schema: Value, op: Op, read_only: bool| {
        let mut t = Tool::new(name, description, schema, Origin::Builtin, Arc::new(Runner(op)));
        t.memory_work = true;
        t.repeat_safe = read_only;
        // A search or a read is of the store alone.
        t.inline = read_only;
        t
    };
    vec![
        tool(
            "memory_search",
            "Search this customer's memories (what earlier conversations taught you) by words; optionally only \
             under a path prefix.",
            schema(Op::Search),
            Op::Search,
            true,
        ),
        tool("memory_read", "Read one memory with its version.", schema(Op::Read), Op::Read, true),
        tool(
            "memory_write",
            "Create or replace a memory: one durable observation per file (a preference, a correction, a fact \
             about the customer), short and in your own words. Give `expected_version` (from memory_read) to \
             replace only the version you read.",
            schema(Op::Write),
            Op::Write,
            false,
        ),
        tool(
            "memory_delete",
            "Delete a memory that is wrong or no longer holds (its history is kept).",
            schema(Op::Delete),
            Op::Delete,
            false,
        ),
    ]
});

/// The input schema of an operation's tool.
pub(crate) fn schema(op: Op) -> Value {
    let path = json!({"type": "string", "description": "e.g. preferences/brand-voice.md"});
    match op {
        Op::Search => {
            json!({"type": "object", "properties": {"query": {"type": "string"}, "prefix": {"type": "string"}},
                             "required": ["query"]})
        }
        Op::Read | Op::Delete => json!({"type": "object", "properties": {"path": path}, "required": ["path"]}),
        Op::Write => json!({"type": "object", "properties": {"path": path, "content": {"type": "string"},
                            "expected_version": {"type": "integer", "minimum": 0}}, "required": ["path", "content"]}),
    }
}

struct Runner(Op);

#[async_trait::async_trait]
impl ToolRunner for Runner {
    async fn run(&self, cx: &CallContext<'_>, args: &Value) -> Result<Ran> {
        Ok(Ran::output(match self.apply(cx, args).await {
            Ok(msg) => ToolOutput { content: msg, is_error: false, attachments: Vec::new() },
            Err(e) => ToolOutput::error(e.to_string()),
        }))
    }
}

impl Runner {
    async fn apply(&self, cx: &CallContext<'_>, args: &Value) -> Result<String> {
        apply(self.0, cx.engine, cx.dep, cx.run, args).await
    }
}

/// One memory operation on `target`'s memories, for the calling run.
pub(crate) async fn apply(
    op: Op,
    engine: &Engine,
    target: &DeploymentRecord,
    run: Option<&RunId>,
    args: &Value,
) -> Result<String> {
    let dep = &target.id;
    let s = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or_default();
    let who = Writer::agent(run.cloned());
    match op {
        Op::Search => {
            let prefix = s("prefix");
            let all = engine.store().memory_texts(dep).await?;
            let live: Vec<_> = all.iter().filter(|m| m.path.starts_with(prefix)).collect();
            let docs: Vec<Doc<'_>> = live.iter().map(|m| super::doc(m)).collect();
            let terms = rank::terms(s("query"));
            let hits: Vec<usize> = rank::rank(s("query"), &docs)
                .into_iter()
                .filter(|&i| {
                    let text = format!("{} {}", docs[i].path, docs[i].content).to_lowercase();
                    terms.is_empty() || terms.iter().any(|t| text.contains(t.as_str()))
                })
                .take(MAX_RESULTS)
                .collect();
            if hits.is_empty() {
                return Ok("no memory matches".into());
            }
            Ok(hits
                .iter()
                .map(|&i| {
                    let snippet: String = docs[i].content.chars().take(SNIPPET).collect();
                    format!("{} (version {}):\n{}", docs[i].path, live[i].version, snippet)
                })
                .collect::<Vec<_>>()
                .join("\n\n"))
        }
        Op::Read => {
            let path = herm_types::memory::check_path(s("path")).map_err(Error::Validation)?;
            let m = engine.store().memory_at(dep, &path).await?.ok_or(Error::NotFound("memory"))?;
            Ok(format!("{} (version {}):\n{}", m.path, m.version, m.content.unwrap_or_default()))
        }
        Op::Write => {
            let expected = args.get("expected_version").and_then(Value::as_i64);
            let m = engine.put_memory(target, s("path"), Some(s("content").to_owned()), who, expected).await?;
            Ok(format!("saved {} (version {})", m.path, m.version))
        }
        Op::Delete => {
            let m = engine.put_memory(target, s("path"), None, who, None).await?;
            Ok(format!("deleted {} (version {})", m.path, m.version))
        }
    }
}
