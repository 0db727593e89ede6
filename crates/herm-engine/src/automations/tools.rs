//! The agent's automation tools, so a customer can set up, list, pause and delete
//! automations in chat: `create_automation` and `delete_automation` ask a person first
//! unless a policy says otherwise; a created automation fires into the thread it was made in.

use crate::tools::source::{CallContext, Offer, Ran, ToolRunner, ToolSource};
use crate::tools::{Origin, Tool, ToolOutput};
use crate::{Engine, Result};
use herm_types::config::{DeploymentSpec, ToolPermission};
use herm_types::proactive::AutomationCreate;
use herm_types::{AutomationId, DeploymentId};
use serde_json::{Value, json};
use std::sync::Arc;

/// The source of the automation tools (offered while `features.automations` is on).
pub struct AutomationTools;

#[derive(Clone, Copy)]
enum Op {
    Create,
    List,
    Pause,
    Delete,
}

#[async_trait::async_trait]
impl ToolSource for AutomationTools {
    async fn offer(&self, _: &Engine, _: &DeploymentId, spec: &DeploymentSpec) -> Offer {
        if !spec.features.automations {
            return Offer::default();
        }
        Offer::fixed(TOOLS.clone())
    }
}

/// The tools, built once (a step's offer clones them instead of building their schemas).
static TOOLS: std::sync::LazyLock<Vec<Tool>> = std::sync::LazyLock::new(|| {
    let id_schema =
        json!({"type": "object", "properties": {"automation_id": {"type": "string"}}, "required": ["automation_id"]});
    let mut create = Tool::new(
        "create_automation",
        "Schedule recurring work: `schedule` is plain language (\"every Monday at 9am\", \"every weekday at 17:30\", \
         \"every 15 minutes\") or a 5-field cron; at each time, `instructions` arrive in this conversation as a message \
         and you act on them. Returns the cron it was read as and the next run time.",
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "schedule": {"type": "string"},
                "instructions": {"type": "string"},
                "timezone": {"type": "string", "description": "IANA time zone, e.g. Europe/Paris (default UTC)"}
            },
            "required": ["name", "schedule", "instructions"]
        }),
        Origin::Builtin,
        Arc::new(Runner(Op::Create)),
    );
    create.default_permission = ToolPermission::AlwaysAsk;
    let mut list = Tool::new(
        "list_automations",
        "List this agent's automations with their schedules, state and next run time.",
        json!({"type": "object", "properties": {}}),
        Origin::Builtin,
        Arc::new(Runner(Op::List)),
    );
    list.repeat_safe = true;
    list.inline = true;
    let pause = Tool::new(
        "pause_automation",
        "Pause an automation (it stops firing until resumed).",
        id_schema.clone(),
        Origin::Builtin,
        Arc::new(Runner(Op::Pause)),
    );
    let mut delete = Tool::new(
        "delete_automation",
        "Delete an automation and its history.",
        id_schema,
        Origin::Builtin,
        Arc::new(Runner(Op::Delete)),
    );
    delete.default_permission = ToolPermission::AlwaysAsk;
    vec![create, list, pause, delete]
});

struct Runner(Op);

#[async_trait::async_trait]
impl ToolRunner for Runner {
    async fn run(&self, cx: &CallContext<'_>, args: &Value) -> Result<Ran> {
        let (engine, dep) = (cx.engine, &cx.dep.id);
        let text = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_owned);
        let id = || text("automation_id").and_then(|s| AutomationId::parse(&s).ok());
        let out = match self.0 {
            Op::Create => {
                let body = AutomationCreate {
                    name: text("name").unwrap_or_default(),
                    schedule: text("schedule"),
                    instructions: text("instructions").unwrap_or_default(),
                    thread_id: Some(cx.thread.to_string()),
                    timezone: text("timezone"),
                    ..Default::default()
                };
                engine.create_automation(dep, body).await.map(|c| {
                    let a = c.value;
                    json!({"automation_id": a.automation_id, "cron": a.cron, "description": a.description, "next_run_at": a.next_run_at})
                })
            }
            Op::List => engine.list_automations(dep, None, 100).await.map(|all| {
                let rows: Vec<Value> = all
                    .into_iter()
                    .map(|a| {
                        json!({"automation_id": a.automation_id, "name": a.name, "schedule": a.schedule, "cron": a.cron,
                                    "description": a.description, "enabled": a.enabled, "next_run_at": a.next_run_at})
                    })
                    .collect();
                json!(rows)
            }),
            Op::Pause => match id() {
                Some(id) => engine
                    .set_automation_enabled(dep, &id, false, Some("paused by the agent".into()), None)
                    .await
                    .map(|a| json!({"automation_id": a.value.automation_id, "enabled": a.value.enabled})),
                None => Err(crate::Error::Validation("`automation_id` is required".into())),
            },
            Op::Delete => match id() {
                Some(id) => engine.delete_automation(dep, &id, None).await.map(|()| json!({"deleted": true})),
                None => Err(crate::Error::Validation("`automation_id` is required".into())),
            },
        };
        Ok(Ran::output(match out {
            Ok(v) => ToolOutput { content: v.to_string(), is_error: false, attachments: Vec::new() },
            Err(e) => ToolOutput::error(e.to_string()),
        }))
    }
}
