//! A container's settings as the engine holds them (image, limits, network) and how a running
//! container is brought to a deployment's current ones: limits by `docker update`, the
//! network by connecting or disconnecting it, both live. A new image needs a new container,
//! which is made when the sandbox next starts (never under a running command); the
//! workspace volume stays.

use super::{Core, engine};
use crate::{Result, SandboxConfig};
use bollard::models::ContainerInspectResponse;

/// What `ensure` compares: the settings a container has, or should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) image: String,
    pub(crate) memory: i64,
    pub(crate) nano_cpus: i64,
    pub(crate) pids: i64,
    pub(crate) network: bool,
    /// Created with no network at all (`none`): it cannot be connected later.
    pub(crate) fixed_off: bool,
}

impl Settings {
    pub(crate) fn of(cfg: &SandboxConfig) -> Self {
        Self {
            image: cfg.image.clone(),
            memory: (cfg.memory_mb * 1024 * 1024) as i64,
            nano_cpus: (cfg.cpus * 1e9) as i64,
            pids: cfg.pids_limit,
            network: cfg.network,
            fixed_off: false,
        }
    }

    /// The settings of an inspected container; `network` is the sandbox network's id.
    pub(crate) fn inspected(c: &ContainerInspectResponse, network: &str) -> Self {
        let host = c.host_config.as_ref();
        let attached = c.network_settings.as_ref().and_then(|n| n.networks.as_ref());
        Self {
            image: c.config.as_ref().and_then(|c| c.image.clone()).unwrap_or_default(),
            memory: host.and_then(|h| h.memory).unwrap_or_default(),
            nano_cpus: host.and_then(|h| h.nano_cpus).unwrap_or_default(),
            pids: host.and_then(|h| h.pids_limit).unwrap_or_default(),
            network: attached.is_some_and(|m| m.values().any(|e| e.network_id.as_deref() == Some(network))),
            fixed_off: host.and_then(|h| h.network_mode.as_deref()) == Some("none"),
        }
    }

    /// Whether only a new container can have `want`: another image, or a network for a
    /// container made without one.
    pub(crate) fn needs_new(&self, want: &Settings) -> bool {
        self.image != want.image || (want.network && self.fixed_off)
    }

    /// `want` as far as this container can have it without being made again.
    pub(crate) fn reachable(&self, want: &Settings) -> Settings {
        Settings { network: want.network && !self.fixed_off, fixed_off: self.fixed_off, ..want.clone() }
    }

    fn limits(&self) -> (i64, i64, i64) {
        (self.memory, self.nano_cpus, self.pids)
    }
}

impl Core {
    /// Sets a container that has `from` to the limits and network of `to`.
    pub(crate) async fn adjust(&self, name: &str, from: &Settings, to: &Settings) -> Result<()> {
        if from.limits() != to.limits() {
            let body = bollard::models::ContainerUpdateBody {
                memory: Some(to.memory),
                memory_swap: Some(to.memory),
                nano_cpus: Some(to.nano_cpus),
                pids_limit: Some(to.pids),
                ..Default::default()
            };
            self.docker.update_container(name, body).await.map_err(engine)?;
        }
        match (from.network, to.network) {
            (true, false) => {
                let req = bollard::models::NetworkDisconnectRequest { container: name.to_owned(), force: Some(true) };
                self.docker.disconnect_network(&self.network, req).await.map_err(engine)?;
            }
            (false, true) => {
                let req = bollard::models::NetworkConnectRequest { container: name.to_owned(), ..Default::default() };
                self.docker.connect_network(&self.network, req).await.map_err(engine)?;
            }
            _ => {}
        }
        Ok(())
    }
}
