//! The agent's own tools, whatever else its deployment configures: `ask_user` (a question
//! answered by a person, never executed) when steering is on, and `load_skill` (a skill's
//! body, on demand) when it has skills.

use super::source::{CallContext, Offer, Ran, ToolRunner, ToolSource};
use super::{Origin, Tool, ToolOutput};
use crate::{Engine, Result};
use herm_types::DeploymentId;
use herm_types::config::DeploymentSpec;
use serde_json::{Value, json};
use std::sync::Arc;

/// The built-in tool that asks the user a question.
pub const ASK_USER: &str = "ask_user";
/// The built-in tool that loads a skill's body.
pub const LOAD_SKILL: &str = "load_skill";

/// The source of `ask_user` and `load_skill`.
pub struct AgentTools;

#[async_trait::async_trait]
impl ToolSource for AgentTools {
    async fn offer(&self, _: &Engine, _: &DeploymentId, spec: &DeploymentSpec) -> Offer {
        let mut tools = Vec::new();
        if !spec.skills.is_empty() {
            tools.push(LOAD_SKILL_TOOL.clone());
        }
        if spec.features.steering {
            tools.push(ASK_USER_TOOL.clone());
        }
        Offer::fixed(tools)
    }
}

/// `load_skill`, built once (a step's offer clones it instead of building its schema).
static LOAD_SKILL_TOOL: std::sync::LazyLock<Tool> = std::sync::LazyLock::new(|| {
    let mut t = Tool::new(
        LOAD_SKILL,
        "Load the full instructions of one of your skills (listed in your system prompt) when a task needs it.",
        json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
        Origin::Builtin,
        Arc::new(LoadSkill),
    );
    t.repeat_safe = true;
    t
});

/// `ask_user`, built once.
static ASK_USER_TOOL: std::sync::LazyLock<Tool> = std::sync::LazyLock::new(|| {
    let mut t = Tool::new(
        ASK_USER,
        "Ask the user a clarifying question instead of guessing (for example when several items match). \
         The run pauses until they answer; the answer is the result.",
        json!({
            "type": "object",
            "properties": {
                "question": {"type": "string", "description": "The question, in one or two sentences."},
                "options": {"type": "array", "items": {"type": "string"}, "description": "Choices to offer, if any."}
            },
            "required": ["question"]
        }),
        Origin::Builtin,
        Arc::new(AskUser),
    );
    t.repeat_safe = true;
    t.asks_person = true;
    t
});

/// `ask_user` goes through the steering path (a request, then the person's answer as its
/// result); it is never run.
struct AskUser;

#[async_trait::async_trait]
impl ToolRunner for AskUser {
    async fn run(&self, _: &CallContext<'_>, _: &Value) -> Result<Ran> {
        Ok(Ran::output(ToolOutput::error("ask_user is answered by a person, not executed")))
    }
}

struct LoadSkill;

#[async_trait::async_trait]
impl ToolRunner for LoadSkill {
    async fn run(&self, cx: &CallContext<'_>, args: &Value) -> Result<Ran> {
        let name = args.get("name").and_then(Value::as_str).unwrap_or_default();
        let out = match cx.engine.skill_text(cx.dep, name).await {
            Ok(text) => match crate::skills::parse(&text) {
                Ok(s) => ToolOutput { content: s.body, is_error: false, attachments: Vec::new() },
                Err(e) => ToolOutput::error(format!("skill `{name}`: {e}")),
            },
            Err(e) => ToolOutput::error(e),
        };
        Ok(Ran::output(out))
    }
}
