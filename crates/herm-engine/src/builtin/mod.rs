//! The built-in sandbox tools: `shell`, `read_file`, `write_file`, `edit_file`, `list_files`,
//! `search_files`, and `view_image` (see [`view`]). They run inside the deployment's sandbox; file paths are confined to
//! `/workspace` by [`herm_sandbox::files`]. Shell output streams live as `tool_output`
//! frames; what the model gets is capped, and the full output is kept in a workspace file.

mod source;
mod view;

pub use source::SandboxTools;

use crate::tools::ToolOutput;
use herm_sandbox::files::{self, sh_quote};
use herm_sandbox::{ExecRequest, Sandbox, Stream};
use herm_types::DeploymentId;
use herm_types::event::FileChange;
use serde_json::{Value, json};
use std::time::Duration;

/// Output the model sees from one call; the rest stays in a file.
pub(crate) const CAP: usize = 16 * 1024;
/// Longest a shell call may ask for.
const MAX_TIMEOUT: u64 = 3600;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    Shell,
    ReadFile,
    WriteFile,
    EditFile,
    ListFiles,
    SearchFiles,
}

impl Builtin {
    pub const ALL: [Builtin; 6] = [
        Builtin::Shell,
        Builtin::ReadFile,
        Builtin::WriteFile,
        Builtin::EditFile,
        Builtin::ListFiles,
        Builtin::SearchFiles,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Shell => "shell",
            Self::ReadFile => "read_file",
            Self::WriteFile => "write_file",
            Self::EditFile => "edit_file",
            Self::ListFiles => "list_files",
            Self::SearchFiles => "search_files",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::Shell => {
                "Run a bash command in your sandbox (a Debian machine with python3, pip, curl, git, jq). \
                           The working directory is /workspace, which persists. Returns the exit code and output."
            }
            Self::ReadFile => "Read a text file in /workspace.",
            Self::WriteFile => "Create or overwrite a file in /workspace (parent directories are created).",
            Self::EditFile => {
                "Replace an exact string in a file in /workspace. The string must occur once unless replace_all is true."
            }
            Self::ListFiles => "List a directory in /workspace.",
            Self::SearchFiles => "Search file contents under a directory in /workspace (grep regular expression).",
        }
    }

    pub fn schema(self) -> Value {
        match self {
            Self::Shell => json!({"type": "object", "properties": {
                "command": {"type": "string"},
                "timeout_secs": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT},
                "cwd": {"type": "string", "description": "Working directory inside /workspace."}
            }, "required": ["command"]}),
            Self::ReadFile => {
                json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]})
            }
            Self::WriteFile => {
                json!({"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}, "required": ["path", "content"]})
            }
            Self::EditFile => json!({"type": "object", "properties": {
                "path": {"type": "string"}, "old_string": {"type": "string"}, "new_string": {"type": "string"},
                "replace_all": {"type": "boolean"}
            }, "required": ["path", "old_string", "new_string"]}),
            Self::ListFiles => json!({"type": "object", "properties": {"path": {"type": "string"}}}),
            Self::SearchFiles => {
                json!({"type": "object", "properties": {"pattern": {"type": "string"}, "path": {"type": "string"}}, "required": ["pattern"]})
            }
        }
    }

    /// Reads only: safe to run again after a crash left its outcome unknown.
    pub fn repeat_safe(self) -> bool {
        matches!(self, Self::ReadFile | Self::ListFiles | Self::SearchFiles)
    }
}

fn arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, ToolOutput> {
    args.get(name).and_then(Value::as_str).ok_or_else(|| ToolOutput::error(format!("`{name}` (a string) is required")))
}

fn err(e: herm_sandbox::Error) -> ToolOutput {
    ToolOutput::error(e.to_string())
}

/// A workspace change: (`created` | `modified` | `deleted`, path relative to /workspace).
pub type Change = (FileChange, String);

