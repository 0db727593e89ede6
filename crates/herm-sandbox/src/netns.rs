//! Network egress for the namespaces backend: a per-deployment network namespace held open
//! by a small holder process, connected to the outside by slirp4netns (a user-mode TCP/IP
//! stack: the sandbox gets 10.0.2.100 behind NAT, DNS at 10.0.2.3) with the host's loopback
//! disabled, so nothing listening on the host's 127.0.0.1 (herm's API among it) is reachable.
//! Commands enter the namespace (`setns`, in the forked child) before bubblewrap starts. The namespace
//! outlives a herm restart (the holder's pid is kept in the deployment's directory and
//! checked by its command line before reuse) and ends when the sandbox is stopped.

use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The address slirp4netns answers DNS on inside the namespace.
pub const DNS: &str = "10.0.2.3";

/// The running network of one deployment.
pub struct Net {
    pub holder: u32,
}

impl Net {
    /// The namespace path commands enter.
    pub fn path(&self) -> String {
        format!("/proc/{}/ns/net", self.holder)
    }
}

fn marker(dir: &Path) -> String {
    format!("herm-netns:{}", dir.display())
}

fn pidfile(dir: &Path) -> PathBuf {
    dir.join("net.pid")
}

/// The file bound at `/etc/resolv.conf` inside the sandbox.
pub fn resolv_conf(dir: &Path) -> PathBuf {
    dir.join("resolv.conf")
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The network namespace `pid` is in (`None` once it is gone).
fn netns_of(pid: &str) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()
}

/// Whether `pid` is this deployment's holder with its own namespace made: `unshare` has
/// exec'd the holder's shell (its arguments name the marker before that too) and the process
/// is in a network namespace other than this process's (the host's).
fn is_holder(pid: u32, mark: &str) -> bool {
    let line = cmdline(pid);
    line.starts_with("sh ")
        && line.contains(mark)
        && matches!((netns_of(&pid.to_string()), netns_of("self")), (Some(theirs), Some(ours)) if theirs != ours)
}

/// Whether `holder`'s namespace has its default route (slirp4netns configured it).
fn has_way_out(holder: u32) -> bool {
    let routes = std::fs::read_to_string(format!("/proc/{holder}/net/route")).unwrap_or_default();
    routes.lines().skip(1).any(|l| l.split_whitespace().nth(1) == Some("00000000"))
}

/// Whether `pid` is the slirp4netns serving `holder`'s namespace.
fn is_slirp_of(pid: u32, holder: u32) -> bool {
    let line = cmdline(pid);
    line.starts_with("slirp4netns ") && line.contains(&format!(" {holder} "))
}

/// The deployment's network if it runs: its holder and its slirp4netns alive, and its
/// namespace configured. Anything less has no way out and is started again (`stop` first
/// ends what is left: a slirp4netns that configured another namespace, as an earlier herm
/// could, lets go of it).
pub fn running(dir: &Path) -> Option<Net> {
    let text = std::fs::read_to_string(pidfile(dir)).ok()?;
    let mut pids = text.split_whitespace().map(|p| p.parse::<u32>().ok());
    let (holder, slirp) = (pids.next()??, pids.next()??);
    (is_holder(holder, &marker(dir)) && is_slirp_of(slirp, holder) && has_way_out(holder)).then_some(Net { holder })
}

/// Starts the deployment's network unless it runs. A start that fails is tried once more
/// from scratch: on a loaded machine slirp4netns has been seen to give up on a namespace.
pub async fn ensure(dir: &Path) -> Result<Net> {
    if let Some(n) = running(dir) {
        return Ok(n);
    }
    match start(dir).await {
        Ok(n) => Ok(n),
        Err(e) => {
            tracing::warn!(error = %e, "the sandbox network did not start; trying once more");
            start(dir).await
        }
    }
}

async fn start(dir: &Path) -> Result<Net> {
    stop(dir);
    let fail = |e: String| Error::Engine(format!("sandbox network: {e}"));
    // The holder keeps the namespace alive; its $0 marks it as this deployment's.
    let mark = marker(dir);
    let holder = detached("unshare", &["--net", "--", "sh", "-c", "while :; do sleep 3600; done", &mark])
        .map_err(|e| fail(format!("cannot start unshare: {e}")))?;
    let pid = holder.id().ok_or_else(|| fail("unshare exited at once".into()))?;
    // Wait for unshare to have made the namespace and exec'd the holder. Handing slirp4netns
    // the pid any earlier makes it configure the host's own namespace (a second default
    // route, through the sandbox's gateway). The limits are generous: on a loaded machine
    // slirp4netns took more than a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !is_holder(pid, &mark) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    if !is_holder(pid, &mark) {
        kill_group(pid);
        return Err(fail("unshare did not make the namespace in time".into()));
    }
    let mut slirp =
        detached("slirp4netns", &["--configure", "--mtu=65520", "--disable-host-loopback", &pid.to_string(), "tap0"])
            .map_err(|e| fail(format!("cannot start slirp4netns (is it installed?): {e}")))?;
    std::fs::write(pidfile(dir), format!("{pid} {}", slirp.id().unwrap_or(0))).map_err(|e| fail(e.to_string()))?;
    std::fs::write(resolv_conf(dir), format!("nameserver {DNS}\n")).map_err(|e| fail(e.to_string()))?;
    // Configured once the namespace has a default route.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if has_way_out(pid) {
            return Ok(Net { holder: pid });
        }
        if let Ok(Some(status)) = slirp.try_wait() {
            stop(dir);
            return Err(fail(format!("slirp4netns exited ({status}) before configuring the namespace")));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop(dir);
    Err(fail("slirp4netns did not configure the namespace".into()))
}

