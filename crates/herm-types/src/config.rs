//! Deployment configuration (the body of `POST /v1/deployments`) and its validation, plus
//! model provider configuration. Validation here checks shapes and sizes only; checks that
//! need storage (do secret references exist?) happen in the server.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// One field-level validation problem, reported in problem+json `errors`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

/// Limits that keep inputs bounded at the edge.
pub mod limits {
    pub const MAX_NAME: usize = 200;
    pub const MAX_CUSTOMER_ID: usize = 256;
    pub const MAX_SYSTEM_PROMPT: usize = 200_000;
    pub const MAX_MESSAGE: usize = 200_000;
    pub const MAX_MCP_SERVERS: usize = 20;
    pub const MAX_SKILLS: usize = 20;
    pub const MAX_MEMORY_MOUNTS: usize = 8;
    pub const MAX_MOUNT_INSTRUCTIONS: usize = 4096;
    pub const MAX_HTTP_TOOLS: usize = 64;
    pub const MAX_SECRETS: usize = 100;
    pub const MAX_SECRET_VALUE: usize = 64 * 1024;
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxSpec {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default = "yes")]
    pub persistent_filesystem: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default = "network_on")]
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
}

fn yes() -> bool {
    true
}
fn network_on() -> String {
    "on".into()
}

impl Default for SandboxSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            kind: None,
            persistent_filesystem: true,
            image: None,
            network: network_on(),
            cpus: None,
            memory_mb: None,
        }
    }
}

/// An MCP server: streamable HTTP (`url`) or stdio (`command`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
}

/// A skill: a SKILL.md playbook (YAML front matter `name`, `description`, then the body)
/// given inline, fetched from a URL at create/update, or read from a workspace file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillSpec {
    /// Assigned by herm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill_id: Option<String>,
    #[schema(min_length = 1, max_length = 64, pattern = "\\S")]
    pub name: String,
    #[schema(pattern = "^(inline|url|file)$")]
    pub source: String,
    /// From the front matter (for `file` skills, read when a run uses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A declarative connector tool: an HTTP request templated from the tool input and secrets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpToolSpec {
    pub name: String,
    pub description: String,
    #[schema(value_type = Object)]
    pub input_schema: Value,
    pub method: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub repeat_safe: bool,
    /// Per-call timeout; the default is 30 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolPermission {
    AlwaysAllow,
    AlwaysAsk,
    Disabled,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BusyPolicy {
    #[default]
    Steer,
    Queue,
    Interrupt,
    Reject,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Features {
    #[serde(default = "yes")]
    pub memory: bool,
    #[serde(default)]
    pub dreaming: bool,
    #[serde(default = "yes")]
    pub automations: bool,
    #[serde(default = "yes")]
    pub steering: bool,
    #[serde(default)]
    pub filesystem_webhooks: bool,
}

impl Default for Features {
    fn default() -> Self {
        Self { memory: true, dreaming: false, automations: true, steering: true, filesystem_webhooks: false }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_run_steps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_run_cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_daily_cost_usd: Option<f64>,
    /// The most one thread (a conversation, all its runs together) may cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_thread_cost_usd: Option<f64>,
    /// The most tokens one model call may write (overrides the model's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
}

/// The whole configuration of a deployment; also the body of `POST /v1/deployments`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    pub customer_id: String,
    pub name: String,
    pub system_prompt: String,
    #[serde(default = "hermes")]
    pub runtime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub sandbox: SandboxSpec,
    #[serde(default)]
    pub mcp_servers: Vec<McpServerSpec>,
    #[serde(default)]
    pub skills: Vec<SkillSpec>,
    /// Environment name → secret reference (`sec_…`).
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub http_tools: Vec<HttpToolSpec>,
    #[serde(default)]
    pub tool_policies: BTreeMap<String, ToolPermission>,
    #[serde(default)]
    pub busy_policy: BusyPolicy,
    #[serde(default)]
    pub features: Features,
    #[serde(default)]
    pub limits: Limits,
    /// Other deployments' memories this deployment's agent reaches by name with the memory
    /// tools (a shared knowledge base, a team's notes): read, or also changed with
    /// `read_write`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memory_mounts: Vec<MemoryMount>,
}

/// Another deployment's memories, reached by this deployment's agent under `name`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryMount {
    /// The deployment whose memories are mounted (with `features.memory`).
    #[schema(value_type = String)]
    pub deployment_id: crate::DeploymentId,
    /// The store's name for the agent (the memory tools' `store`).
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub name: String,
    #[serde(default)]
    pub access: MountAccess,
    /// Guidance for the agent on this store, placed in its system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub instructions: Option<String>,
}