/// Workspaces with more files than this are not diffed around shell commands.
/// Keeps a long tool output out of the model's context: the first [`CAP`] bytes are
/// returned with a note, and the full text is written to `/workspace/.herm/outputs/<call>.txt`
/// when a sandbox is at hand. The caller redacts `text` first if it may hold secrets.
pub(crate) async fn spill(sb: Option<&dyn Sandbox>, dep: &DeploymentId, call_id: &str, text: String) -> String {
    if text.len() <= CAP {
        return text;
    }
    let path = format!(".herm/outputs/{call_id}.txt");
    let kept = match sb {
        Some(sb) => files::write(sb, dep, &path, text.clone().into_bytes()).await.is_ok(),
        None => false,
    };
    let cut = (0..=CAP).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let note = if kept {
        format!("[output truncated: {} of {} bytes shown; the full output is in /workspace/{path}]", cut, text.len())
    } else {
        format!("[output truncated: {} of {} bytes shown]", cut, text.len())
    };
    format!("{}\n{note}", &text[..cut])
}

const SNAPSHOT_LIMIT: usize = 20_000;

/// Runs a built-in tool. `on_output` receives live shell output. With `track`, the workspace
/// changes the call made are returned too.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    sb: &dyn Sandbox,
    dep: &DeploymentId,
    tool: Builtin,
    args: &Value,
    call_id: &str,
    default_timeout: Duration,
    track: bool,
    on_output: &mut (dyn FnMut(Stream, &[u8]) + Send),
) -> (ToolOutput, Vec<Change>) {
    let before = match (track, tool) {
        (true, Builtin::Shell) => files::snapshot(sb, dep, SNAPSHOT_LIMIT).await.ok().flatten(),
        _ => None,
    };
    let mut changes = Vec::new();
    let out = match execute(sb, dep, tool, args, call_id, default_timeout, &mut changes, on_output).await {
        Ok(o) | Err(o) => o,
    };
    if let Some(before) = before
        && let Ok(Some(after)) = files::snapshot(sb, dep, SNAPSHOT_LIMIT).await
    {
        changes = files::diff(&before, &after);
    }
    (out, if track { changes } else { Vec::new() })
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    sb: &dyn Sandbox,
    dep: &DeploymentId,
    tool: Builtin,
    args: &Value,
    call_id: &str,
    default_timeout: Duration,
    changes: &mut Vec<Change>,
    on_output: &mut (dyn FnMut(Stream, &[u8]) + Send),
) -> Result<ToolOutput, ToolOutput> {
    let ok = |content: String| Ok(ToolOutput::ok(content));
    match tool {
        Builtin::Shell => {
            let command = arg(args, "command")?;
            let timeout = args.get("timeout_secs").and_then(Value::as_u64).map(|s| s.clamp(1, MAX_TIMEOUT));
            let timeout = timeout.map(Duration::from_secs).unwrap_or(default_timeout);
            let cwd = match args.get("cwd").and_then(Value::as_str) {
                Some(c) => Some(format!("{}/{}", herm_sandbox::WORKSPACE, files::relative(c).map_err(err)?)),
                None => None,
            };
            let req = ExecRequest { command: command.into(), cwd, timeout, stdin: None };
            let out = sb.exec(dep, req, on_output).await.map_err(err)?;
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            if !out.stderr.is_empty() {
                text.push_str(&format!("\n[stderr]\n{}", String::from_utf8_lossy(&out.stderr)));
            }
            let status = match (out.exit_code, out.timed_out) {
                (Some(c), _) => format!("exit code {c}"),
                (None, true) => {
                    format!("killed: timed out after {} s (the whole process tree was killed)", timeout.as_secs())
                }
                (None, false) => "killed (memory limit or signal)".into(),
            };
            let failed = out.exit_code != Some(0);
            let body = spill(Some(sb), dep, call_id, text).await;
            Ok(ToolOutput { content: format!("{status}\n{body}"), is_error: failed, attachments: Vec::new() })
        }
        Builtin::ReadFile => {
            let path = arg(args, "path")?;
            let bytes = files::read(sb, dep, path).await.map_err(err)?;
            match String::from_utf8(bytes) {
                Ok(s) if s.len() > CAP * 4 => {
                    let cut = (0..=CAP * 4).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
                    ok(format!(
                        "{}\n[file truncated: {} of {} bytes shown; use shell tools to read the rest]",
                        &s[..cut],
                        cut,
                        s.len()
                    ))
                }
                Ok(s) => ok(s),
                Err(e) => Err(ToolOutput::error(format!(
                    "`{path}` is a binary file ({} bytes); inspect it with shell tools (file, xxd, python3)",
                    e.as_bytes().len()
                ))),
            }
        }
        Builtin::WriteFile => {
            let (path, content) = (arg(args, "path")?, arg(args, "content")?);
            let (size, _, created) = files::write(sb, dep, path, content.as_bytes().to_vec()).await.map_err(err)?;
            let rel = files::relative(path).map_err(err)?;
            changes.push((if created { FileChange::Created } else { FileChange::Modified }, rel));
            ok(format!("wrote {size} bytes to {path}"))
        }
        Builtin::EditFile => {
            let (path, old, new) = (arg(args, "path")?, arg(args, "old_string")?, arg(args, "new_string")?);
            if old.is_empty() {
                return Err(ToolOutput::error("`old_string` must not be empty"));
            }
            let all = args.get("replace_all").and_then(Value::as_bool).unwrap_or(false);
            let bytes = files::read(sb, dep, path).await.map_err(err)?;
            let text =
                String::from_utf8(bytes).map_err(|_| ToolOutput::error(format!("`{path}` is not a text file")))?;
            let n = text.matches(old).count();
            if n == 0 {
                return Err(ToolOutput::error(format!("`old_string` was not found in {path}")));
            }
            if n > 1 && !all {
                return Err(ToolOutput::error(format!(
                    "`old_string` occurs {n} times in {path}; include more context or set replace_all"
                )));
            }
            let edited = if all { text.replace(old, new) } else { text.replacen(old, new, 1) };
            files::write(sb, dep, path, edited.into_bytes()).await.map_err(err)?;
            changes.push((FileChange::Modified, files::relative(path).map_err(err)?));
            ok(format!(
                "replaced {} occurrence{} in {path}",
                if all { n } else { 1 },
                if all && n > 1 { "s" } else { "" }
            ))
        }
        Builtin::ListFiles => {
            let path = args.get("path").and_then(Value::as_str).unwrap_or("");
            let entries = files::list(sb, dep, path).await.map_err(err)?;
            if entries.is_empty() {
                return ok("(empty)".into());
            }
            ok(entries
                .iter()
                .map(|e| if e.is_dir { format!("{}/", e.name) } else { format!("{} ({} bytes)", e.name, e.size) })
                .collect::<Vec<_>>()
                .join("\n"))
        }
        Builtin::SearchFiles => {
            let pattern = arg(args, "pattern")?;
            let rel = files::relative(args.get("path").and_then(Value::as_str).unwrap_or("")).map_err(err)?;
            let dir = format!("{}/{rel}", herm_sandbox::WORKSPACE);
            // The directory is resolved inside the sandbox and must stay in the workspace.
            let command = format!(
                "p=$(realpath -m -- {}); case \"$p\" in {w}|{w}/*) ;; *) echo 'path escapes the workspace' >&2; exit 2;; esac; \
                 grep -rIn --exclude-dir=.herm -e {} -- \"$p\" | head -n 200",
                sh_quote(&dir),
                sh_quote(pattern),
                w = herm_sandbox::WORKSPACE
            );
            let req = ExecRequest { command, cwd: None, timeout: Duration::from_secs(60), stdin: None };
            let out = sb.exec(dep, req, &mut |_, _| {}).await.map_err(err)?;
            if out.exit_code == Some(2) {
                return Err(ToolOutput::error(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
            }
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            ok(if text.is_empty() { "no matches".into() } else { text })
        }
    }
}
