//! The one typed configuration tree: defaults, then the TOML file, then `HERM_…` environment
//! variables (`HERM_SERVER__ADDR`, `HERM_ENGINE__LEASE_TTL_SECS`, …), then command-line flags.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use herm_types::config::ProviderSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub engine: EngineConfig,
    pub sandbox: SandboxConfig,
    pub mcp: McpConfig,
    pub memory: MemoryConfig,
    pub attachments: AttachmentsConfig,
    pub webhooks: WebhooksConfig,
    pub telemetry: TelemetryConfig,
    pub anthropic: AnthropicConfig,
    /// Providers by name; models are then named `{name}/{model}`.
    pub providers: BTreeMap<String, ProviderSpec>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port (printed at start).
    pub addr: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Holds the SQLite database, the master key file and the lock file.
    pub data_dir: PathBuf,
    /// Master key file; default `<data_dir>/master.key`. `HERM_MASTER_KEY` (64 hex) wins.
    /// Nodes sharing one database must all hold the same key.
    pub master_key_file: Option<PathBuf>,
    /// `postgres://user:password@host:port/database`: keep the log, configuration and vault
    /// in PostgreSQL (many nodes may share it) instead of the data directory's SQLite. It
    /// holds a password: never logged.
    pub database_url: Option<String>,
}

/// `[memory]`: what a run is shown of its deployment's memory, when idle threads are
/// observed and idle deployments dream, and when conversations are compacted.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Tokens of memory placed in a run's system prompt at most.
    pub prompt_tokens: u64,
    /// A thread idle this long after a run is observed.
    pub observe_after_secs: u64,
    /// A deployment idle this long with new memory material dreams (`features.dreaming`).
    pub dream_after_secs: u64,
    /// Compact when the next request would pass this share of the model's window (0.1–0.95).
    pub compact_at: f64,
    /// Share of the window kept verbatim by a compaction (0.05–0.8).
    pub keep_recent: f64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        let d = herm_engine::memory::load::MemoryOptions::default();
        Self {
            prompt_tokens: d.prompt_tokens,
            observe_after_secs: d.observe_after.as_secs(),
            dream_after_secs: d.dream_after.as_secs(),
            compact_at: d.compact_at,
            keep_recent: d.keep_recent,
        }
    }
}

/// `[attachments]`: how attachments sent as URLs are fetched.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttachmentsConfig {
    /// Fetch from loopback and private addresses too (local development only: it lets a
    /// message make herm read its own network).
    pub allow_private_urls: bool,
    /// Longest a fetch may take, headers and body.
    pub fetch_timeout_secs: u64,
}

impl Default for AttachmentsConfig {
    fn default() -> Self {
        let d = herm_engine::attachments::fetch::FetchOptions::default();
        Self { allow_private_urls: d.allow_private, fetch_timeout_secs: d.timeout.as_secs() }
    }
}

/// `[telemetry]`: metrics and traces. Traces are off unless an OTLP endpoint is set here or in
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Serve `GET /metrics` (admin scope).
    pub metrics: bool,
    /// The OTLP collector's base URL (`http://collector:4318`; `:4317` for gRPC).
    pub otlp_endpoint: Option<String>,
    /// `http/protobuf` (default) or `grpc`; `OTEL_EXPORTER_OTLP_PROTOCOL` when unset.
    pub otlp_protocol: Option<String>,
    /// The `service.name` of herm's spans (`OTEL_SERVICE_NAME` wins).
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { metrics: true, otlp_endpoint: None, otlp_protocol: None, service_name: "herm".into() }
    }
}

impl Config {
    pub fn trace_export(&self) -> crate::telemetry::TraceExport {
        crate::telemetry::TraceExport {
            endpoint: self.telemetry.otlp_endpoint.clone(),
            protocol: self.telemetry.otlp_protocol.clone(),
            service_name: self.telemetry.service_name.clone(),
            node_id: self.engine.node_id.clone(),
        }
    }
}

/// `[webhooks]`: how deliveries to the operator's endpoints are retried.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// The wait before the second attempt; it doubles each time, up to an hour.
    pub retry_base_ms: u64,
    /// Attempts before a delivery is given up as `failed`.
    pub max_attempts: u32,
    /// Longest wait for an endpoint's answer.
    pub timeout_secs: u64,
}

/// The Claude Managed Agents API under `/anthropic`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnthropicConfig {
    /// The provider a bare model id (`claude-sonnet-4-5`) resolves through.
    pub default_provider: String,
    /// Sessions whose `metadata` has this key share one deployment per agent version,
    /// environment and key value (memory and files persist across them). Unset: one
    /// deployment per session, as in CMA.
    pub share_by_metadata_key: Option<String>,
    /// How long sending to a new session waits for its sandbox.
    pub ready_timeout_secs: u64,
}

impl Default for AnthropicConfig {
    fn default() -> Self {
        let d = herm_cma::Options::default();
        Self {
            default_provider: d.default_provider,
            share_by_metadata_key: d.share_by_metadata_key,
            ready_timeout_secs: d.ready_timeout.as_secs(),
        }
    }
}

