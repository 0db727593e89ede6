//! MCP servers as tool sources, behind our own small interface so the SDK (rmcp) stays in
//! this module. One [`McpHub`] per engine keeps a live client per deployment and server:
//! connected on first use, its tool list cached (and refreshed on `tools/list_changed`),
//! reconnected when the server went away, closed after an idle period or when the
//! deployment's server configuration changes.
//!
//! Invariants:
//! - Servers run outside the agent's sandbox: HTTP servers are called from herm's process,
//!   stdio servers run as herm's children in a jail of their own (`herm_sandbox::jail`).
//! - Secret references in `headers`/`env` resolve at connect time, host-side; a call whose
//!   referenced secret no longer exists fails with a clear error before anything is sent.
//! - Arguments are checked against the tool's JSON Schema before a call is made.
//! - Nothing here blocks a run for long: connects and calls have time limits, and a server
//!   that failed is not retried for a short while (its last known tools stay offered and
//!   their calls fail fast with the reason).

mod conn;
mod result;
mod source;

pub use source::McpTools;

use crate::secrets::Secrets;
use crate::tools::ToolOutput;
use conn::Live;
use herm_types::DeploymentId;
use herm_types::config::McpServerSpec;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Separator between the server name and the tool name in the names the model sees.
pub const SEPARATOR: &str = "__";

/// Settings of the MCP client.
#[derive(Clone, Debug)]
pub struct McpOptions {
    /// Longest wait for a server to connect and list its tools.
    pub connect_timeout: Duration,
    /// Longest a tool call may take.
    pub call_timeout: Duration,
    /// After a failed connect, how long calls fail fast before the next attempt.
    pub retry_after: Duration,
    /// A server neither listed nor called this long is closed (a stdio server's process ends).
    pub idle_close: Duration,
    pub stdio: herm_sandbox::jail::StdioSandbox,
}

impl Default for McpOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(15),
            call_timeout: Duration::from_secs(120),
            retry_after: Duration::from_secs(5),
            idle_close: Duration::from_secs(600),
            stdio: herm_sandbox::jail::StdioSandbox::default(),
        }
    }
}

/// One tool of an MCP server, as offered to the model.
#[derive(Clone, Debug)]
pub struct McpTool {
    pub server: String,
    /// The name the server knows it by.
    pub remote: String,
    /// `<server>__<tool>`, the name the model sees.
    pub name: String,
    pub description: String,
    pub input_schema: std::sync::Arc<Value>,
    /// The server says it has no effects (`readOnlyHint`) or repeats safely (`idempotentHint`).
    pub repeat_safe: bool,
    pub validator: Arc<jsonschema::Validator>,
}

/// What a deployment's servers offer right now.
#[derive(Default)]
pub struct Listing {
    pub tools: Vec<McpTool>,
    /// Servers with no tools to offer, and why.
    pub unavailable: Vec<(String, String)>,
}

/// A call's outcome; `unavailable` names the server and the reason when the server itself
/// could not be reached (the caller records it as an event).
pub struct CallOutcome {
    pub output: ToolOutput,
    pub unavailable: Option<(String, String)>,
    /// Images the tool returned: (media type, base64).
    pub images: Vec<(String, String)>,
}

/// Who a call is made for: sent in the request's `_meta`.
pub struct CallContext<'a> {
    pub customer_id: &'a str,
    pub deployment_id: &'a DeploymentId,
    pub thread_id: &'a str,
}

#[derive(Clone)]
pub struct McpHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    opts: McpOptions,
    secrets: Secrets,
    http: reqwest::Client,
    servers: Mutex<HashMap<(DeploymentId, String), Arc<Server>>>,
}

/// One configured server of one deployment.
struct Server {
    spec: McpServerSpec,
    /// A stdio server's private home directory.
    home: std::path::PathBuf,
    /// The spec and the secret references it used: a change makes a new `Server`.
    fingerprint: String,
    /// The connection; the async mutex also serializes connection attempts.
    live: tokio::sync::Mutex<Option<Live>>,
    tools: Mutex<Option<Arc<Vec<McpTool>>>>,
    /// Set by the server's `tools/list_changed` notification.
    stale: Arc<AtomicBool>,
    failure: Mutex<Option<(Instant, String)>>,
    last_used: Mutex<Instant>,
}

