//! The namespaces backend for machines without Docker: each command runs under bubblewrap in
//! fresh user-visible-root-less namespaces (mount, pid, net, ipc, uts, cgroup), on a root made
//! of read-only binds of the host's `/usr` and a minimal `/etc`, with the deployment's
//! workspace directory bound at `/workspace`, `/tmp` as tmpfs, every capability dropped,
//! `no_new_privs`, a seccomp filter ([`crate::seccomp`]), a cleared environment, and
//! memory/pids/CPU limits from a per-deployment cgroup the command joins before bubblewrap
//! starts.
//!
//! With `network` on, commands run in the deployment's own network namespace with egress
//! through slirp4netns and no way to the host's loopback ([`crate::netns`]); with it off,
//! in a fresh empty network namespace each.
//!
//! A difference from Docker, by design here: no process outlives its command (the pid
//! namespace dies with it, so background servers do not persist between calls).

mod child;

use crate::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// Host files a sandbox may read (optional ones are skipped when absent). Never all of /etc:
/// `/etc/shadow` is readable by uid 0 without any capability.
const ETC: &[&str] = &[
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/alternatives",
    "/etc/ssl/certs",
    "/etc/ca-certificates",
    "/etc/python3",
    "/etc/python3.11",
];

const CGROUPS: &str = "/sys/fs/cgroup";

pub struct NamespacesSandbox {
    root: PathBuf,
    /// Where workspaces live: `root`, or a directory every node mounts (shared storage), so a
    /// run that moves to another node finds its deployment's files there.
    workspaces: PathBuf,
    /// Starting or stopping a deployment's network is one at a time (two racing starts
    /// would leave a holder nobody tracks).
    net_lock: tokio::sync::Mutex<()>,
}

