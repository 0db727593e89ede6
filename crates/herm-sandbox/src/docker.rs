//! The Docker backend (Docker Engine API through bollard): one container per deployment,
//! labelled with its id, a named volume at `/workspace`, and the hardening of DESIGN.md.
//!
//! Hardening, per container: every Linux capability dropped (the documented minimal set is
//! empty: the agent runs as root inside its own user namespace-less container but with no
//! capabilities, so it cannot mount, change ownership of others' files, trace, or raise
//! limits); `no-new-privileges`; read-only root filesystem with writable `/workspace`
//! (volume) and `/tmp` (tmpfs); memory, CPU and pids limits; an init process that reaps
//! zombies; no Docker socket and no host path mounted; network either none or a bridge on
//! which containers cannot reach each other (`enable_icc=false`).

use crate::*;
use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

const LABEL: &str = "herm.deployment";
const NETWORK: &str = "herm-sandboxes";

fn engine(e: bollard::errors::Error) -> Error {
    Error::Engine(e.to_string())
}

fn is_404(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

/// Container and volume names of a deployment.
fn names(dep: &DeploymentId) -> (String, String) {
    (format!("herm-{dep}"), format!("herm-ws-{dep}"))
}

pub struct DockerSandbox {
    docker: Docker,
    /// Id of the sandbox network (names are not unique in Docker).
    network: String,
    /// Open helper channels by container; `None` marks a container whose image cannot run
    /// the helper (commands then use one `docker exec` each).
    channels: tokio::sync::Mutex<HashMap<String, Option<Arc<crate::helper::Channel>>>>,
}

impl DockerSandbox {
    /// Connects to the local engine (`DOCKER_HOST` or the default socket) and checks it answers.
    pub async fn connect() -> Result<Self> {
        let docker = Docker::connect_with_local_defaults().map_err(engine)?;
        docker.ping().await.map_err(engine)?;
        let network = ensure_network(&docker).await?;
        Ok(Self { docker, network, channels: Default::default() })
    }
}

/// The sandbox networks by that exact name, oldest first (ties by id).
async fn networks(docker: &Docker) -> Result<Vec<String>> {
    let filters = HashMap::from([("name".to_owned(), vec![NETWORK.to_owned()])]);
    let opts = bollard::query_parameters::ListNetworksOptionsBuilder::default().filters(&filters).build();
    let mut found: Vec<(String, String)> = docker
        .list_networks(Some(opts))
        .await
        .map_err(engine)?
        .into_iter()
        .filter(|n| n.name.as_deref() == Some(NETWORK))
        .filter_map(|n| Some((n.created.map(|c| format!("{c:?}")).unwrap_or_default(), n.id?)))
        .collect();
    found.sort();
    Ok(found.into_iter().map(|(_, id)| id).collect())
}

/// Finds or creates the sandbox network. Several herm processes may race to create it and
/// Docker allows duplicate names, so every process settles on the oldest one and removes the
/// others (removal fails harmlessly for one still in use).
async fn ensure_network(docker: &Docker) -> Result<String> {
    if networks(docker).await?.is_empty() {
        let mut options = HashMap::new();
        options.insert("com.docker.network.bridge.enable_icc".to_owned(), "false".to_owned());
        let req = NetworkCreateRequest {
            name: NETWORK.into(),
            driver: Some("bridge".into()),
            options: Some(options),
            labels: Some(HashMap::from([("herm.managed".to_owned(), "true".to_owned())])),
            ..Default::default()
        };
        docker.create_network(req).await.map_err(engine)?;
    }
    let all = networks(docker).await?;
    let Some(chosen) = all.first().cloned() else { return Err(Error::Engine("the sandbox network vanished".into())) };
    for extra in &all[1..] {
        let _ = docker.remove_network(extra).await;
    }
    Ok(chosen)
}

impl DockerSandbox {
    async fn create(&self, dep: &DeploymentId, cfg: &SandboxConfig) -> Result<()> {
        if let Err(e) = self.docker.inspect_image(&cfg.image).await {
            return Err(if is_404(&e) { Error::ImageMissing(cfg.image.clone()) } else { engine(e) });
        }
        let (container, volume) = names(dep);
        let labels =
            HashMap::from([(LABEL.to_owned(), dep.to_string()), ("herm.managed".to_owned(), "true".to_owned())]);
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(volume.clone()),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await
            .map_err(engine)?;
        let host = HostConfig {
            mounts: Some(vec![Mount {
                target: Some(WORKSPACE.into()),
                source: Some(volume),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            }]),
            tmpfs: Some(HashMap::from([("/tmp".to_owned(), "rw,nosuid,nodev,size=512m".to_owned())])),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            pids_limit: Some(cfg.pids_limit),
            memory: Some((cfg.memory_mb * 1024 * 1024) as i64),
            memory_swap: Some((cfg.memory_mb * 1024 * 1024) as i64),
            nano_cpus: Some((cfg.cpus * 1e9) as i64),
            network_mode: Some(if cfg.network { self.network.clone() } else { "none".into() }),
            init: Some(true),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(cfg.image.clone()),
            // The sandbox idles until a command is executed in it.
            cmd: Some(vec!["sleep".into(), "infinity".into()]),
            labels: Some(labels),
            working_dir: Some(WORKSPACE.into()),
            env: Some(vec!["HOME=/workspace".into(), "LANG=C.UTF-8".into()]),
            hostname: Some("sandbox".into()),
            host_config: Some(host),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().name(&container).build();
        self.docker.create_container(Some(opts), body).await.map_err(engine)?;
        Ok(())
    }

    /// Kills the process group whose leader wrote its pid to `pidfile` (a cancelled command).
    async fn kill_group(&self, container: &str, pidfile: &str) {
        let cmd = format!("kill -KILL -- -$(cat {pidfile}) 2>/dev/null; rm -f {pidfile}");
        // bash, not sh: dash's `kill` does not take `--` or a negative process-group id.
        let opts = CreateExecOptions { cmd: Some(vec!["bash".to_owned(), "-c".to_owned(), cmd]), ..Default::default() };
        let started = match self.docker.create_exec(container, opts).await {
            Ok(x) => self
                .docker
                .start_exec(&x.id, Some(StartExecOptions { detach: true, ..Default::default() }))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = started {
            tracing::warn!(container, error = %e, "could not kill a cancelled command's processes");
        }
    }
}

impl DockerSandbox {
    /// The container's helper channel, opened on first use and again after it died (the
    /// container was stopped); `None` if the image cannot run it.
    async fn channel(&self, container: &str) -> Option<Arc<crate::helper::Channel>> {
        let mut map = self.channels.lock().await;
        match map.get(container) {
            Some(Some(c)) if c.alive() => return Some(c.clone()),
            Some(None) => return None,
            _ => {}
        }
        match crate::helper::Channel::open(&self.docker, container).await {
            Ok(c) => {
                map.insert(container.to_owned(), Some(c.clone()));
                Some(c)
            }
            Err(e) => {
                tracing::info!(container, error = %e, "no exec helper in this sandbox; using one docker exec per command");
                map.insert(container.to_owned(), None);
                None
            }
        }
    }
}

/// Kills a command's process group if its future is dropped before it finished.
struct KillOnDrop<'a> {
    sandbox: &'a DockerSandbox,
    container: String,
    pidfile: String,
    armed: bool,
}

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let docker = self.sandbox.docker.clone();
        let (container, pidfile) = (self.container.clone(), self.pidfile.clone());
        tokio::spawn(async move {
            DockerSandbox { docker, network: String::new(), channels: Default::default() }
                .kill_group(&container, &pidfile)
                .await;
        });
    }
}