impl McpHub {
    pub fn new(opts: McpOptions, secrets: Secrets, http: reqwest::Client) -> Self {
        Self { inner: Arc::new(HubInner { opts, secrets, http, servers: Mutex::new(HashMap::new()) }) }
    }

    /// The tools of every MCP server of the deployment (connecting where needed).
    pub async fn list(&self, dep: &DeploymentId, spec: &herm_types::config::DeploymentSpec) -> Listing {
        self.prune(dep, &spec.mcp_servers);
        let lookups = spec.mcp_servers.iter().map(|s| self.server_tools(dep, spec, s));
        let mut out = Listing::default();
        for (s, r) in spec.mcp_servers.iter().zip(futures::future::join_all(lookups).await) {
            match r {
                Ok(t) => out.tools.extend(t.iter().cloned()),
                Err(e) => out.unavailable.push((s.name.clone(), e)),
            }
        }
        out
    }

    /// Calls `tool` of `server` with `args` (checked against the tool's schema first).
    pub async fn call(
        &self,
        spec: &herm_types::config::DeploymentSpec,
        tool: &McpTool,
        args: &Value,
        ctx: CallContext<'_>,
    ) -> CallOutcome {
        let errors: Vec<String> =
            tool.validator.iter_errors(args).map(|e| format!("{}: {e}", e.instance_path())).collect();
        if !errors.is_empty() {
            let msg = format!("invalid arguments for `{}` (the call was not made): {}", tool.name, errors.join("; "));
            return CallOutcome { output: ToolOutput::error(msg), unavailable: None, images: Vec::new() };
        }
        let Some(server_spec) = spec.mcp_servers.iter().find(|s| s.name == tool.server) else {
            let msg = format!("MCP server `{}` is no longer configured", tool.server);
            return CallOutcome { output: ToolOutput::error(msg), unavailable: None, images: Vec::new() };
        };
        let server = self.server(ctx.deployment_id, spec, server_spec);
        *server.last_used.lock() = Instant::now();
        let unavailable = |why: String| {
            let msg = format!("MCP server `{}` is unavailable: {why}", tool.server);
            CallOutcome {
                output: ToolOutput::error(msg),
                unavailable: Some((tool.server.clone(), why)),
                images: Vec::new(),
            }
        };
        let peer = match self.connected(&server, spec).await {
            Ok(p) => p,
            Err(e) => return unavailable(e),
        };
        match conn::call(&peer, &tool.remote, args, &ctx, self.inner.opts.call_timeout).await {
            Ok(r) => CallOutcome { output: result::render(&r), unavailable: None, images: result::images(&r) },
            Err(conn::CallError::Timeout) => CallOutcome {
                output: ToolOutput::error(format!(
                    "`{}` timed out after {} s (the call was cancelled)",
                    tool.name,
                    self.inner.opts.call_timeout.as_secs()
                )),
                unavailable: None,
                images: Vec::new(),
            },
            Err(conn::CallError::Tool(msg)) => {
                CallOutcome { output: ToolOutput::error(msg), unavailable: None, images: Vec::new() }
            }
            Err(conn::CallError::Transport(why)) => {
                // The connection is gone: the next use reconnects.
                *server.live.lock().await = None;
                *server.failure.lock() = Some((Instant::now(), why.clone()));
                unavailable(why)
            }
        }
    }

    /// Closes the connections of a deployment (deleted, or its servers changed).
    pub fn forget(&self, dep: &DeploymentId) {
        self.inner.servers.lock().retain(|(d, _), _| d != dep);
    }

    /// Closes connections unused for longer than `idle_close`.
    pub fn close_idle(&self) {
        let limit = self.inner.opts.idle_close;
        self.inner.servers.lock().retain(|_, s| s.last_used.lock().elapsed() < limit);
    }

    /// Drops servers the deployment no longer has.
    fn prune(&self, dep: &DeploymentId, specs: &[McpServerSpec]) {
        self.inner.servers.lock().retain(|(d, name), _| d != dep || specs.iter().any(|s| &s.name == name));
    }

