//! `herm serve`: open the data directory, the vault and the store, make sure an admin key
//! exists, resume unfinished runs, and serve HTTP until SIGINT/SIGTERM.

use crate::config::Config;
use anyhow::Context;
use herm_engine::access::generate_key;
use herm_engine::providers::Providers;
use herm_engine::{Engine, EngineOptions};
use herm_server::AppState;
use herm_store::Store;
use herm_store::bus::Bus;
use herm_store::postgres::PostgresStore;
use herm_store::sqlite::SqliteStore;
use herm_store::vault::{MasterKey, Vault};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Everything `serve` opened, for `serve` itself and for the benchmark.
pub struct Opened {
    pub engine: Engine,
    /// Held for the life of the process: the data directory is ours alone.
    _lock: File,
}

pub async fn open(
    cfg: &Config,
    opts: EngineOptions,
    providers: impl FnOnce(Providers) -> Providers,
) -> anyhow::Result<Opened> {
    let dir = &cfg.storage.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let lock = File::create(dir.join("herm.lock"))?;
    lock.try_lock().map_err(|_| anyhow::anyhow!("another herm process is using {}", dir.display()))?;
    let key = match std::env::var("HERM_MASTER_KEY") {
        Ok(hex) => MasterKey::from_hex(&hex).context("HERM_MASTER_KEY must be 64 hex characters")?,
        Err(_) => {
            let path = cfg.storage.master_key_file.clone().unwrap_or_else(|| dir.join("master.key"));
            MasterKey::load_or_create(&path)
                .with_context(|| format!("cannot read or create the master key {}", path.display()))?
        }
    };
    let vault = Arc::new(Vault::new(&key)?);
    let bus = Bus::new();
    let store: Arc<dyn Store> = match &cfg.storage.database_url {
        None => Arc::new(SqliteStore::open(&dir.join("herm.db"), bus.clone()).context("cannot open the database")?),
        Some(url) => Arc::new(shared_store(cfg, url, &vault, bus.clone()).await?),
    };
    let p = providers(Providers::new(store.clone(), cfg.providers.clone(), opts.http.clone()));
    let sb = sandbox(cfg, &opts.sandbox).await?;
    let engine = Engine::new(store, bus, vault, p, sb, opts);
    Ok(Opened { engine, _lock: lock })
}

/// Opens the PostgreSQL store many nodes share, after checking that this node may join:
/// its master key opens the vault, and no other live node holds its node id.
async fn shared_store(cfg: &Config, url: &str, vault: &Vault, bus: Bus) -> anyhow::Result<PostgresStore> {
    // The URL holds a password: errors name the database's answer, never the URL.
    let store = PostgresStore::connect(url, bus).await.context("cannot open the PostgreSQL database")?;
    match store.check_master_key(vault).await {
        Err(herm_store::Error::Crypto) => anyhow::bail!(
            "this node's master key cannot open the shared vault: every node of one database must hold the same key \
             (storage.master_key_file or HERM_MASTER_KEY)"
        ),
        r => r.context("cannot check the master key against the database")?,
    }
    let incarnation = node_identity(&cfg.storage.data_dir)?;
    let stale = std::time::Duration::from_secs(cfg.engine.lease_ttl_secs.max(1));
    store.claim_node(&cfg.engine.node_id, &incarnation, stale).await.map_err(|e| match e {
        herm_store::Error::Conflict(why) => anyhow::anyhow!(why),
        e => anyhow::Error::new(e).context("cannot register this node"),
    })?;
    tracing::info!(node = %cfg.engine.node_id, "joined the shared database");
    Ok(store)
}

/// This node's lasting identity, kept in its data directory: the same node restarted
/// presents it again and takes its node id back at once.
fn node_identity(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("node.identity");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => {
            let id = format!("{:032x}", rand::random::<u128>());
            std::fs::write(&path, &id).with_context(|| format!("cannot write {}", path.display()))?;
            Ok(id)
        }
    }
}

