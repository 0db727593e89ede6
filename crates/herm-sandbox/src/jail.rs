//! The process jail of a host-side helper program (a stdio MCP server): never the agent's
//! container, and built here because only this crate starts processes. With bubblewrap
//! (the default where it works) the server gets its own user, pid, ipc and uts namespaces,
//! no capabilities, a read-only view of the host's files with herm's data directory, the
//! Docker state and `/run` (sockets) hidden, a private writable home, and only the
//! environment its configuration gives it. It shares the host's network, since servers
//! exist to reach their APIs. Without bubblewrap it runs as a plain child with a cleared
//! environment (herm logs this at start).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    Bubblewrap,
    /// A plain child process: cleared environment, own working directory, nothing else.
    Plain,
}

#[derive(Clone, Debug)]
pub struct StdioSandbox {
    pub mode: Mode,
    /// Host paths the server must not see (herm's data directory among them).
    pub hidden: Vec<PathBuf>,
    /// Parent of the servers' private home directories.
    pub state_root: PathBuf,
}

impl Default for StdioSandbox {
    fn default() -> Self {
        Self {
            mode: Mode::Plain,
            hidden: vec![PathBuf::from("/var/lib/docker")],
            state_root: std::env::temp_dir().join("herm-mcp"),
        }
    }
}

/// Whether bubblewrap can make a sandbox on this machine.
pub fn bubblewrap_works() -> bool {
    std::process::Command::new("bwrap")
        .args([
            "--unshare-user",
            "--unshare-pid",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "true",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl StdioSandbox {
    /// The command that starts `program args` in the sandbox with `env` (secrets already
    /// filled in: they travel in the environment, never on a command line).
    pub fn command(
        &self,
        home: &Path,
        program: &str,
        args: &[String],
        env: &BTreeMap<String, Zeroizing<String>>,
    ) -> Result<tokio::process::Command, String> {
        std::fs::create_dir_all(home.join("tmp"))
            .map_err(|e| format!("the server's home directory could not be made: {e}"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700));
        }
        let mut cmd = match self.mode {
            Mode::Plain => {
                let mut c = tokio::process::Command::new(program);
                c.args(args).current_dir(home);
                c
            }
            Mode::Bubblewrap => {
                let mut c = tokio::process::Command::new("bwrap");
                c.args(self.bwrap_args(home)).arg("--").arg(program).args(args);
                c
            }
        };
        cmd.env_clear()
            .env("PATH", PATH)
            .env("HOME", home)
            .env("TMPDIR", home.join("tmp"))
            .env("LANG", "C.UTF-8")
            .envs(env.iter().map(|(k, v)| (k, v.as_str())))
            .kill_on_drop(true);
        Ok(cmd)
    }

    fn bwrap_args(&self, home: &Path) -> Vec<String> {
        let mut a: Vec<String> = [
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/run",
        ]
        .map(String::from)
        .into();
        for h in &self.hidden {
            let p = h.display().to_string();
            if h.is_dir() {
                a.extend(["--tmpfs".into(), p]);
            } else if h.exists() {
                a.extend(["--ro-bind".into(), "/dev/null".into(), p]);
            }
        }
        let home = home.display().to_string();
        a.extend(["--bind".into(), home.clone(), home.clone(), "--chdir".into(), home]);
        a
    }
}
