//! Memory in a run's prompt: at the start of each run, the deployment's memories ranked by
//! relevance to the run's message (see `rank.rs`) are placed in the system prompt within a
//! token budget; the rest are counted so the agent knows to search them.

use super::rank::{self, Doc};
use crate::{Engine, Result};
use herm_store::DeploymentRecord;
use std::time::Duration;

/// Memory settings of the engine.
#[derive(Clone, Debug)]
pub struct MemoryOptions {
    /// Tokens of memory placed in a run's system prompt at most.
    pub prompt_tokens: u64,
    /// A thread idle this long after its last run is observed.
    pub observe_after: Duration,
    /// A deployment idle this long with new material dreams (with `features.dreaming`).
    pub dream_after: Duration,
    /// Compaction starts when the next request would pass this share of the model's window.
    pub compact_at: f64,
    /// Share of the window kept verbatim (the most recent turns) by a compaction.
    pub keep_recent: f64,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        Self {
            prompt_tokens: 2000,
            observe_after: Duration::from_secs(120),
            dream_after: Duration::from_secs(6 * 3600),
            compact_at: 0.8,
            keep_recent: 0.3,
        }
    }
}

/// What went into a run's prompt.
#[derive(Debug, Default)]
pub struct Loaded {
    pub section: String,
    pub shown: usize,
    pub total: usize,
}

impl Engine {
    /// The memory section of a run's system prompt (empty with memory off or no memories).
    pub async fn memory_prompt(&self, dep: &DeploymentRecord, query: &str) -> Result<Loaded> {
        if !dep.spec.features.memory {
            return Ok(Loaded::default());
        }
        let all = self.store().memory_texts(&dep.id).await?;
        let docs: Vec<Doc<'_>> = all.iter().map(super::doc).collect();
        Ok(section(&docs, query, self.options().memory.prompt_tokens, self.memory_files_on(dep)))
    }

    /// Whether the deployment's memories are mirrored as workspace files.
    pub(crate) fn memory_files_on(&self, dep: &DeploymentRecord) -> bool {
        self.sandbox().is_some() && dep.spec.sandbox.enabled
    }
}

/// The prompt section for `docs` (pure).
pub fn section(docs: &[Doc<'_>], query: &str, budget: u64, files: bool) -> Loaded {
    let how = if files {
        "They are also files under /workspace/memory: edit a file that is wrong, delete one that no longer holds, \
         add one for anything durable you learn"
    } else {
        "Change them with `memory_write` and `memory_delete`"
    };
    let mut s = format!(
        "\n\n## Memory\nWhat you learned in earlier conversations with this customer (most relevant first). Follow \
         their preferences and corrections. {how} (preferences, corrections, facts about the customer).\n"
    );
    if docs.is_empty() {
        s.push_str("(No memories yet.)\n");
        return Loaded { section: s, shown: 0, total: 0 };
    }
    let (body, shown) = ranked(docs, query, budget, "`memory_search`");
    s.push_str(&body);
    Loaded { section: s, shown, total: docs.len() }
}

/// The memories most relevant to `query` within `budget` tokens, rendered `### path` then
/// text, and a line saying how many more `search` finds (pure); with how many are shown.
pub fn ranked(docs: &[Doc<'_>], query: &str, budget: u64, search: &str) -> (String, usize) {
    let render = |d: &Doc<'_>| format!("\n### {}\n{}\n", d.path, d.content.trim_end());
    let chosen = rank::pack(&rank::rank(query, docs), |i| rank::tokens(&render(&docs[i])), budget);
    let mut s: String = chosen.iter().map(|&i| render(&docs[i])).collect();
    let rest = docs.len() - chosen.len();
    if rest > 0 {
        s.push_str(&format!("\n({rest} more memories are not shown: find them with {search}.)\n"));
    }
    (s, chosen.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_bounds_what_is_shown() {
        let t = chrono::Utc::now();
        let docs = [
            Doc { path: "a.md", content: "alpha fact", updated_at: t },
            Doc { path: "b.md", content: &"b".repeat(4000), updated_at: t },
        ];
        let l = section(&docs, "alpha", 100, true);
        assert_eq!((l.shown, l.total), (1, 2));
        assert!(l.section.contains("### a.md\nalpha fact"));
        assert!(l.section.contains("1 more memories"));
        assert!(l.section.contains("/workspace/memory"));
        let none = section(&[], "x", 100, false);
        assert!(none.section.contains("No memories yet") && none.section.contains("memory_write"));
    }
}
