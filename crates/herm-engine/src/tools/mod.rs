//! The tool registry the agent loop calls: the tools a deployment's sources offer (see
//! [`source`]), their permissions from the deployment's `tool_policies`, and which of them
//! need a person before they run. The registry knows no source: sources (the sandbox
//! built-ins, HTTP connectors, MCP servers, the agent's own tools) depend on it, not the
//! other way round.

pub mod agent;
pub mod connectors;
pub mod http;
pub mod source;
pub(crate) mod template;

use crate::machine::Gate;
use herm_types::config::{DeploymentSpec, ToolPermission};
use herm_types::event::RequestedToolCall;
use serde_json::Value;
use source::ToolRunner;
use std::sync::{Arc, OnceLock};

/// Where a tool comes from; `origin` on the wire.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    Builtin,
    Mcp(String),
    Http,
}

impl Origin {
    pub fn as_wire(&self) -> String {
        match self {
            Self::Builtin => "builtin".into(),
            Self::Mcp(s) => format!("mcp:{s}"),
            Self::Http => "http".into(),
        }
    }
}

/// One tool as the loop sees it.
#[derive(Clone)]
pub struct Tool {
    pub name: String,
    pub description: String,
    pub input_schema: Arc<Value>,
    /// Safe to run again after a crash left its outcome unknown (read-only).
    pub repeat_safe: bool,
    /// Only reads the runtime's own state, at once (no sandbox, no network): it has no
    /// effect to write its call ahead of, so the call is answered before the step commits
    /// and its record and result join that commit (see [`crate::machine::records`]).
    pub inline: bool,
    pub origin: Origin,
    /// Its permission where no policy names it (consequential tools ask by default).
    pub default_permission: ToolPermission,
    pub permission: ToolPermission,
    /// A question for a person: the run waits for the answer instead of running a call.
    pub asks_person: bool,
    /// The runner checks arguments itself (against a cached validator); otherwise they are
    /// checked against `input_schema` before the call.
    pub checks_own_input: bool,
    /// Offered only to runs of this kind (the goal tools to a goal's runs); `None`: to all.
    pub only_for: Option<herm_types::RunKind>,
    /// Offered to memory runs (observer, dream) too; those runs are offered no other tool.
    pub memory_work: bool,
    pub runner: Arc<dyn ToolRunner>,
    /// `input_schema` compiled, at the first call it checks (shared by the tool's clones: a
    /// run's fixed tools are built once, so a schema is not compiled again for each call).
    validator: Arc<OnceLock<Result<jsonschema::Validator, String>>>,
}

impl Tool {
    /// Whether a run of `kind` is offered this tool.
    pub fn serves(&self, kind: herm_types::RunKind) -> bool {
        if kind.is_memory() { self.memory_work } else { self.only_for.is_none_or(|o| o == kind) }
    }

    /// A tool that runs with `runner`, allowed unless a policy says otherwise.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        input_schema: impl Into<Arc<Value>>,
        origin: Origin,
        runner: Arc<dyn ToolRunner>,
    ) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            input_schema: input_schema.into(),
            repeat_safe: false,
            inline: false,
            origin,
            default_permission: ToolPermission::AlwaysAllow,
            permission: ToolPermission::AlwaysAllow,
            asks_person: false,
            checks_own_input: false,
            only_for: None,
            memory_work: false,
            runner,
            validator: Arc::default(),
        }
    }

    /// Checks a call's input against the tool's JSON Schema; one message per problem.
    pub fn check_input(&self, input: &Value) -> Vec<(String, String)> {
        let compiled =
            self.validator.get_or_init(|| jsonschema::validator_for(&self.input_schema).map_err(|e| e.to_string()));
        match compiled {
            Ok(v) => v.iter_errors(input).map(|e| (e.instance_path().to_string(), e.to_string())).collect(),
            Err(e) => vec![(String::new(), format!("the tool's input schema is invalid: {e}"))],
        }
    }
}

impl std::fmt::Debug for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tool")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .field("permission", &self.permission)
            .finish()
    }
}

/// What every tool source offers a deployment at one look.
pub struct Offered {
    pub tools: ToolSet,
    /// Parts of sources that offer nothing right now (an MCP server that is down), and why.
    pub outages: Vec<(String, String)>,
    /// Some source may offer otherwise at its next look (see [`source::Offer::live`]).
    pub live: bool,
}

/// The tools of one deployment.
#[derive(Clone, Debug, Default)]
pub struct ToolSet {
    tools: Vec<Tool>,
}

