//! One client connection to one MCP server through the SDK: connect over streamable HTTP or
//! stdio, list tools (with the allowlist applied), call a tool with `_meta`, and hear
//! `tools/list_changed`.

use super::{CallContext, McpTool, SEPARATOR};
use crate::secrets::Secrets;
use crate::tools::template::{render, secret_names as template_secrets};
use herm_sandbox::jail::StdioSandbox;
use herm_store::vault::SecretValue;
use herm_types::config::{DeploymentSpec, McpServerSpec};
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use zeroize::Zeroizing;

/// Our side of the session: identifies herm and notes list changes.
#[derive(Clone)]
pub(super) struct Handler {
    stale: Arc<AtomicBool>,
}

impl ClientHandler for Handler {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.stale.store(true, Ordering::Release);
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("herm", env!("CARGO_PKG_VERSION")))
    }
}

/// A connected session; dropping it closes the session (and ends a stdio server's process).
pub(super) struct Live {
    service: RunningService<RoleClient, Handler>,
}

impl Live {
    pub fn peer(&self) -> Peer<RoleClient> {
        self.service.peer().clone()
    }

    pub fn is_closed(&self) -> bool {
        self.service.is_closed() || self.service.peer().is_transport_closed()
    }
}

/// Every secret name the server's headers and env use.
pub(super) fn secret_names(s: &McpServerSpec) -> Vec<String> {
    let mut v: Vec<String> =
        s.headers.iter().flatten().chain(s.env.iter().flatten()).flat_map(|(_, t)| template_secrets(t)).collect();
    v.sort();
    v.dedup();
    v
}

/// The secret values the server needs, or which one is missing.
pub(super) async fn resolve_secrets(
    secrets: &Secrets,
    spec: &DeploymentSpec,
    s: &McpServerSpec,
) -> Result<BTreeMap<String, SecretValue>, String> {
    let needed = secret_names(s);
    let values = secrets.resolve(spec, &needed).await.map_err(|e| format!("secrets could not be read: {e}"))?;
    match needed.iter().find(|n| !values.contains_key(*n)) {
        Some(missing) => {
            Err(format!("secret `{missing}` is not available to this deployment (unknown name or deleted reference)"))
        }
        None => Ok(values),
    }
}

/// Fails when a secret the server uses was deleted since it connected.
pub(super) async fn check_secrets(secrets: &Secrets, spec: &DeploymentSpec, s: &McpServerSpec) -> Result<(), String> {
    if secret_names(s).is_empty() {
        return Ok(());
    }
    resolve_secrets(secrets, spec, s).await.map(|_| ())
}

/// A header or env value with its secrets filled in; wiped from memory when dropped.
fn fill(t: &str, values: &BTreeMap<String, SecretValue>) -> Result<Zeroizing<String>, String> {
    render(t, &Value::Null, values, |s| s.to_owned()).map(Zeroizing::new).map_err(|e| e.to_string())
}

pub(super) async fn connect(
    s: &McpServerSpec,
    values: &BTreeMap<String, SecretValue>,
    sandbox: &StdioSandbox,
    http: &reqwest::Client,
    stale: Arc<AtomicBool>,
    home: &std::path::Path,
) -> Result<Live, String> {
    let handler = Handler { stale };
    let service = if let Some(url) = &s.url {
        let mut headers = HashMap::new();
        for (k, v) in s.headers.iter().flatten() {
            let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("invalid header name `{k}`"))?;
            let mut value = http::HeaderValue::from_str(&fill(v, values)?)
                .map_err(|_| format!("header `{k}` has characters a header cannot carry"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
            .custom_headers(headers)
            .reinit_on_expired_session(true);
        let transport = StreamableHttpClientTransport::with_client(http.clone(), config);
        // The error text names neither headers nor their values.
        handler.serve(transport).await.map_err(|e| describe(&e.to_string()))?
    } else {
        let command = s.command.as_deref().unwrap_or_default();
        let mut env = BTreeMap::new();
        for (k, v) in s.env.iter().flatten() {
            env.insert(k.clone(), fill(v, values)?);
        }
        let cmd = sandbox.command(home, command, s.args.as_deref().unwrap_or_default(), &env)?;
        let (transport, _stderr) = TokioChildProcess::builder(cmd)
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("`{command}` could not be started: {e}"))?;
        handler.serve(transport).await.map_err(|e| describe(&e.to_string()))?
    };
    Ok(Live { service })
}

/// Keeps an SDK error message short and free of request details.
fn describe(e: &str) -> String {
    let first = e.lines().next().unwrap_or(e);
    let cut: String = first.chars().take(300).collect();
    format!("could not connect: {cut}")
}

/// Lists the server's tools, keeping only the allowlisted ones.
pub(super) async fn list_tools(
    peer: &Peer<RoleClient>,
    s: &McpServerSpec,
    timeout: Duration,
) -> Result<Vec<McpTool>, String> {
    let all = match tokio::time::timeout(timeout, peer.list_all_tools()).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return Err(format!("tools/list failed: {e}")),
        Err(_) => return Err(format!("tools/list got no answer within {} s", timeout.as_secs())),
    };
    let mut out = Vec::new();
    for t in all {
        if let Some(allow) = &s.tools
            && !allow.iter().any(|a| a == t.name.as_ref())
        {
            continue;
        }
        let name = format!("{}{SEPARATOR}{}", s.name, t.name);
        if !herm_types::config::valid_tool_name(&name) {
            tracing::warn!(server = %s.name, tool = %t.name, "MCP tool skipped: its name cannot be offered to a model");
            continue;
        }
        let schema = Value::Object(t.input_schema.as_ref().clone());
        let validator = match jsonschema::validator_for(&schema) {
            Ok(v) => Arc::new(v),
            Err(e) => {
                tracing::warn!(server = %s.name, tool = %t.name, error = %e, "MCP tool skipped: invalid input schema");
                continue;
            }
        };
        let hints = t.annotations.as_ref();
        out.push(McpTool {
            server: s.name.clone(),
            remote: t.name.to_string(),
            name,
            description: t.description.as_deref().unwrap_or_default().to_owned(),
            input_schema: schema.into(),
            repeat_safe: hints.is_some_and(|a| a.read_only_hint == Some(true) || a.idempotent_hint == Some(true)),
            validator,
        });
    }
    Ok(out)
}

pub(super) enum CallError {
    Timeout,
    /// The server answered with a protocol error.
    Tool(String),
    /// The connection failed.
    Transport(String),
}

pub(super) async fn call(
    peer: &Peer<RoleClient>,
    tool: &str,
    args: &Value,
    ctx: &CallContext<'_>,
    timeout: Duration,
) -> Result<CallToolResult, CallError> {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    params.arguments = args.as_object().cloned();
    let meta: Map<String, Value> = match json!({
        "customer_id": ctx.customer_id,
        "deployment_id": ctx.deployment_id.as_str(),
        "thread_id": ctx.thread_id,
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    params.meta = Some(meta.into());
    match tokio::time::timeout(timeout, peer.call_tool(params)).await {
        Err(_) => Err(CallError::Timeout),
        Ok(Ok(r)) => Ok(r),
        Ok(Err(rmcp::ServiceError::McpError(e))) => {
            Err(CallError::Tool(format!("the server refused the call: {}", e.message)))
        }
        Ok(Err(rmcp::ServiceError::Timeout { .. })) => Err(CallError::Timeout),
        Ok(Err(e)) => Err(CallError::Transport(e.to_string())),
    }
}
