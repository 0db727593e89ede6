//! The Docker backend (Docker Engine API through bollard): one container per deployment,
//! named `herm-<deployment id>`, a named volume at `/workspace`, and the hardening of
//! DESIGN.md.
//!
//! Hardening, per container: every Linux capability dropped (the documented minimal set is
//! empty: the agent runs as root inside its own user namespace-less container but with no
//! capabilities, so it cannot mount, change ownership of others' files, trace, or raise
//! limits); `no-new-privileges`; read-only root filesystem with writable `/workspace`
//! (volume) and `/tmp` (tmpfs); memory, CPU and pids limits; an init process that reaps
//! zombies; no Docker socket and no host path mounted; a bridge network on which containers
//! cannot reach each other (`enable_icc=false`), or, with the network off, disconnected from
//! it (only the loopback is left). `/tmp` is noexec, as Docker mounts tmpfs; the exec
//! helper's binary goes to a small exec-allowed tmpfs at `/run/herm`.
//!
//! Every container and volume carries `herm.managed` and this herm's owner id
//! ([`state`]): reconciliation only ever touches its own. A new deployment takes a
//! pre-started container from the [`pool`] when one is ready (renamed, its limits and
//! network adjusted, its helper channel already open), else one is created for it.

mod exec;
mod pool;
mod settings;
mod state;

use settings::Settings;

use crate::*;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

const LABEL: &str = "herm.deployment";
const MANAGED: &str = "herm.managed";
const OWNER: &str = "herm.owner";
const NETWORK: &str = "herm-sandboxes";

fn engine(e: bollard::errors::Error) -> Error {
    Error::Engine(e.to_string())
}