/// What the agent may do with a mounted store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MountAccess {
    #[default]
    ReadWrite,
    ReadOnly,
}

fn hermes() -> String {
    "hermes".into()
}

/// `PATCH /v1/deployments/{id}`: omitted fields unchanged, arrays replaced whole, `secrets`
/// merged per key with `null` removing a key.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentPatch {
    pub name: Option<String>,
    pub system_prompt: Option<String>,
    pub model: Option<String>,
    pub sandbox: Option<SandboxSpec>,
    pub mcp_servers: Option<Vec<McpServerSpec>>,
    pub skills: Option<Vec<SkillSpec>>,
    pub secrets: Option<BTreeMap<String, Option<String>>>,
    pub http_tools: Option<Vec<HttpToolSpec>>,
    pub tool_policies: Option<BTreeMap<String, ToolPermission>>,
    pub busy_policy: Option<BusyPolicy>,
    pub features: Option<Features>,
    pub limits: Option<Limits>,
    pub memory_mounts: Option<Vec<MemoryMount>>,
}

impl DeploymentSpec {
    /// Applies a patch, returning the new spec (the caller validates it again).
    pub fn patched(&self, p: DeploymentPatch) -> DeploymentSpec {
        let mut s = self.clone();
        if let Some(v) = p.name {
            s.name = v;
        }
        if let Some(v) = p.system_prompt {
            s.system_prompt = v;
        }
        if let Some(v) = p.model {
            s.model = Some(v);
        }
        if let Some(v) = p.sandbox {
            s.sandbox = v;
        }
        if let Some(v) = p.mcp_servers {
            s.mcp_servers = v;
        }
        if let Some(v) = p.skills {
            s.skills = v;
        }
        if let Some(m) = p.secrets {
            for (k, v) in m {
                match v {
                    Some(r) => s.secrets.insert(k, r),
                    None => s.secrets.remove(&k),
                };
            }
        }
        if let Some(v) = p.http_tools {
            s.http_tools = v;
        }
        if let Some(v) = p.tool_policies {
            s.tool_policies = v;
        }
        if let Some(v) = p.busy_policy {
            s.busy_policy = v;
        }
        if let Some(v) = p.features {
            s.features = v;
        }
        if let Some(v) = p.limits {
            s.limits = v;
        }
        if let Some(v) = p.memory_mounts {
            s.memory_mounts = v;
        }
        s
    }