/// The sandbox backend the configuration asks for.
async fn sandbox(
    cfg: &Config,
    defaults: &herm_engine::SandboxDefaults,
) -> anyhow::Result<Option<Arc<dyn herm_sandbox::Sandbox>>> {
    let s = &cfg.sandbox;
    let docker = || {
        herm_sandbox::docker::DockerSandbox::connect(herm_sandbox::docker::DockerOptions {
            state_dir: cfg.storage.data_dir.join("docker"),
            pool_size: s.pool_size,
            // What a deployment gets when it chooses nothing. (Changing the network of a
            // taken container costs the engine 50–100 ms; the limits, a few.)
            pool_config: herm_sandbox::SandboxConfig {
                image: defaults.image.clone(),
                network: true,
                memory_mb: defaults.memory_mb,
                cpus: defaults.cpus,
                pids_limit: defaults.pids_limit,
            },
        })
    };
    let namespaces = || {
        let n = herm_sandbox::namespaces::NamespacesSandbox::new(&cfg.storage.data_dir.join("sandboxes"))?;
        match &s.shared_workspaces {
            Some(dir) => n.with_shared_workspaces(dir),
            None => Ok(n),
        }
    };
    if s.shared_workspaces.is_some() && matches!(s.backend.as_str(), "docker" | "auto") {
        anyhow::bail!(
            "sandbox.shared_workspaces needs backend = \"namespaces\": the Docker backend keeps each workspace in a \
             volume of its node's engine"
        );
    }
    match s.backend.as_str() {
        "none" => Ok(None),
        "docker" => Ok(Some(Arc::new(docker().await.context("the Docker engine does not answer")?))),
        "namespaces" => Ok(Some(Arc::new(namespaces()?))),
        "auto" => match docker().await {
            Ok(d) => Ok(Some(Arc::new(d))),
            Err(e) => match namespaces() {
                Ok(n) => {
                    tracing::info!(docker = %e, "no Docker engine answers: using the namespaces sandbox");
                    Ok(Some(Arc::new(n)))
                }
                Err(n) => {
                    tracing::warn!(docker = %e, namespaces = %n, "no sandbox backend: deployments run without sandbox tools");
                    Ok(None)
                }
            },
        },
        other => anyhow::bail!("unknown sandbox.backend `{other}` (expected auto, docker, namespaces or none)"),
    }
}

/// Makes sure an admin key exists: `HERM_ADMIN_KEY` if given (made live again even if it
/// was revoked, so an operator can always get back in), else a new one printed once.
async fn bootstrap_admin(engine: &Engine) -> anyhow::Result<()> {
    match std::env::var("HERM_ADMIN_KEY") {
        Ok(k) => {
            anyhow::ensure!(k.len() >= 16, "HERM_ADMIN_KEY must be at least 16 characters");
            engine.ensure_admin_key(&k).await?;
        }
        Err(_) if engine.list_api_keys().await?.iter().all(|k| k.revoked_at.is_some()) => {
            let k = generate_key();
            engine.ensure_admin_key(&k).await?;
            // Printed once, on the terminal of the operator who started herm; never logged.
            println!("admin API key (shown once, keep it safe): {k}");
        }
        Err(_) => {}
    }
    Ok(())
}

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let metrics = if cfg.telemetry.metrics { crate::telemetry::install_metrics() } else { None };
    let traces = crate::telemetry::install_tracing(&cfg.trace_export()).context("cannot set up the OTLP exporter")?;
    let opened = open(&cfg, cfg.engine_options(), |p| p).await?;
    bootstrap_admin(&opened.engine).await?;
    // Before the engine starts its timers: the facade fires its own (scheduled deployments).
    let cma = herm_cma::Facade::new(opened.engine.clone(), cfg.anthropic.options());
    opened.engine.start().await?;
    let listener = tokio::net::TcpListener::bind(&cfg.server.addr)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.server.addr))?;
    let addr = listener.local_addr()?;
    println!("herm listening on http://{addr}");
    if let Some(p) = &cfg.engine.test_clock_file {
        tracing::warn!(file = %p.display(), "timers and schedules follow a test clock file, not the system clock");
    }
    tracing::info!(%addr, data_dir = %Path::new(&cfg.storage.data_dir).display(), "herm started");
    let shutdown = CancellationToken::new();
    let state = AppState { engine: opened.engine.clone(), shutdown: shutdown.clone(), metrics, cma };
    let stop = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    herm_server::serve(listener, state).await?;
    opened.engine.shutdown().await;
    if let Some(p) = traces
        && let Err(e) = p.shutdown()
    {
        tracing::warn!(error = %e, "spans could not all be exported at shutdown");
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