impl NamespacesSandbox {
    /// `root` holds one directory per deployment (its workspace and limits).
    pub fn new(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| Error::Engine(e.to_string()))?;
        let probe = std::process::Command::new("bwrap").arg("--version").output();
        if !probe.is_ok_and(|o| o.status.success()) {
            return Err(Error::Engine("bubblewrap (bwrap) is not installed".into()));
        }
        std::fs::write(root.join("seccomp.bpf"), crate::seccomp::program()?)
            .map_err(|e| Error::Engine(e.to_string()))?;
        Ok(Self { root: root.to_owned(), workspaces: root.to_owned(), net_lock: tokio::sync::Mutex::new(()) })
    }

    /// Keeps workspaces under `dir` (shared storage every node mounts at the same path)
    /// instead of the node's own `root`; the rest (network, limits) stays the node's.
    pub fn with_shared_workspaces(mut self, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Engine(format!("cannot use {}: {e}", dir.display())))?;
        self.workspaces = dir.to_owned();
        Ok(self)
    }

    /// The node's own state of a deployment (network, resolver).
    fn dir(&self, dep: &DeploymentId) -> PathBuf {
        self.root.join(dep.as_str())
    }

    /// The deployment's workspace, bound at `/workspace`.
    fn workspace(&self, dep: &DeploymentId) -> PathBuf {
        self.workspaces.join(dep.as_str()).join("workspace")
    }

    /// Whether this node set the deployment up (its own state and the workspace both there).
    fn is_set_up(&self, dep: &DeploymentId) -> bool {
        self.dir(dep).is_dir() && self.workspace(dep).is_dir()
    }

    /// Cgroup directories of a deployment, one per v1 controller (or the v2 unified one).
    fn cgroups(dep: &DeploymentId) -> Vec<(String, PathBuf)> {
        let v2 = Path::new(CGROUPS).join("cgroup.controllers").exists();
        if v2 {
            return vec![("unified".into(), Path::new(CGROUPS).join("herm").join(dep.as_str()))];
        }
        ["memory", "pids", "cpu"]
            .iter()
            .map(|c| (c.to_string(), Path::new(CGROUPS).join(c).join("herm").join(dep.as_str())))
            .filter(|(c, _)| Path::new(CGROUPS).join(c).exists())
            .collect()
    }

    fn write_limits(dep: &DeploymentId, cfg: &SandboxConfig) -> Result<()> {
        let bytes = cfg.memory_mb * 1024 * 1024;
        let quota = (cfg.cpus * 100_000.0) as i64;
        for (controller, dir) in Self::cgroups(dep) {
            std::fs::create_dir_all(&dir).map_err(|e| Error::Engine(format!("cgroup {}: {e}", dir.display())))?;
            let files: Vec<(&str, String)> = match controller.as_str() {
                "memory" => vec![
                    ("memory.limit_in_bytes", bytes.to_string()),
                    ("memory.memsw.limit_in_bytes", bytes.to_string()),
                ],
                "pids" => vec![("pids.max", cfg.pids_limit.to_string())],
                "cpu" => vec![("cpu.cfs_period_us", "100000".into()), ("cpu.cfs_quota_us", quota.to_string())],
                _ => vec![
                    ("memory.max", bytes.to_string()),
                    ("memory.swap.max", "0".into()),
                    ("pids.max", cfg.pids_limit.to_string()),
                    ("cpu.max", format!("{quota} 100000")),
                ],
            };
            for (f, v) in files {
                // memsw / swap files are absent without swap accounting: best effort there.
                let r = std::fs::write(dir.join(f), &v);
                if r.is_err() && !f.contains("sw") && !f.contains("swap") {
                    return Err(Error::Engine(format!("cannot set {f} for the sandbox")));
                }
            }
        }
        Ok(())
    }

    fn bwrap_args(&self, dep: &DeploymentId, cwd: &str, network: bool) -> Vec<String> {
        let mut a: Vec<String> = [
            "--unshare-all",
            // With a network, the deployment's namespace the child entered; else a new empty one.
            if network { "--share-net" } else { "--unshare-net" },
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/sbin",
            "/sbin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--hostname",
            "sandbox",
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--setenv",
            "HOME",
            "/workspace",
            "--setenv",
            "LANG",
            "C.UTF-8",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for f in ETC {
            a.extend(["--ro-bind-try".into(), f.to_string(), f.to_string()]);
        }
        if network {
            let resolv = crate::netns::resolv_conf(&self.dir(dep));
            a.extend(["--ro-bind".into(), resolv.display().to_string(), "/etc/resolv.conf".into()]);
        }
        let ws = self.workspace(dep);
        a.extend(["--bind".into(), ws.display().to_string(), WORKSPACE.into(), "--chdir".into(), cwd.into()]);
        // Last: the root itself read-only (the binds and /tmp keep their own modes).
        a.extend(["--remount-ro".into(), "/".into()]);
        a
    }
}

