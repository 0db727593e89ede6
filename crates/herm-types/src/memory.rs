//! Observational memory: path-addressed text documents of a deployment, every change a
//! version, and dreams (consolidations) with the changes they made. The wire shapes of the
//! Memories and Dreams APIs and the rules a memory path keeps.

use crate::ids::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest memory content accepted (bytes).
pub const MAX_CONTENT: usize = 64 * 1024;
/// Longest memory path accepted (bytes).
pub const MAX_PATH: usize = 256;
/// The directory of the workspace the memory files live in.
pub const MEMORY_DIR: &str = "memory";

/// Who wrote a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemorySource {
    /// The agent (its memory tools, its file tools, an observer or a dream run).
    Agent,
    /// An operator through the Memories API.
    Api,
}

impl MemorySource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Api => "api",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "agent" => Some(Self::Agent),
            "api" => Some(Self::Api),
            _ => None,
        }
    }
}

/// What a version did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemoryOperation {
    Created,
    Modified,
    Deleted,
}

impl MemoryOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Modified => "modified",
            Self::Deleted => "deleted",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "created" => Some(Self::Created),
            "modified" => Some(Self::Modified),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// A memory as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Memory {
    pub memory_id: MemoryId,
    /// Relative to the deployment's memory directory (`/workspace/memory`).
    pub path: String,
    pub content: String,
    /// Who wrote the current version.
    pub source: MemorySource,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One version of a memory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemoryVersion {
    pub version: i64,
    pub operation: MemoryOperation,
    pub path: String,
    /// `null` for a deletion or a redacted version.
    pub content: Option<String>,
    pub source: MemorySource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_at: Option<DateTime<Utc>>,
}

/// `GET …/memories/{memory_id}/versions`: oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemoryVersionList {
    pub data: Vec<MemoryVersion>,
}

/// `POST …/memories`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryCreate {
    pub content: String,
    /// Where the memory lives (default `notes/<memory_id>.md`).
    #[serde(default)]
    pub path: Option<String>,
}

/// `PATCH …/memories/{memory_id}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryUpdate {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
}

/// Where a dream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DreamStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// One change a dream made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DreamChange {
    pub memory_id: MemoryId,
    pub path: String,
    pub operation: MemoryOperation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_version: Option<i64>,
}

/// A dream as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Dream {
    pub dream_id: DreamId,
    pub status: DreamStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    /// `api` (an operator asked) or `idle` (the deployment was idle with new material).
    pub reason: String,
    pub created_at: DateTime<Utc>,
    /// With `GET …/dreams/{dream_id}`: what the dream changed, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<DreamChange>>,
}

/// Checks a memory path and returns it normalised (no leading `./`, no `memory/` prefix when
/// given as a workspace path). Segments are letters, digits, `.`, `_` and `-`; none is empty,
/// `.` or `..`; at most 8 of them.
pub fn check_path(path: &str) -> Result<String, String> {
    let p = path.trim();
    let p = p.strip_prefix("/workspace/").unwrap_or(p);
    let p = p.strip_prefix("./").unwrap_or(p);
    let p = p.strip_prefix("memory/").unwrap_or(p);
    if p.is_empty() || p.len() > MAX_PATH {
        return Err(format!("a memory path is 1 to {MAX_PATH} bytes"));
    }
    let segments: Vec<&str> = p.split('/').collect();
    if segments.len() > 8 {
        return Err("a memory path has at most 8 segments".into());
    }
    for s in &segments {
        if s.is_empty() || *s == "." || *s == ".." {
            return Err(format!("`{p}` has an empty, `.` or `..` segment"));
        }
        if s.starts_with('.') {
            return Err(format!("`{p}`: a segment may not start with `.`"));
        }
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
            return Err(format!("`{p}`: segments are letters, digits, `.`, `_` and `-`"));
        }
    }
    Ok(p.to_owned())
}

/// Checks memory content: at most [`MAX_CONTENT`] bytes, no NUL.
pub fn check_content(content: &str) -> Result<(), String> {
    if content.len() > MAX_CONTENT {
        return Err(format!("memory content is at most {MAX_CONTENT} bytes"));
    }
    if content.contains('\0') {
        return Err("memory content may not contain NUL".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked_and_normalised() {
        for (given, want) in [
            ("preferences/brand-voice.md", "preferences/brand-voice.md"),
            ("/workspace/memory/a/b.md", "a/b.md"),
            ("memory/x.md", "x.md"),
            ("./notes/n_1.txt", "notes/n_1.txt"),
        ] {
            assert_eq!(check_path(given).unwrap(), want, "{given}");
        }
        for bad in ["", "a//b", "../x", "a/../b", ".hidden", "a b.md", "a/b/c/d/e/f/g/h/i.md", "é.md"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        assert!(check_path(&"a".repeat(300)).is_err());
        assert!(check_content("ok").is_ok());
        assert!(check_content("a\0b").is_err());
    }
}