fn is_404(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

fn container_name(dep: &DeploymentId) -> String {
    format!("herm-{dep}")
}

/// How the Docker backend is set up.
#[derive(Clone, Debug)]
pub struct DockerOptions {
    /// Where the backend keeps its owner id and pool claims (`<data>/docker`).
    pub state_dir: PathBuf,
    /// Containers kept created, started and answering for the next new deployments; 0 turns
    /// the pool off.
    pub pool_size: usize,
    /// How pool containers are built. A deployment with another image gets a container of
    /// its own; other limits and the network are adjusted when it takes one.
    pub pool_config: SandboxConfig,
}

/// What the backend and its pool share: the engine client, the network, the owner's state.
pub(crate) struct Core {
    docker: Docker,
    /// Id of the sandbox network (names are not unique in Docker).
    network: String,
    state: state::State,
}

pub struct DockerSandbox {
    core: Arc<Core>,
    /// Open helper channels by container; `None` marks a container whose image cannot run
    /// the helper (commands then use one `docker exec` each).
    channels: tokio::sync::Mutex<HashMap<String, Option<Arc<crate::helper::Channel>>>>,
    /// The settings each container was last brought to.
    applied: tokio::sync::Mutex<HashMap<String, Settings>>,
    /// Held while a deployment's sandbox is being created or started.
    ensuring: tokio::sync::Mutex<HashMap<DeploymentId, Arc<tokio::sync::Mutex<()>>>>,
    pool: Option<Arc<pool::Pool>>,
}

impl DockerSandbox {
    /// Connects to the local engine (`DOCKER_HOST` or the default socket), checks it answers,
    /// removes what an earlier run of this herm left in its pool, and starts filling the pool.
    pub async fn connect(opts: DockerOptions) -> Result<Self> {
        let docker = Docker::connect_with_local_defaults().map_err(engine)?;
        docker.ping().await.map_err(engine)?;
        let network = ensure_network(&docker).await?;
        let dir = opts.state_dir.clone();
        let state = tokio::task::spawn_blocking(move || state::State::open(&dir))
            .await
            .map_err(|e| Error::Engine(e.to_string()))??;
        let core = Arc::new(Core { docker, network, state });
        pool::remove_leftovers(&core).await;
        let pool = (opts.pool_size > 0).then(|| pool::Pool::start(core.clone(), opts.pool_size, opts.pool_config));
        Ok(Self { core, channels: Default::default(), applied: Default::default(), ensuring: Default::default(), pool })
    }

    /// Waits until the pool holds `n` ready containers (for benchmarks and tests).
    pub async fn pool_ready(&self, n: usize, within: Duration) -> bool {
        match &self.pool {
            Some(p) => p.wait_ready(n, within).await,
            None => n == 0,
        }
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

impl Core {
    fn labels(&self, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut labels =
            HashMap::from([(MANAGED.to_owned(), "true".to_owned()), (OWNER.to_owned(), self.state.owner.clone())]);
        labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        labels
    }

    /// Creates (not starts) a hardened container `name` with `volume` at `/workspace`; the
    /// volume is created unless `volume_exists`.
    async fn create_container(
        &self,
        name: &str,
        volume: &str,
        volume_exists: bool,
        labels: HashMap<String, String>,
        cfg: &SandboxConfig,
    ) -> Result<()> {
        if let Err(e) = self.docker.inspect_image(&cfg.image).await {
            return Err(if is_404(&e) { Error::ImageMissing(cfg.image.clone()) } else { engine(e) });
        }
        if !volume_exists {
            self.docker
                .create_volume(VolumeCreateRequest {
                    name: Some(volume.to_owned()),
                    labels: Some(labels.clone()),
                    ..Default::default()
                })
                .await
                .map_err(engine)?;
        }
        let limits = Settings::of(cfg);
        let host = HostConfig {
            mounts: Some(vec![Mount {
                target: Some(WORKSPACE.into()),
                source: Some(volume.to_owned()),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            }]),
            tmpfs: Some(HashMap::from([
                ("/tmp".to_owned(), "rw,nosuid,nodev,size=512m".to_owned()),
                // The exec helper's binary is copied here (Docker mounts /tmp noexec).
                (crate::helper::HELPER_DIR.to_owned(), "rw,exec,nosuid,nodev,size=16m,mode=0700".to_owned()),
            ])),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            pids_limit: Some(limits.pids),
            memory: Some(limits.memory),
            memory_swap: Some(limits.memory),
            nano_cpus: Some(limits.nano_cpus),
            // On the sandbox network even with the network off (disconnected below): a
            // container made with none at all could never be given one later.
            network_mode: Some(self.network.clone()),
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
        let opts = CreateContainerOptionsBuilder::default().name(name).build();
        self.docker.create_container(Some(opts), body).await.map_err(engine)?;
        if !cfg.network {
            let on = Settings { network: true, ..limits.clone() };
            self.adjust(name, &on, &limits).await?;
        }
        Ok(())
    }

    /// Removes a container and, unless `None`, a volume; absent ones are fine.
    async fn remove(&self, container: &str, volume: Option<&str>) -> Result<()> {
        let opts = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(container, Some(opts)).await {
            Ok(()) => {}
            Err(e) if is_404(&e) => {}
            Err(e) => return Err(engine(e)),
        }
        match volume {
            Some(volume) => self.remove_volume(volume).await,
            None => Ok(()),
        }
    }

    async fn remove_volume(&self, volume: &str) -> Result<()> {
        match self.docker.remove_volume(volume, None::<bollard::query_parameters::RemoveVolumeOptions>).await {
            Ok(()) => Ok(()),
            Err(e) if is_404(&e) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }
}

impl DockerSandbox {
    /// The workspace volume of a deployment: the pool volume it claimed, else its own.
    fn volume(&self, dep: &DeploymentId) -> (String, bool) {
        match self.core.state.claimed_volume(dep) {
            Some(v) => (v, true),
            None => (format!("herm-ws-{dep}"), false),
        }
    }

    async fn has_workspace(&self, dep: &DeploymentId) -> Result<bool> {
        let (volume, claimed) = self.volume(dep);
        if claimed {
            return Ok(true);
        }
        match self.core.docker.inspect_volume(&volume).await {
            Ok(_) => Ok(true),
            Err(e) if is_404(&e) => Ok(false),
            Err(e) => Err(engine(e)),
        }
    }

    async fn create(&self, dep: &DeploymentId, cfg: &SandboxConfig) -> Result<()> {
        // A claimed volume exists already (or, lost with the engine's state, is made again
        // empty by the mount).
        let (volume, claimed) = self.volume(dep);
        let labels = self.core.labels(&[(LABEL, dep.as_str())]);
        self.core.create_container(&container_name(dep), &volume, claimed, labels, cfg).await
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
        let c = crate::helper::Channel::open(&self.core.docker, container).await;
        if let Err(e) = &c {
            tracing::info!(container, error = %e, "no exec helper in this sandbox; using one docker exec per command");
        }
        let c = c.ok();
        map.insert(container.to_owned(), c.clone());
        c
    }

    /// Whether the container runs, and its settings; `None` if it does not exist.
    async fn inspect(&self, name: &str) -> Result<Option<(bool, Settings)>> {
        match self.core.docker.inspect_container(name, None).await {
            Ok(c) => {
                let running = c.state.as_ref().and_then(|s| s.running).unwrap_or(false);
                Ok(Some((running, Settings::inspected(&c, &self.core.network))))
            }
            Err(e) if is_404(&e) => Ok(None),
            Err(e) => Err(engine(e)),
        }
    }

    /// A running container for a deployment that has none: a pool container if it has no
    /// workspace yet (one whose container was lost keeps its workspace), else a new one.
    async fn provide(&self, dep: &DeploymentId, cfg: &SandboxConfig) -> Result<()> {
        let ready = match &self.pool {
            Some(p) if !self.has_workspace(dep).await? => p.take(cfg).await,
            _ => None,
        };
        if let Some(ready) = ready {
            match self.adopt(dep, ready, cfg).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(deployment = %dep, error = %e, "could not adopt a pool container; creating one")
                }
            }
        }
        self.create(dep, cfg).await?;
        self.core.docker.start_container(&container_name(dep), None).await.map_err(engine)
    }

    /// Makes a ready pool container the deployment's: the claim is made durable first, then
    /// the container renamed, then its limits and network set to the deployment's. On any
    /// failure the pool container is removed and the claim dropped.
    async fn adopt(&self, dep: &DeploymentId, ready: pool::Ready, cfg: &SandboxConfig) -> Result<()> {
        let name = container_name(dep);
        let core = self.core.clone();
        let (d, v) = (dep.clone(), ready.volume.clone());
        tokio::task::spawn_blocking(move || core.state.claim(&d, &v))
            .await
            .map_err(|e| Error::Engine(e.to_string()))??;
        let renamed = self
            .core
            .docker
            .rename_container(
                &ready.container,
                bollard::query_parameters::RenameContainerOptions { name: name.clone() },
            )
            .await
            .map_err(engine);
        let adjusted = match &renamed {
            Ok(()) => self.core.adjust(&name, &Settings::of(&ready.config), &Settings::of(cfg)).await,
            Err(e) => Err(Error::Engine(e.to_string())),
        };
        if let Err(e) = adjusted {
            let current = if renamed.is_ok() { name.as_str() } else { ready.container.as_str() };
            if let Err(r) = self.core.remove(current, Some(&ready.volume)).await {
                tracing::warn!(container = current, error = %r, "could not remove a pool container that failed to adopt");
            }
            self.core.state.release(dep)?;
            return Err(e);
        }
        self.channels.lock().await.insert(name, ready.channel);
        Ok(())
    }
}

#[async_trait]
impl Sandbox for DockerSandbox {
    fn backend(&self) -> &'static str {
        "docker"
    }

    async fn ensure(&self, dep: &DeploymentId, cfg: &SandboxConfig) -> Result<()> {
        let name = container_name(dep);
        let want = Settings::of(cfg);
        // A live helper channel and unchanged settings: no engine round trip per use.
        if let Some(Some(c)) = self.channels.lock().await.get(&name)
            && c.alive()
            && self.applied.lock().await.get(&name) == Some(&want)
        {
            return Ok(());
        }
        // One at a time per deployment: two racing creations would fight over the name.
        let lock = self.ensuring.lock().await.entry(dep.clone()).or_default().clone();
        let _one = lock.lock().await;
        match self.inspect(&name).await? {
            None => self.provide(dep, cfg).await?,
            Some((running, have)) if have.needs_new(&want) && !running => {
                tracing::info!(deployment = %dep, "the sandbox's image or network changed: making its container again");
                self.channels.lock().await.remove(&name);
                self.core.remove(&name, None).await?;
                self.create(dep, cfg).await?;
                self.core.docker.start_container(&name, None).await.map_err(engine)?;
            }
            Some((running, have)) => {
                // Limits and network apply at once, running or not; a new image (or a network
                // for a container made without one) when the sandbox next starts.
                if have.needs_new(&want) {
                    tracing::info!(deployment = %dep, "the sandbox's image or network changed: applies when it next starts");
                }
                let reachable = have.reachable(&want);
                if have != reachable {
                    self.core.adjust(&name, &have, &reachable).await?;
                }
                if !running {
                    self.core.docker.start_container(&name, None).await.map_err(engine)?;
                }
            }
        }
        self.applied.lock().await.insert(name, want);
        Ok(())
    }

    async fn exec(&self, dep: &DeploymentId, req: ExecRequest, out: &mut OutputSink<'_>) -> Result<ExecOutput> {
        let container = container_name(dep);
        match self.channel(&container).await {
            Some(channel) => channel.run(req, out).await,
            None => exec::once(&self.core.docker, &container, req, out).await,
        }
    }

    async fn stop(&self, dep: &DeploymentId) -> Result<()> {
        self.channels.lock().await.remove(&container_name(dep));
        self.applied.lock().await.remove(&container_name(dep));
        let opts = StopContainerOptionsBuilder::default().t(2).build();
        match self.core.docker.stop_container(&container_name(dep), Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_404(&e) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn destroy(&self, dep: &DeploymentId, keep_workspace: bool) -> Result<()> {
        let container = container_name(dep);
        self.channels.lock().await.remove(&container);
        self.applied.lock().await.remove(&container);
        self.ensuring.lock().await.remove(dep);
        let (volume, _) = self.volume(dep);
        self.core.remove(&container, (!keep_workspace).then_some(volume.as_str())).await?;
        if !keep_workspace {
            self.core.state.release(dep)?;
        }
        Ok(())
    }

    async fn status(&self, dep: &DeploymentId) -> Result<Status> {
        match self.core.docker.inspect_container(&container_name(dep), None).await {
            Ok(c) => {
                Ok(if c.state.and_then(|s| s.running).unwrap_or(false) { Status::Running } else { Status::Stopped })
            }
            Err(e) if is_404(&e) => Ok(Status::Missing),
            Err(e) => Err(engine(e)),
        }
    }

    /// This herm's deployment containers (and unowned ones an older herm made).
    async fn list(&self) -> Result<Vec<DeploymentId>> {
        let filters = HashMap::from([("label".to_owned(), vec![MANAGED.to_owned()])]);
        let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let list = self.core.docker.list_containers(Some(opts)).await.map_err(engine)?;
        Ok(list
            .into_iter()
            .filter(|c| {
                let owner = c.labels.as_ref().and_then(|l| l.get(OWNER));
                owner.is_none_or(|o| *o == self.core.state.owner)
            })
            .filter_map(|c| c.names?.into_iter().next())
            .filter_map(|n| DeploymentId::parse(n.trim_start_matches('/').strip_prefix("herm-")?).ok())
            .collect())
    }

    async fn shutdown(&self) {
        if let Some(p) = &self.pool {
            p.close().await;
        }
    }
}