impl ToolSet {
    /// The tools the sources offered, each with its permission from the deployment's policies.
    pub fn new(spec: &DeploymentSpec, mut tools: Vec<Tool>) -> Self {
        for t in &mut tools {
            t.permission = policy_for(spec, &t.name).unwrap_or(t.default_permission);
        }
        Self { tools }
    }

    /// Who must act before a call of `name` runs. Unknown tools are free: their call fails.
    pub fn gate(&self, name: &str) -> Gate {
        match self.get(name) {
            Some(t) if t.asks_person => Gate::Question,
            Some(t) if t.permission == ToolPermission::AlwaysAsk => Gate::Approval,
            _ => Gate::Free,
        }
    }

    /// Tools shown to the model (disabled ones are hidden).
    pub fn visible(&self) -> impl Iterator<Item = &Tool> {
        self.tools.iter().filter(|t| t.permission != ToolPermission::Disabled)
    }

    pub fn get(&self, name: &str) -> Option<&Tool> {
        self.visible().find(|t| t.name == name)
    }

    pub fn all(&self) -> &[Tool] {
        &self.tools
    }
}

impl crate::machine::records::ToolFacts for ToolSet {
    fn gate(&self, tool: &str) -> Gate {
        ToolSet::gate(self, tool)
    }
    fn origin(&self, tool: &str) -> String {
        self.get(tool).map(|t| t.origin.as_wire()).unwrap_or_else(|| "unknown".into())
    }
    /// No such tool (or a disabled one) and arguments that are not an object are refused
    /// without running anything.
    fn inline(&self, call: &RequestedToolCall) -> bool {
        !call.arguments.is_object() || self.get(&call.tool).is_none_or(|t| t.inline)
    }
}

/// Resolves a tool's permission from the deployment's policies: an exact name wins over a
/// glob; among globs the longest pattern wins; the default is `always_allow`.
/// The policy the deployment sets for `name`: an exact entry, else the longest glob.
pub fn policy_for(spec: &DeploymentSpec, name: &str) -> Option<ToolPermission> {
    if let Some(p) = spec.tool_policies.get(name) {
        return Some(*p);
    }
    spec.tool_policies
        .iter()
        .filter(|(pat, _)| pat.contains('*') && glob_match(pat, name))
        .max_by_key(|(pat, _)| pat.len())
        .map(|(_, p)| *p)
}

/// `*` matches any run of characters.
pub fn glob_match(pat: &str, s: &str) -> bool {
    let parts: Vec<&str> = pat.split('*').collect();
    if parts.len() == 1 {
        return pat == s;
    }
    let mut rest = s;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else if let Some(pos) = rest.find(p) {
            rest = &rest[pos + p.len()..];
        } else {
            return false;
        }
    }
    true
}

/// What a tool call produced.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolOutput {
    pub content: String,
    pub is_error: bool,
    /// Images for the model (stored already; the result carries their references).
    pub attachments: Vec<herm_types::attachment::Attachment>,
}

impl ToolOutput {
    pub fn ok(content: impl Into<String>) -> Self {
        Self { content: content.into(), is_error: false, attachments: Vec::new() }
    }

    pub fn error(msg: impl Into<String>) -> Self {
        Self { content: msg.into(), is_error: true, attachments: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Never;

    #[async_trait::async_trait]
    impl ToolRunner for Never {
        async fn run(&self, _: &source::CallContext<'_>, _: &Value) -> crate::Result<source::Ran> {
            unreachable!("a tool of these tests is never run")
        }
    }

    #[test]
    fn a_tool_checks_inputs_against_its_schema_compiled_once_for_all_its_clones() {
        let schema = serde_json::json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
        let t = Tool::new("t", "", schema, Origin::Builtin, Arc::new(Never));
        let copy = t.clone();
        assert!(t.check_input(&serde_json::json!({"n": 1})).is_empty());
        assert!(t.validator.get().is_some_and(|v| v.is_ok()), "compiled at the first check");
        assert!(Arc::ptr_eq(&t.validator, &copy.validator));
        let errors = copy.check_input(&serde_json::json!({"n": "x"}));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "/n");
        assert_eq!(copy.check_input(&serde_json::json!({})).len(), 1);
        let broken = Tool::new("b", "", serde_json::json!({"type": 7}), Origin::Builtin, Arc::new(Never));
        let errors = broken.check_input(&serde_json::json!({}));
        assert!(errors[0].1.starts_with("the tool's input schema is invalid"), "{errors:?}");
    }

    #[test]
    fn globs() {
        assert!(glob_match("post_*", "post_message"));
        assert!(!glob_match("post_*", "get_post"));
        assert!(glob_match("*_mail*", "send_mail_now"));
        assert!(glob_match("*", "anything"));
        assert!(!glob_match("a*b", "ac"));
    }
}