impl AnthropicConfig {
    pub fn options(&self) -> herm_cma::Options {
        herm_cma::Options {
            default_provider: self.default_provider.clone(),
            share_by_metadata_key: self.share_by_metadata_key.clone(),
            ready_timeout: std::time::Duration::from_secs(self.ready_timeout_secs),
        }
    }
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        let d = herm_engine::webhooks::WebhookOptions::default();
        Self {
            retry_base_ms: d.retry_base.as_millis() as u64,
            max_attempts: d.max_attempts,
            timeout_secs: d.timeout.as_secs(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    pub node_id: String,
    pub lease_ttl_secs: u64,
    pub scan_interval_ms: u64,
    pub max_tokens: u32,
    pub default_model: Option<String>,
    pub default_max_steps: u32,
    /// Longest silence inside a model stream before the call counts as stalled.
    pub model_idle_timeout_secs: u64,
    pub model_connect_timeout_secs: u64,
    pub retry_max_attempts: u32,
    pub retry_base_delay_ms: u64,
    pub retry_max_delay_ms: u64,
    /// For tests only: timers and schedules read the current time from this file (RFC 3339)
    /// instead of the system clock.
    pub test_clock_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// `auto` (Docker when an engine answers, else namespaces when bubblewrap is installed,
    /// else none), `docker`, `namespaces`, or `none`.
    pub backend: String,
    pub image: String,
    pub memory_mb: u64,
    pub cpus: f64,
    pub pids_limit: i64,
    pub shell_timeout_secs: u64,
    /// Stop a sandbox unused for this long (it starts again on demand).
    pub idle_stop_secs: u64,
    /// Docker: containers kept started and answering for the next new deployments (built
    /// with `image`, network on and these limits; 0 turns the pool off).
    pub pool_size: usize,
    /// A directory on storage every node mounts at this same path (NFS, CephFS, EFS…):
    /// deployments' workspaces live there, so a run that moves to another node (its node
    /// died) finds its files. Namespaces backend; without it each node keeps its own.
    pub shared_workspaces: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// How stdio MCP servers are confined: `auto` (bubblewrap where it works, else a plain
    /// child process with a cleared environment), `bubblewrap`, or `none`.
    pub stdio_sandbox: String,
    /// More host paths stdio servers must not see (herm's data directory, the master key,
    /// `/run` and `/var/lib/docker` are always hidden).
    pub hidden_paths: Vec<PathBuf>,
    pub connect_timeout_secs: u64,
    pub call_timeout_secs: u64,
    /// After a failed connect, calls fail fast this long before the next attempt.
    pub retry_after_secs: u64,
    /// Close a server connection unused this long (a stdio server's process ends).
    pub idle_close_secs: u64,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            stdio_sandbox: "auto".into(),
            hidden_paths: Vec::new(),
            connect_timeout_secs: 15,
            call_timeout_secs: 120,
            retry_after_secs: 5,
            idle_close_secs: 600,
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            backend: "auto".into(),
            image: "herm-sandbox:default".into(),
            memory_mb: 1024,
            cpus: 1.0,
            pids_limit: 256,
            shell_timeout_secs: 120,
            idle_stop_secs: 900,
            pool_size: 2,
            shared_workspaces: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig { addr: "127.0.0.1:8080".into() },
            storage: StorageConfig { data_dir: "herm-data".into(), master_key_file: None, database_url: None },
            engine: EngineConfig::default(),
            sandbox: SandboxConfig::default(),
            mcp: McpConfig::default(),
            memory: MemoryConfig::default(),
            attachments: AttachmentsConfig::default(),
            webhooks: WebhooksConfig::default(),
            telemetry: TelemetryConfig::default(),
            anthropic: AnthropicConfig::default(),
            providers: BTreeMap::new(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Config::default().server
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Config::default().storage
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            node_id: "local".into(),
            lease_ttl_secs: 30,
            scan_interval_ms: 2000,
            max_tokens: 4096,
            default_model: None,
            default_max_steps: 100,
            model_idle_timeout_secs: 120,
            model_connect_timeout_secs: 10,
            retry_max_attempts: 4,
            retry_base_delay_ms: 500,
            retry_max_delay_ms: 20_000,
            test_clock_file: None,
        }
    }
}

impl Config {
    pub fn load(file: Option<&PathBuf>) -> anyhow::Result<Self> {
        let mut f = Figment::from(Serialized::defaults(Config::default()));
        if let Some(p) = file {
            anyhow::ensure!(p.exists(), "config file {} does not exist", p.display());
            f = f.merge(Toml::file(p));
        }
        // Only nested keys (`HERM_SERVER__ADDR`) belong to the tree; flat variables such as
        // HERM_ADMIN_KEY or HERM_URL are read elsewhere.
        let env = Env::prefixed("HERM_").filter(|k| k.as_str().contains("__")).split("__");
        let config: Self = f.merge(env).extract()?;
        for (name, p) in &config.providers {
            if let Some(e) = p.validate().first() {
                anyhow::bail!("providers.{name}.{}: {}", e.path, e.message);
            }
        }
        Ok(config)
    }

