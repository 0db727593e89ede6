//! The tool registry the agent loop calls: what the model is offered for a deployment, and
//! how a call is executed: the sandbox built-ins, `ask_user`, `load_skill`, the deployment's
//! declarative `http_tools` and the tools of its MCP servers.

pub mod http;
pub(crate) mod template;

use crate::machine::Gate;
use herm_types::config::{DeploymentSpec, HttpToolSpec, ToolPermission};
use serde_json::{Value, json};

/// The built-in tool that asks the user a question.
pub const ASK_USER: &str = "ask_user";

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

/// How a tool is executed.
#[derive(Clone, Debug)]
pub enum ToolKind {
    Http(HttpToolSpec),
    /// A question for the user; the run waits for the answer.
    AskUser,
    /// A built-in tool that works in the deployment's sandbox.
    Sandbox(crate::builtin::Builtin),
    /// Returns the body of one of the deployment's skills.
    LoadSkill,
    /// A tool of one of the deployment's MCP servers.
    Mcp(Box<crate::mcp::McpTool>),
}

/// The built-in tool that loads a skill's body.
pub const LOAD_SKILL: &str = "load_skill";

/// One tool as the loop sees it.
#[derive(Clone, Debug)]
pub struct Tool {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
    /// Safe to run again after a crash left its outcome unknown (read-only).
    pub repeat_safe: bool,
    pub origin: Origin,
    pub kind: ToolKind,
    pub permission: ToolPermission,
}

/// The tools of one deployment.
#[derive(Clone, Debug, Default)]
pub struct ToolSet {
    tools: Vec<Tool>,
}

impl ToolSet {
    /// `sandbox`: whether a sandbox can run on this node (its tools are offered only then).
    pub fn for_deployment(spec: &DeploymentSpec, sandbox: bool) -> Self {
        let mut tools = Vec::new();
        if sandbox && spec.sandbox.enabled {
            for b in crate::builtin::Builtin::ALL {
                tools.push(Tool {
                    name: b.name().into(),
                    description: b.description().into(),
                    input_schema: b.schema(),
                    repeat_safe: b.repeat_safe(),
                    origin: Origin::Builtin,
                    kind: ToolKind::Sandbox(b),
                    permission: permission_for(spec, b.name()),
                });
            }
        }
        for h in &spec.http_tools {
            tools.push(Tool {
                name: h.name.clone(),
                description: h.description.clone(),
                input_schema: h.input_schema.clone(),
                repeat_safe: h.repeat_safe,
                origin: Origin::Http,
                kind: ToolKind::Http(h.clone()),
                permission: permission_for(spec, &h.name),
            });
        }
        if !spec.skills.is_empty() {
            tools.push(Tool {
                name: LOAD_SKILL.into(),
                description: "Load the full instructions of one of your skills (listed in your system prompt) \
                              when a task needs it."
                    .into(),
                input_schema: json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
                repeat_safe: true,
                origin: Origin::Builtin,
                kind: ToolKind::LoadSkill,
                permission: permission_for(spec, LOAD_SKILL),
            });
        }
        if spec.features.steering {
            tools.push(Tool {
                name: ASK_USER.into(),
                description: "Ask the user a clarifying question instead of guessing (for example when several \
                              items match). The run pauses until they answer; the answer is the result."
                    .into(),
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "question": {"type": "string", "description": "The question, in one or two sentences."},
                        "options": {"type": "array", "items": {"type": "string"}, "description": "Choices to offer, if any."}
                    },
                    "required": ["question"]
                }),
                repeat_safe: true,
                origin: Origin::Builtin,
                kind: ToolKind::AskUser,
                permission: permission_for(spec, ASK_USER),
            });
        }
        Self { tools }
    }

    /// Adds the tools the deployment's MCP servers offer.
    pub fn with_mcp(mut self, spec: &DeploymentSpec, tools: Vec<crate::mcp::McpTool>) -> Self {
        for t in tools {
            self.tools.push(Tool {
                name: t.name.clone(),
                description: t.description.clone(),
                input_schema: t.input_schema.clone(),
                repeat_safe: t.repeat_safe,
                origin: Origin::Mcp(t.server.clone()),
                permission: permission_for(spec, &t.name),
                kind: ToolKind::Mcp(Box::new(t)),
            });
        }
        self
    }

    /// Who must act before a call of `name` runs. Unknown tools are free: their call fails.
    pub fn gate(&self, name: &str) -> Gate {
        match self.get(name) {
            Some(t) if matches!(t.kind, ToolKind::AskUser) => Gate::Question,
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
}

/// Resolves a tool's permission from the deployment's policies: an exact name wins over a
/// glob; among globs the longest pattern wins; the default is `always_allow`.
pub fn permission_for(spec: &DeploymentSpec, name: &str) -> ToolPermission {
    if let Some(p) = spec.tool_policies.get(name) {
        return *p;
    }
    spec.tool_policies
        .iter()
        .filter(|(pat, _)| pat.contains('*') && glob_match(pat, name))
        .max_by_key(|(pat, _)| pat.len())
        .map(|(_, p)| *p)
        .unwrap_or(ToolPermission::AlwaysAllow)
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

/// Checks a tool input against the tool's JSON Schema; returns one message per problem.
pub fn validate_input(schema: &Value, input: &Value) -> Vec<(String, String)> {
    match jsonschema::validator_for(schema) {
        Ok(v) => v.iter_errors(input).map(|e| (e.instance_path().to_string(), e.to_string())).collect(),
        Err(e) => vec![(String::new(), format!("the tool's input schema is invalid: {e}"))],
    }
}

/// What a tool call produced.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolOutput {
    pub content: String,
    pub is_error: bool,
}

impl ToolOutput {
    pub fn error(msg: impl Into<String>) -> Self {
        Self { content: msg.into(), is_error: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("post_*", "post_message"));
        assert!(!glob_match("post_*", "get_post"));
        assert!(glob_match("*_mail*", "send_mail_now"));
        assert!(glob_match("*", "anything"));
        assert!(!glob_match("a*b", "ac"));
    }
}
