//! Workspace file operations for any backend, built on `exec`. A path is first checked on
//! the host (no NUL, no absolute path outside `/workspace`), then resolved with `realpath`
//! inside the sandbox, so `..` and symlinks that point outside `/workspace` are refused where
//! they are resolved.

use crate::*;
use herm_types::event::FileChange;
use std::collections::HashMap;

/// Largest file the file operations move in one piece.
pub const MAX_FILE: usize = 16 * 1024 * 1024;
pub(crate) const ESCAPE: i64 = 90;
pub(crate) const MISSING: i64 = 91;
pub(crate) const WRONG_KIND: i64 = 92;

/// One directory entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub modified: f64,
}

/// Quotes a string for `sh`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The workspace-relative form of a path given by a client or the model.
pub fn relative(path: &str) -> Result<String> {
    if path.contains('\0') || path.len() > 4096 {
        return Err(Error::PathEscape(path.chars().take(100).collect()));
    }
    let p = path.trim();
    let rel = if let Some(r) = p.strip_prefix(WORKSPACE) {
        if !(r.is_empty() || r.starts_with('/')) {
            return Err(Error::PathEscape(p.into()));
        }
        r.trim_start_matches('/')
    } else if p.starts_with('/') {
        return Err(Error::PathEscape(p.into()));
    } else {
        p
    };
    // A lexical check first: `..` may never climb above the workspace root.
    let mut depth = 0i32;
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return Err(Error::PathEscape(p.into()));
                }
            }
            _ => depth += 1,
        }
    }
    Ok(rel.to_owned())
}

/// A script prefix that resolves `rel` inside the sandbox into `$p`, refusing escapes.
pub(crate) fn resolve(rel: &str) -> String {
    format!(
        "p=$(realpath -m -- {}) || exit {MISSING}; case \"$p\" in {WORKSPACE}|{WORKSPACE}/*) ;; *) exit {ESCAPE};; esac; ",
        sh_quote(&format!("{WORKSPACE}/{rel}"))
    )
}

pub(crate) async fn run(
    sb: &dyn Sandbox,
    dep: &DeploymentId,
    script: String,
    stdin: Option<Vec<u8>>,
    path: &str,
) -> Result<Vec<u8>> {
    let req = ExecRequest { command: script, cwd: None, timeout: Duration::from_secs(60), stdin };
    let out = sb.exec(dep, req, &mut |_, _| {}).await?;
    match out.exit_code {
        Some(0) => Ok(out.stdout),
        Some(ESCAPE) => Err(Error::PathEscape(path.into())),
        Some(MISSING) => Err(Error::NotFound(path.into())),
        Some(WRONG_KIND) => Err(Error::Failed(format!("`{path}` is not the kind of entry this operation needs"))),
        _ => Err(Error::Failed(String::from_utf8_lossy(&out.stderr).trim().chars().take(500).collect())),
    }
}

pub async fn read(sb: &dyn Sandbox, dep: &DeploymentId, path: &str) -> Result<Vec<u8>> {
    let rel = relative(path)?;
    let script = format!(
        "{}[ -e \"$p\" ] || exit {MISSING}; [ -f \"$p\" ] || exit {WRONG_KIND}; \
         [ $(stat -c %s \"$p\") -le {MAX_FILE} ] || {{ echo 'file too large' >&2; exit 1; }}; cat -- \"$p\"",
        resolve(&rel)
    );
    run(sb, dep, script, None, path).await
}

/// Writes a file (parents created); returns its size, modification time and whether it is new.
pub async fn write(sb: &dyn Sandbox, dep: &DeploymentId, path: &str, data: Vec<u8>) -> Result<(u64, f64, bool)> {
    let rel = relative(path)?;
    if rel.is_empty() {
        return Err(Error::Failed("the workspace root is a directory".into()));
    }
    let script = format!(
        "{}[ -d \"$p\" ] && exit {WRONG_KIND}; [ -e \"$p\" ] && new=0 || new=1; \
         mkdir -p -- \"$(dirname -- \"$p\")\" && cat > \"$p\" && stat -c \"%s %.Y $new\" -- \"$p\"",
        resolve(&rel)
    );
    let out = run(sb, dep, script, Some(data), path).await?;
    let s = String::from_utf8_lossy(&out);
    let mut it = s.split_whitespace();
    let size = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let modified = it.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let created = it.next() == Some("1");
    Ok((size, modified, created))
}