    fn server(&self, dep: &DeploymentId, spec: &herm_types::config::DeploymentSpec, s: &McpServerSpec) -> Arc<Server> {
        let fingerprint = fingerprint(spec, s);
        let mut map = self.inner.servers.lock();
        let key = (dep.clone(), s.name.clone());
        match map.get(&key) {
            Some(existing) if existing.fingerprint == fingerprint => existing.clone(),
            _ => {
                let fresh = Arc::new(Server {
                    spec: s.clone(),
                    home: self.inner.opts.stdio.state_root.join(dep.as_str()).join(&s.name),
                    fingerprint,
                    live: tokio::sync::Mutex::new(None),
                    tools: Mutex::new(None),
                    stale: Arc::new(AtomicBool::new(false)),
                    failure: Mutex::new(None),
                    last_used: Mutex::new(Instant::now()),
                });
                map.insert(key, fresh.clone());
                fresh
            }
        }
    }

    /// The server's tools: cached, or listed after (re)connecting.
    async fn server_tools(
        &self,
        dep: &DeploymentId,
        spec: &herm_types::config::DeploymentSpec,
        s: &McpServerSpec,
    ) -> Result<Arc<Vec<McpTool>>, String> {
        let server = self.server(dep, spec, s);
        *server.last_used.lock() = Instant::now();
        let cached = server.tools.lock().clone();
        if let Some(t) = &cached
            && !server.stale.load(Ordering::Acquire)
        {
            return Ok(t.clone());
        }
        if let Some((at, why)) = server.failure.lock().clone()
            && at.elapsed() < self.inner.opts.retry_after
        {
            return cached.ok_or(why);
        }
        let listed = async {
            let peer = self.connected(&server, spec).await?;
            server.stale.store(false, Ordering::Release);
            conn::list_tools(&peer, &server.spec, self.inner.opts.connect_timeout).await
        }
        .await;
        match listed {
            Ok(t) => {
                let t = Arc::new(t);
                *server.tools.lock() = Some(t.clone());
                *server.failure.lock() = None;
                Ok(t)
            }
            Err(e) => {
                tracing::warn!(deployment = %dep, server = %s.name, error = %e, "MCP server unavailable");
                *server.failure.lock() = Some((Instant::now(), e.clone()));
                cached.ok_or(e)
            }
        }
    }

    /// A live connection to the server, made now if there is none (or it closed).
    async fn connected(
        &self,
        server: &Server,
        spec: &herm_types::config::DeploymentSpec,
    ) -> Result<rmcp::Peer<rmcp::RoleClient>, String> {
        let mut live = server.live.lock().await;
        if let Some(l) = live.as_ref()
            && !l.is_closed()
        {
            // A deleted secret fails the call even while a connection made with it lives.
            conn::check_secrets(&self.inner.secrets, spec, &server.spec).await?;
            return Ok(l.peer());
        }
        *live = None;
        let values = conn::resolve_secrets(&self.inner.secrets, spec, &server.spec).await?;
        let made = tokio::time::timeout(
            self.inner.opts.connect_timeout,
            conn::connect(
                &server.spec,
                &values,
                &self.inner.opts.stdio,
                &self.inner.http,
                server.stale.clone(),
                &server.home,
            ),
        )
        .await;
        let l = match made {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                *server.failure.lock() = Some((Instant::now(), e.clone()));
                return Err(e);
            }
            Err(_) => {
                let e = format!("no answer within {} s", self.inner.opts.connect_timeout.as_secs());
                *server.failure.lock() = Some((Instant::now(), e.clone()));
                return Err(e);
            }
        };
        let peer = l.peer();
        *live = Some(l);
        // A new connection may see a new tool list.
        server.stale.store(true, Ordering::Release);
        Ok(peer)
    }
}

/// Identifies a server's configuration, including which secrets it references.
fn fingerprint(spec: &herm_types::config::DeploymentSpec, s: &McpServerSpec) -> String {
    let refs: Vec<(String, Option<&String>)> = conn::secret_names(s)
        .into_iter()
        .map(|n| {
            let r = spec.secrets.get(&n);
            (n, r)
        })
        .collect();
    format!("{}|{}", serde_json::to_string(s).unwrap_or_default(), serde_json::to_string(&refs).unwrap_or_default())
}