#[async_trait]
impl Sandbox for DockerSandbox {
    async fn ensure(&self, dep: &DeploymentId, cfg: &SandboxConfig) -> Result<()> {
        // A live helper channel means the container runs: no engine round trip per use.
        if let Some(Some(c)) = self.channels.lock().await.get(&names(dep).0)
            && c.alive()
        {
            return Ok(());
        }
        if self.status(dep).await? == Status::Missing {
            self.create(dep, cfg).await?;
        }
        if self.status(dep).await? != Status::Running {
            self.docker.start_container(&names(dep).0, None).await.map_err(engine)?;
        }
        Ok(())
    }

    async fn exec(&self, dep: &DeploymentId, req: ExecRequest, out: &mut OutputSink<'_>) -> Result<ExecOutput> {
        let (container, _) = names(dep);
        if let Some(channel) = self.channel(&container).await {
            return channel.run(req, out).await;
        }
        let id = format!(
            "{:x}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()
        );
        let pidfile = format!("/tmp/.herm-exec-{id}");
        let secs = req.timeout.as_secs().max(1);
        // `timeout` leads a new process group holding the command and all its children, so
        // both the timeout and a cancellation kill the whole tree.
        let script = format!("echo $$ > {pidfile}; exec timeout -s KILL {secs} bash -c \"$1\"");
        let opts = CreateExecOptions {
            cmd: Some(vec!["sh".to_owned(), "-c".to_owned(), script, "sh".to_owned(), req.command.clone()]),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            attach_stdin: Some(req.stdin.is_some()),
            working_dir: Some(req.cwd.clone().unwrap_or_else(|| WORKSPACE.into())),
            ..Default::default()
        };
        let x = self.docker.create_exec(&container, opts).await.map_err(engine)?;
        let started = std::time::Instant::now();
        let mut guard =
            KillOnDrop { sandbox: self, container: container.clone(), pidfile: pidfile.clone(), armed: true };
        let mut result = ExecOutput::default();
        match self.docker.start_exec(&x.id, None).await.map_err(engine)? {
            StartExecResults::Attached { mut output, mut input } => {
                if let Some(data) = req.stdin {
                    input.write_all(&data).await.map_err(|e| Error::Failed(e.to_string()))?;
                    input.shutdown().await.map_err(|e| Error::Failed(e.to_string()))?;
                }
                drop(input);
                while let Some(chunk) = output.next().await {
                    match chunk.map_err(engine)? {
                        bollard::container::LogOutput::StdOut { message } => {
                            out(Stream::Stdout, &message);
                            result.stdout.extend_from_slice(&message);
                        }
                        bollard::container::LogOutput::StdErr { message } => {
                            out(Stream::Stderr, &message);
                            result.stderr.extend_from_slice(&message);
                        }
                        _ => {}
                    }
                }
            }
            StartExecResults::Detached => {}
        }
        guard.armed = false;
        let info = self.docker.inspect_exec(&x.id).await.map_err(engine)?;
        // 137 = killed by SIGKILL: at the deadline that is the timeout; earlier it is the
        // memory limit (the kernel's OOM killer) or a signal.
        let killed = info.exit_code == Some(137);
        result.exit_code = info.exit_code.filter(|_| !killed);
        result.timed_out = killed && started.elapsed() + Duration::from_millis(200) >= Duration::from_secs(secs);
        Ok(result)
    }