    pub fn engine_options(&self) -> herm_engine::EngineOptions {
        use std::time::Duration;
        let e = &self.engine;
        herm_engine::EngineOptions {
            node_id: e.node_id.clone(),
            reclaim_own_leases: true,
            lease_ttl: Duration::from_secs(e.lease_ttl_secs.max(1)),
            scan_interval: Duration::from_millis(e.scan_interval_ms.max(50)),
            retry: herm_llm::RetryPolicy {
                max_attempts: e.retry_max_attempts.max(1),
                base_delay: Duration::from_millis(e.retry_base_delay_ms),
                max_delay: Duration::from_millis(e.retry_max_delay_ms),
            },
            http: herm_llm::HttpSettings {
                connect_timeout: Duration::from_secs(e.model_connect_timeout_secs.max(1)),
                idle_timeout: Duration::from_secs(e.model_idle_timeout_secs.max(1)),
            },
            max_tokens: e.max_tokens,
            default_model: e.default_model.clone(),
            default_max_steps: e.default_max_steps.max(1),
            sandbox: herm_engine::SandboxDefaults {
                image: self.sandbox.image.clone(),
                memory_mb: self.sandbox.memory_mb.max(16),
                cpus: self.sandbox.cpus.max(0.05),
                pids_limit: self.sandbox.pids_limit.max(8),
                shell_timeout: Duration::from_secs(self.sandbox.shell_timeout_secs.max(1)),
                idle_stop: Duration::from_secs(self.sandbox.idle_stop_secs.max(1)),
            },
            mcp: self.mcp_options(),
            clock: match &e.test_clock_file {
                Some(p) => herm_engine::Clock::File(p.clone()),
                None => herm_engine::Clock::System,
            },
            memory: herm_engine::memory::load::MemoryOptions {
                prompt_tokens: self.memory.prompt_tokens,
                observe_after: Duration::from_secs(self.memory.observe_after_secs.max(1)),
                dream_after: Duration::from_secs(self.memory.dream_after_secs.max(1)),
                compact_at: self.memory.compact_at.clamp(0.1, 0.95),
                keep_recent: self.memory.keep_recent.clamp(0.05, 0.8),
            },
            webhooks: herm_engine::webhooks::WebhookOptions {
                retry_base: Duration::from_millis(self.webhooks.retry_base_ms.max(10)),
                max_attempts: self.webhooks.max_attempts.max(1),
                timeout: Duration::from_secs(self.webhooks.timeout_secs.max(1)),
            },
            fetch: herm_engine::attachments::fetch::FetchOptions {
                allow_private: self.attachments.allow_private_urls,
                timeout: Duration::from_secs(self.attachments.fetch_timeout_secs.max(1)),
            },
        }
    }

    fn mcp_options(&self) -> herm_engine::mcp::McpOptions {
        use herm_sandbox::jail::{Mode, StdioSandbox, bubblewrap_works};
        use std::time::Duration;
        let m = &self.mcp;
        let mode = match m.stdio_sandbox.as_str() {
            "none" => Mode::Plain,
            "bubblewrap" => Mode::Bubblewrap,
            _ if bubblewrap_works() => Mode::Bubblewrap,
            _ => {
                tracing::warn!("bubblewrap does not work here: stdio MCP servers run as plain child processes");
                Mode::Plain
            }
        };
        let data = std::path::absolute(&self.storage.data_dir).unwrap_or_else(|_| self.storage.data_dir.clone());
        let mut hidden = vec![data.clone(), PathBuf::from("/var/lib/docker")];
        hidden.extend(self.storage.master_key_file.iter().cloned());
        hidden.extend(m.hidden_paths.iter().cloned());
        herm_engine::mcp::McpOptions {
            connect_timeout: Duration::from_secs(m.connect_timeout_secs.max(1)),
            call_timeout: Duration::from_secs(m.call_timeout_secs.max(1)),
            retry_after: Duration::from_secs(m.retry_after_secs),
            idle_close: Duration::from_secs(m.idle_close_secs.max(1)),
            stdio: StdioSandbox { mode, hidden, state_root: data.join("mcp") },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example configuration stays loadable as the tree changes.
    #[test]
    fn example_config_loads() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/herm.toml");
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.mcp.stdio_sandbox, "auto");
        assert!(c.providers.contains_key("anthropic"));
    }

    /// And so does the example deployment.
    #[test]
    fn example_deployment_is_valid() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/deployment.yaml");
        let spec: herm_types::config::DeploymentSpec =
            yaml_serde::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(spec.validate().is_empty(), "{:?}", spec.validate());
        assert_eq!(spec.mcp_servers.len(), 2);
    }
}