/// Stops the deployment's network (holder and slirp4netns), if it runs.
pub fn stop(dir: &Path) {
    let Ok(text) = std::fs::read_to_string(pidfile(dir)) else { return };
    let mark = marker(dir);
    let mut pids = text.split_whitespace().filter_map(|p| p.parse::<u32>().ok());
    let (holder, slirp) = (pids.next(), pids.next());
    if let Some(h) = holder.filter(|h| cmdline(*h).contains(&mark)) {
        // The holder's process group: sh and its sleep.
        kill_group(h);
    }
    if let (Some(h), Some(s)) = (holder, slirp)
        && is_slirp_of(s, h)
    {
        kill_group(s);
    }
    let _ = std::fs::remove_file(pidfile(dir));
}

/// A long-lived helper in a process group of its own (it outlives this call; `stop` ends it).
fn detached(program: &str, args: &[&str]) -> std::io::Result<tokio::process::Child> {
    tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
}

fn kill_group(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(std::process::Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    //! Real namespaces and slirp4netns (installed by `scripts/docker.sh`; root, as the tests run).
    use super::*;

    fn routes(pid: &str) -> String {
        std::fs::read_to_string(format!("/proc/{pid}/net/route")).unwrap_or_default()
    }

    fn has_default_route(table: &str, iface: &str) -> bool {
        table.lines().skip(1).any(|l| {
            let mut f = l.split_whitespace();
            f.next() == Some(iface) && f.next() == Some("00000000")
        })
    }

    /// Many networks started at once (the load under which `unshare` is slow to make its
    /// namespace) each get a namespace of their own, configured by their own slirp4netns, and
    /// the host's namespace is never touched: no `tap0`, no second default route.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn networks_are_made_in_their_own_namespace_never_the_hosts() {
        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..24).map(|i| root.path().join(format!("d{i}"))).collect();
        for d in &dirs {
            std::fs::create_dir_all(d).unwrap();
        }
        let started = futures::future::join_all(dirs.iter().map(|d| ensure(d))).await;
        let host_ns = netns_of("self").unwrap();
        let host_routes = routes("self");
        for (d, net) in dirs.iter().zip(&started) {
            let net = net.as_ref().unwrap();
            assert_ne!(netns_of(&net.holder.to_string()).unwrap(), host_ns, "{}", d.display());
            assert!(has_default_route(&routes(&net.holder.to_string()), "tap0"), "{}", d.display());
            assert_eq!(running(d).map(|n| n.holder), Some(net.holder));
        }
        for d in &dirs {
            stop(d);
        }
        assert!(!host_routes.contains("tap0"), "the host's namespace was configured: {host_routes}");
    }

    /// A network whose slirp4netns died is not taken as running: the next `ensure` makes it
    /// again (else commands would run with no way out and no error).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_network_without_its_slirp_is_started_again() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path()).await.unwrap();
        let text = std::fs::read_to_string(pidfile(dir.path())).unwrap();
        let slirp: u32 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        kill_group(slirp);
        for _ in 0..500 {
            if !is_slirp_of(slirp, first.holder) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(running(dir.path()).is_none());
        let second = ensure(dir.path()).await.unwrap();
        assert_ne!(second.holder, first.holder);
        assert!(!is_holder(first.holder, &marker(dir.path())), "the old holder was stopped");
        assert!(has_default_route(&routes(&second.holder.to_string()), "tap0"));
        stop(dir.path());
        assert!(running(dir.path()).is_none());
    }

    /// A namespace that lost its way out (its route gone, as when slirp4netns configured
    /// some other namespace) is not taken as running either: it is made again, configured.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_network_without_its_route_is_started_again() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path()).await.unwrap();
        let status = std::process::Command::new("nsenter")
            .args(["-t", &first.holder.to_string(), "-n", "ip", "route", "del", "default"])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(running(dir.path()).is_none());
        let second = ensure(dir.path()).await.unwrap();
        assert_ne!(second.holder, first.holder);
        assert!(has_default_route(&routes(&second.holder.to_string()), "tap0"));
        stop(dir.path());
    }
}