    async fn stop(&self, dep: &DeploymentId) -> Result<()> {
        self.channels.lock().await.remove(&names(dep).0);
        let opts = StopContainerOptionsBuilder::default().t(2).build();
        match self.docker.stop_container(&names(dep).0, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_404(&e) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn destroy(&self, dep: &DeploymentId, keep_workspace: bool) -> Result<()> {
        let (container, volume) = names(dep);
        self.channels.lock().await.remove(&container);
        let opts = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(&container, Some(opts)).await {
            Ok(()) => {}
            Err(e) if is_404(&e) => {}
            Err(e) => return Err(engine(e)),
        }
        if !keep_workspace {
            match self.docker.remove_volume(&volume, None::<bollard::query_parameters::RemoveVolumeOptions>).await {
                Ok(()) => {}
                Err(e) if is_404(&e) => {}
                Err(e) => return Err(engine(e)),
            }
        }
        Ok(())
    }

    async fn status(&self, dep: &DeploymentId) -> Result<Status> {
        match self.docker.inspect_container(&names(dep).0, None).await {
            Ok(c) => {
                Ok(if c.state.and_then(|s| s.running).unwrap_or(false) { Status::Running } else { Status::Stopped })
            }
            Err(e) if is_404(&e) => Ok(Status::Missing),
            Err(e) => Err(engine(e)),
        }
    }

    async fn list(&self) -> Result<Vec<DeploymentId>> {
        let filters = HashMap::from([("label".to_owned(), vec![LABEL.to_owned()])]);
        let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let list = self.docker.list_containers(Some(opts)).await.map_err(engine)?;
        Ok(list
            .into_iter()
            .filter_map(|c| c.labels.and_then(|l| l.get(LABEL).cloned()))
            .filter_map(|d| DeploymentId::parse(&d).ok())
            .collect())
    }
}