    /// Shape and size checks; every problem is reported, not just the first.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let mut text = |path: &str, v: &str, max: usize, required: bool| {
            if required && v.trim().is_empty() {
                errs.push(FieldError::new(path, "must not be empty"));
            }
            if v.len() > max {
                errs.push(FieldError::new(path, format!("longer than {max} bytes")));
            }
        };
        text("customer_id", &self.customer_id, limits::MAX_CUSTOMER_ID, true);
        text("name", &self.name, limits::MAX_NAME, true);
        text("system_prompt", &self.system_prompt, limits::MAX_SYSTEM_PROMPT, false);
        if self.runtime != "hermes" {
            errs.push(FieldError::new("runtime", "the only runtime is `hermes`"));
        }
        if let Some(m) = &self.model {
            match m.split_once('/') {
                Some((p, n)) if !p.is_empty() && !n.is_empty() => {}
                _ => errs.push(FieldError::new("model", "expected `provider/model`")),
            }
        }
        if !matches!(self.sandbox.network.as_str(), "on" | "off") {
            errs.push(FieldError::new("sandbox.network", "expected `on` or `off`"));
        }
        if let Some(k) = &self.sandbox.kind
            && !matches!(k.as_str(), "docker" | "namespaces")
        {
            errs.push(FieldError::new("sandbox.type", "expected `docker` or `namespaces`"));
        }
        if self.mcp_servers.len() > limits::MAX_MCP_SERVERS {
            errs.push(FieldError::new("mcp_servers", "at most 20 servers"));
        }
        for (i, m) in self.mcp_servers.iter().enumerate() {
            if !valid_tool_name(&m.name) {
                errs.push(FieldError::new(format!("mcp_servers[{i}].name"), NAME_RULE));
            }
            if m.url.is_some() == m.command.is_some() {
                errs.push(FieldError::new(
                    format!("mcp_servers[{i}]"),
                    "exactly one of `url` or `command` is required",
                ));
            }
            if let Some(u) = &m.url
                && !is_http_url(u)
            {
                errs.push(FieldError::new(format!("mcp_servers[{i}].url"), "not an http(s) URL"));
            }
        }
        if self.skills.len() > limits::MAX_SKILLS {
            errs.push(FieldError::new("skills", "at most 20 skills"));
        }
        for (i, s) in self.skills.iter().enumerate() {
            let ok = match s.source.as_str() {
                "inline" => s.content.is_some(),
                "url" => s.url.as_deref().is_some_and(is_http_url),
                "file" => s.path.is_some(),
                _ => false,
            };
            if !ok {
                errs.push(FieldError::new(
                    format!("skills[{i}]"),
                    "source must be `inline` (with content), `url` (with an http(s) url) or `file` (with path)",
                ));
            }
        }
        if self.secrets.len() > limits::MAX_SECRETS {
            errs.push(FieldError::new("secrets", "at most 100 secret references"));
        }
        for k in self.secrets.keys() {
            if !valid_env_name(k) {
                errs.push(FieldError::new(
                    format!("secrets.{k}"),
                    "names are letters, digits and `_`, not starting with a digit",
                ));
            }
        }
        if self.http_tools.len() > limits::MAX_HTTP_TOOLS {
            errs.push(FieldError::new("http_tools", "at most 64 tools"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, t) in self.http_tools.iter().enumerate() {
            let p = format!("http_tools[{i}]");
            if !valid_tool_name(&t.name) {
                errs.push(FieldError::new(format!("{p}.name"), NAME_RULE));
            }
            if !seen.insert(t.name.as_str()) {
                errs.push(FieldError::new(format!("{p}.name"), "duplicate tool name"));
            }
            if !matches!(t.method.to_ascii_uppercase().as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
                errs.push(FieldError::new(format!("{p}.method"), "expected GET, POST, PUT, PATCH or DELETE"));
            }
            if !is_http_url(&t.url) {
                errs.push(FieldError::new(format!("{p}.url"), "not an http(s) URL"));
            }
            if t.input_schema.get("type").and_then(Value::as_str) != Some("object") {
                errs.push(FieldError::new(format!("{p}.input_schema"), "must be a JSON Schema with `type: object`"));
            }
            if t.description.len() > 4096 {
                errs.push(FieldError::new(format!("{p}.description"), "longer than 4096 bytes"));
            }
        }
        if self.memory_mounts.len() > limits::MAX_MEMORY_MOUNTS {
            errs.push(FieldError::new("memory_mounts", "at most 8 mounted stores"));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, m) in self.memory_mounts.iter().enumerate() {
            if !valid_tool_name(&m.name) || m.name.len() > 64 {
                errs.push(FieldError::new(format!("memory_mounts[{i}].name"), NAME_RULE));
            }
            if !names.insert(m.name.as_str()) {
                errs.push(FieldError::new(format!("memory_mounts[{i}].name"), "duplicate store name"));
            }
            if m.instructions.as_ref().is_some_and(|t| t.len() > limits::MAX_MOUNT_INSTRUCTIONS) {
                errs.push(FieldError::new(format!("memory_mounts[{i}].instructions"), "longer than 4096 bytes"));
            }
        }
        if let Some(n) = self.limits.max_run_steps
            && n == 0
        {
            errs.push(FieldError::new("limits.max_run_steps", "must be at least 1"));
        }
        if let Some(n) = self.limits.max_output_tokens
            && !(1..=MAX_OUTPUT_TOKENS).contains(&n)
        {
            errs.push(FieldError::new("limits.max_output_tokens", format!("must be 1 to {MAX_OUTPUT_TOKENS}")));
        }
        for (path, v) in [
            ("limits.max_run_cost_usd", self.limits.max_run_cost_usd),
            ("limits.max_daily_cost_usd", self.limits.max_daily_cost_usd),
            ("limits.max_thread_cost_usd", self.limits.max_thread_cost_usd),
        ] {
            if v.is_some_and(|v| !v.is_finite() || v <= 0.0) {
                errs.push(FieldError::new(path, "must be a positive number of USD"));
            }
        }
        errs
    }
}