/// Files of the workspace with their modification time and size, or None past `limit`.
pub async fn snapshot(sb: &dyn Sandbox, dep: &DeploymentId, limit: usize) -> Result<Option<HashMap<String, String>>> {
    let script = format!(
        "cd {WORKSPACE} && find . -path ./.herm -prune -o -type f -printf '%P\\t%T@ %s\\n' | head -n {}",
        limit + 1
    );
    let out = run(sb, dep, script, None, WORKSPACE).await?;
    let map: HashMap<String, String> = String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.split_once('\t').map(|(p, v)| (p.to_owned(), v.to_owned())))
        .collect();
    Ok((map.len() <= limit).then_some(map))
}

/// The regular files under the workspace directory `dir` of at most `max_size` bytes, with
/// their SHA-256 (hex), by path relative to `dir`; empty if `dir` does not exist. Symbolic
/// links are not followed, so nothing outside the directory is read.
pub async fn hashes(sb: &dyn Sandbox, dep: &DeploymentId, dir: &str, max_size: u64) -> Result<HashMap<String, String>> {
    let rel = relative(dir)?;
    let script = format!(
        "{}[ -d \"$p\" ] || exit 0; cd -- \"$p\" && find . -type f -size -{}c -printf '%P\\0' | xargs -0 -r sha256sum --",
        resolve(&rel),
        max_size + 1
    );
    let out = run(sb, dep, script, None, dir).await?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        // A name sha256sum had to escape (a backslash or a newline in it) is no memory path.
        .filter(|l| !l.starts_with('\\'))
        .filter_map(|l| l.split_once("  ").map(|(h, p)| (p.to_owned(), h.to_owned())))
        .collect())
}

/// What changed between two snapshots: (`created` | `modified` | `deleted`, path), sorted.
pub fn diff(before: &HashMap<String, String>, after: &HashMap<String, String>) -> Vec<(FileChange, String)> {
    let mut out: Vec<(FileChange, String)> = Vec::new();
    for (p, v) in after {
        match before.get(p) {
            None => out.push((FileChange::Created, p.clone())),
            Some(old) if old != v => out.push((FileChange::Modified, p.clone())),
            _ => {}
        }
    }
    for p in before.keys().filter(|p| !after.contains_key(*p)) {
        out.push((FileChange::Deleted, p.clone()));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    out
}

pub async fn list(sb: &dyn Sandbox, dep: &DeploymentId, path: &str) -> Result<Vec<Entry>> {
    let rel = relative(path)?;
    let script = format!(
        "{}[ -e \"$p\" ] || exit {MISSING}; [ -d \"$p\" ] || exit {WRONG_KIND}; \
         find \"$p\" -mindepth 1 -maxdepth 1 -printf '%y\\t%s\\t%T@\\t%f\\n'",
        resolve(&rel)
    );
    let out = run(sb, dep, script, None, path).await?;
    let mut entries: Vec<Entry> = String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(4, '\t');
            let (kind, size, mtime, name) = (f.next()?, f.next()?, f.next()?, f.next()?);
            Some(Entry {
                name: name.into(),
                is_dir: kind == "d",
                size: size.parse().unwrap_or(0),
                modified: mtime.parse().unwrap_or(0.0),
            })
        })
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// Deletes a file or a directory (recursively). The workspace root itself is refused.
pub async fn delete(sb: &dyn Sandbox, dep: &DeploymentId, path: &str) -> Result<()> {
    let rel = relative(path)?;
    let script = format!(
        "{}[ \"$p\" = {WORKSPACE} ] && exit {ESCAPE}; [ -e \"$p\" ] || [ -L \"$p\" ] || exit {MISSING}; rm -rf -- \"$p\"",
        resolve(&rel)
    );
    run(sb, dep, script, None, path).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_confined_lexically() {
        assert_eq!(relative("a/b.txt").unwrap(), "a/b.txt");
        assert_eq!(relative("/workspace/a").unwrap(), "a");
        assert_eq!(relative("/workspace").unwrap(), "");
        assert_eq!(relative("a/../b").unwrap(), "a/../b");
        for bad in ["/etc/passwd", "../x", "a/../../x", "/workspacex/y", "a\0b"] {
            assert!(relative(bad).is_err(), "{bad}");
        }
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