#[async_trait]
impl Sandbox for NamespacesSandbox {
    fn backend(&self) -> &'static str {
        "namespaces"
    }

    async fn ensure(&self, dep: &DeploymentId, cfg: &SandboxConfig) -> Result<()> {
        let ws = self.workspace(dep);
        std::fs::create_dir_all(&ws).map_err(|e| Error::Engine(e.to_string()))?;
        std::fs::create_dir_all(self.dir(dep)).map_err(|e| Error::Engine(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Other users of the host must not read a deployment's workspace.
            for d in [self.dir(dep), self.workspaces.join(dep.as_str())] {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| Error::Engine(format!("cannot restrict the workspace: {e}")))?;
            }
        }
        Self::write_limits(dep, cfg)?;
        let _one = self.net_lock.lock().await;
        if cfg.network {
            crate::netns::ensure(&self.dir(dep)).await?;
        } else {
            crate::netns::stop(&self.dir(dep));
        }
        Ok(())
    }

    async fn exec(&self, dep: &DeploymentId, req: ExecRequest, out: &mut OutputSink<'_>) -> Result<ExecOutput> {
        if !self.is_set_up(dep) {
            return Err(Error::NotFound(format!("sandbox of {dep}")));
        }
        let limit = Duration::from_secs(req.timeout.as_secs().max(1));
        let cwd = req.cwd.clone().unwrap_or_else(|| WORKSPACE.into());
        let net = crate::netns::running(&self.dir(dep));
        let cgroups: Vec<PathBuf> = Self::cgroups(dep).into_iter().map(|(_, d)| d).collect();
        let netns = net.as_ref().map(|n| PathBuf::from(n.path()));
        let setup = child::ChildSetup::new(&cgroups, &self.root.join("seccomp.bpf"), netns.as_deref())?;
        let mut cmd = Command::new("bwrap");
        // The seccomp program reaches bubblewrap as file descriptor 3 (see `child`).
        cmd.args(["--seccomp", "3"]).args(self.bwrap_args(dep, &cwd, net.is_some()));
        cmd.args(["--", "bash", "-c", &req.command]);
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(if req.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: `apply` makes only async-signal-safe calls on what was prepared above.
        unsafe {
            cmd.pre_exec(move || setup.apply());
        }
        let mut child = cmd.spawn().map_err(|e| Error::Engine(format!("cannot start bubblewrap: {e}")))?;
        if let (Some(data), Some(mut stdin)) = (req.stdin, child.stdin.take()) {
            tokio::spawn(async move {
                let _ = stdin.write_all(&data).await;
                let _ = stdin.shutdown().await;
            });
        }
        let (mut so, mut se) = (child.stdout.take(), child.stderr.take());
        let mut result = ExecOutput::default();
        let (mut b1, mut b2) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
        // The time limit is kept here: killing bubblewrap kills the namespace's init
        // (`--die-with-parent`), and with it every process of the command.
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                n = async { match so.as_mut() { Some(s) => s.read(&mut b1).await, None => std::future::pending().await } } => {
                    match n { Ok(0) | Err(_) => so = None, Ok(n) => { out(Stream::Stdout, &b1[..n]); result.stdout.extend_from_slice(&b1[..n]); } }
                }
                n = async { match se.as_mut() { Some(s) => s.read(&mut b2).await, None => std::future::pending().await } } => {
                    match n { Ok(0) | Err(_) => se = None, Ok(n) => { out(Stream::Stderr, &b2[..n]); result.stderr.extend_from_slice(&b2[..n]); } }
                }
                _ = &mut deadline, if !result.timed_out => {
                    result.timed_out = true;
                    if let Err(e) = child.start_kill() {
                        tracing::warn!(error = %e, "could not kill a command past its time limit");
                    }
                }
            }
            if so.is_none() && se.is_none() {
                break;
            }
        }
        // Output ends when the command's last process is gone; bubblewrap exits right after.
        let status = tokio::select! {
            s = child.wait() => s,
            _ = &mut deadline, if !result.timed_out => {
                result.timed_out = true;
                let _ = child.start_kill();
                child.wait().await
            }
        }
        .map_err(|e| Error::Engine(e.to_string()))?;
        let code = status.code().map(i64::from);
        // 137: the command was killed by SIGKILL (the memory limit); no code: bubblewrap was.
        let killed = code == Some(137) || code.is_none() || result.timed_out;
        result.exit_code = code.filter(|_| !killed);
        Ok(result)
    }

    async fn stop(&self, dep: &DeploymentId) -> Result<()> {
        // Nothing runs between commands but the network, which `ensure` starts again.
        let _one = self.net_lock.lock().await;
        crate::netns::stop(&self.dir(dep));
        Ok(())
    }

    async fn destroy(&self, dep: &DeploymentId, keep_workspace: bool) -> Result<()> {
        {
            let _one = self.net_lock.lock().await;
            crate::netns::stop(&self.dir(dep));
        }
        for (_, dir) in Self::cgroups(dep) {
            let _ = std::fs::remove_dir(&dir);
        }
        if !keep_workspace {
            for d in [self.dir(dep), self.workspaces.join(dep.as_str())] {
                if d.exists() {
                    std::fs::remove_dir_all(&d).map_err(|e| Error::Engine(e.to_string()))?;
                }
            }
        }
        Ok(())
    }

    async fn status(&self, dep: &DeploymentId) -> Result<Status> {
        Ok(if self.is_set_up(dep) { Status::Running } else { Status::Missing })
    }

    async fn list(&self) -> Result<Vec<DeploymentId>> {
        let rd = std::fs::read_dir(&self.root).map_err(|e| Error::Engine(e.to_string()))?;
        Ok(rd
            .filter_map(|e| e.ok())
            .filter_map(|e| DeploymentId::parse(&e.file_name().to_string_lossy()).ok())
            .collect())
    }
}