/// The largest `max_output_tokens` accepted (no model writes more in one call).
pub const MAX_OUTPUT_TOKENS: u32 = 1_000_000;

const NAME_RULE: &str = "1-64 characters: letters, digits, `_` and `-`";

/// Tool and server names: what every provider accepts as a function name.
pub fn valid_tool_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Secret/environment names.
pub fn valid_env_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_http_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://")) && s.len() > 8 && s.len() <= 4096
}

/// Settings of one model: its price in US dollars per million tokens, its context window and
/// what it can take besides text.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    #[serde(default)]
    pub input_per_mtok: f64,
    #[serde(default)]
    pub output_per_mtok: f64,
    /// The model's context window in tokens (known models have a default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    /// Kinds of attachment the model takes (`image`, `document`); known models have a default,
    /// other models take none. Audio and video are refused until an adapter sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<crate::attachment::AttachmentKind>>,
    /// The most tokens one call may write, unless a deployment sets less or more
    /// (`limits.max_output_tokens`); the server's `engine.max_tokens` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
}

/// Provider wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Anthropic,
    Openai,
    OpenaiCompatible,
}

/// A model provider, from `PUT /v1/providers/{name}` or the config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    pub kind: ProviderKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Vault reference holding the API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret: Option<String>,
    /// Name of an environment variable of the herm process holding the API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Model name → price.
    #[serde(default)]
    pub models: BTreeMap<String, ModelPrice>,
    /// Attachments that came as URLs go to the provider as those URLs (it fetches them)
    /// instead of as the bytes herm stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forward_urls: bool,
}

impl ProviderSpec {
    /// What the settings ask that herm cannot do: a model said to take audio or video (no
    /// adapter sends them yet).
    pub fn validate(&self) -> Vec<FieldError> {
        use crate::attachment::AttachmentKind;
        let mut errors = Vec::new();
        for (name, m) in &self.models {
            for k in m.attachments.iter().flatten() {
                if matches!(k, AttachmentKind::Audio | AttachmentKind::Video) {
                    errors.push(FieldError::new(
                        format!("models.{name}.attachments"),
                        format!("herm does not send `{}` attachments to models yet", k.as_str()),
                    ));
                }
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> DeploymentSpec {
        serde_json::from_value(json!({
            "customer_id": "c1", "name": "n", "system_prompt": "s",
            "secrets": {"A": "sec_x"}
        }))
        .unwrap()
    }

    #[test]
    fn defaults_and_patch_merge_secrets_per_key() {
        let s = spec();
        assert_eq!(s.runtime, "hermes");
        assert!(s.features.memory && !s.features.dreaming);
        let p: DeploymentPatch =
            serde_json::from_value(json!({"secrets": {"A": null, "B": "sec_y"}, "name": "m"})).unwrap();
        let s2 = s.patched(p);
        assert_eq!(s2.name, "m");
        assert_eq!(s2.secrets.len(), 1);
        assert_eq!(s2.secrets["B"], "sec_y");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let r: Result<DeploymentSpec, _> =
            serde_json::from_value(json!({"customer_id": "c", "name": "n", "system_prompt": "s", "bogus": 1}));
        assert!(r.is_err());
    }

    #[test]
    fn validation_reports_every_problem() {
        let mut s = spec();
        s.name = String::new();
        s.model = Some("nomodel".into());
        s.http_tools.push(HttpToolSpec {
            name: "bad name".into(),
            description: "d".into(),
            input_schema: json!({"type": "string"}),
            method: "FETCH".into(),
            url: "ftp://x".into(),
            headers: BTreeMap::new(),
            repeat_safe: false,
            timeout_ms: None,
        });
        let paths: Vec<_> = s.validate().into_iter().map(|e| e.path).collect();
        for p in [
            "name",
            "model",
            "http_tools[0].name",
            "http_tools[0].method",
            "http_tools[0].url",
            "http_tools[0].input_schema",
        ] {
            assert!(paths.contains(&p.to_string()), "{p} missing from {paths:?}");
        }
    }
}
