//! The agent's goal tools, offered to a goal's runs only: `goal_progress` (a note the next
//! runs and the judge see), `goal_wait` (start no run before a time) and `goal_done` (a claim
//! the judge checks when the run ends).

use crate::tools::source::{CallContext, Offer, Ran, ToolRunner, ToolSource};
use crate::tools::{Origin, Tool, ToolOutput};
use crate::{Engine, Error, Result};
use herm_types::config::DeploymentSpec;
use herm_types::proactive::{ProgressNote, parse_duration_secs};
use herm_types::{DeploymentId, GoalId};
use serde_json::{Value, json};
use std::sync::Arc;

/// Notes kept per goal at most (the oldest go first).
const MAX_NOTES: usize = 200;
const MAX_TEXT: usize = 4000;

/// The source of the goal tools.
pub struct GoalTools;

#[derive(Clone, Copy)]
enum Op {
    Progress,
    Wait,
    Done,
}

#[async_trait::async_trait]
impl ToolSource for GoalTools {
    async fn offer(&self, _: &Engine, _: &DeploymentId, _: &DeploymentSpec) -> Offer {
        Offer::fixed(TOOLS.clone())
    }
}

/// The tools, built once (a step's offer clones them instead of building their schemas).
static TOOLS: std::sync::LazyLock<Vec<Tool>> = std::sync::LazyLock::new(|| {
    let tool = |name: &str, description: &str, schema: Value, op: Op| {
        let mut t = Tool::new(name, description, schema, Origin::Builtin, Arc::new(Runner(op)));
        t.only_for = Some(herm_types::RunKind::Goal);
        t
    };
    let text = |k: &str| json!({"type": "object", "properties": {k: {"type": "string"}}, "required": [k]});
    vec![
        tool(
            "goal_progress",
            "Record progress on the goal this run works on (the next runs and the judge see it).",
            text("note"),
            Op::Progress,
        ),
        tool(
            "goal_wait",
            "Nothing more can be done on the goal this run works on until later: no run of it starts before \
             `until` (RFC 3339) or before `for` has passed (`30m`, `2h`, `1d`).",
            json!({"type": "object", "properties": {"until": {"type": "string"}, "for": {"type": "string"}, "reason": {"type": "string"}}}),
            Op::Wait,
        ),
        tool(
            "goal_done",
            "Claim the goal this run works on is done, with a summary of the evidence; a judge checks it against the \
             done criteria.",
            text("summary"),
            Op::Done,
        ),
    ]
});

struct Runner(Op);

#[async_trait::async_trait]
impl ToolRunner for Runner {
    async fn run(&self, cx: &CallContext<'_>, args: &Value) -> Result<Ran> {
        let out = self.apply(cx, args).await;
        Ok(Ran::output(match out {
            Ok(msg) => ToolOutput { content: msg, is_error: false, attachments: Vec::new() },
            Err(e) => ToolOutput::error(e.to_string()),
        }))
    }
}

impl Runner {
    async fn apply(&self, cx: &CallContext<'_>, args: &Value) -> Result<String> {
        let engine = cx.engine;
        let run = cx.run.ok_or(Error::Validation("no run".into()))?;
        let goal = engine
            .store()
            .get_run(run)
            .await?
            .and_then(|r| r.trigger)
            .and_then(|t| t.goal_id)
            .and_then(|g| GoalId::parse(&g).ok())
            .ok_or_else(|| Error::Validation("this run is not working on a goal".into()))?;
        let text = |k: &str| {
            args.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= MAX_TEXT)
                .map(|s| cx.redactor.redact(s))
        };
        let now = engine.now();
        match self.0 {
            Op::Progress => {
                let note =
                    text("note").ok_or_else(|| Error::Validation(format!("`note` is 1 to {MAX_TEXT} characters")))?;
                engine
                    .edit_goal(&cx.dep.id, &goal, None, |g| {
                        g.state.progress_notes.push(ProgressNote {
                            note: note.clone(),
                            run_id: Some(run.clone()),
                            created_at: now,
                        });
                        let excess = g.state.progress_notes.len().saturating_sub(MAX_NOTES);
                        g.state.progress_notes.drain(..excess);
                        Ok(())
                    })
                    .await?;
                Ok("progress recorded".into())
            }
            Op::Wait => {
                let until = match (text("until"), text("for")) {
                    (Some(u), _) => chrono::DateTime::parse_from_rfc3339(&u)
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .map_err(|_| Error::Validation("`until` is an RFC 3339 time".into()))?,
                    (None, Some(f)) => {
                        let secs = parse_duration_secs(&f)
                            .ok_or_else(|| Error::Validation("`for` is a duration such as `2h`".into()))?;
                        now + chrono::Duration::seconds(secs.min(365 * 86_400) as i64)
                    }
                    (None, None) => return Err(Error::Validation("give `until` or `for`".into())),
                };
                engine
                    .edit_goal(&cx.dep.id, &goal, None, |g| {
                        g.state.wait_until = Some(until);
                        Ok(())
                    })
                    .await?;
                Ok(format!("no run of this goal starts before {}; end this run now", until.to_rfc3339()))
            }
            Op::Done => {
                let summary = text("summary")
                    .ok_or_else(|| Error::Validation(format!("`summary` is 1 to {MAX_TEXT} characters")))?;
                engine
                    .edit_goal(&cx.dep.id, &goal, None, |g| {
                        g.state.claim = Some((run.clone(), summary.clone()));
                        Ok(())
                    })
                    .await?;
                Ok("claim recorded: a judge checks it when this run ends".into())
            }
        }
    }
}
