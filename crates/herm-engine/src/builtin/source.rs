//! The sandbox built-ins as a tool source: offered when the deployment has a sandbox and one
//! can run on this node; each runs in that sandbox, started on demand and held in use for the
//! call, with shell output streamed live as redacted `tool_output` frames.

use super::{Builtin, view};
use crate::tools::source::{CallContext, Offer, Ran, ToolRunner, ToolSource};
use crate::tools::{Origin, Tool, ToolOutput};
use crate::{Engine, Result};
use herm_sandbox::Stream;
use herm_types::config::DeploymentSpec;
use herm_types::event::{EphemeralFrame, LiveFrame, OutputStream};
use herm_types::{DeploymentId, EventKind};
use serde_json::Value;
use std::sync::Arc;

/// The source of the sandbox built-ins.
pub struct SandboxTools;

#[async_trait::async_trait]
impl ToolSource for SandboxTools {
    async fn offer(&self, engine: &Engine, _: &DeploymentId, spec: &DeploymentSpec) -> Offer {
        if engine.sandbox().is_none() || !spec.sandbox.enabled {
            return Offer::default();
        }
        let mut tools = BUILTINS.clone();
        // Offered to models that take images.
        if engine.sees_images(spec).await {
            tools.push(VIEW_IMAGE.clone());
        }
        Offer::fixed(tools)
    }
}

/// The built-ins, built once (a step's offer clones them instead of building their schemas).
static BUILTINS: std::sync::LazyLock<Vec<Tool>> = std::sync::LazyLock::new(|| {
    Builtin::ALL
        .into_iter()
        .map(|b| {
            let mut t = Tool::new(b.name(), b.description(), b.schema(), Origin::Builtin, Arc::new(b));
            t.repeat_safe = b.repeat_safe();
            t
        })
        .collect()
});

static VIEW_IMAGE: std::sync::LazyLock<Tool> = std::sync::LazyLock::new(|| {
    let mut t = Tool::new(view::NAME, view::DESCRIPTION, view::schema(), Origin::Builtin, Arc::new(view::ViewImage));
    t.repeat_safe = true;
    t
});

#[async_trait::async_trait]
impl ToolRunner for Builtin {
    async fn run(&self, cx: &CallContext<'_>, args: &Value) -> Result<Ran> {
        let (engine, dep) = (cx.engine, cx.dep);
        let (sb, _in_use) = match engine.use_sandbox(&dep.id, &dep.spec).await {
            Ok(x) => x,
            Err(e) => {
                let out = ToolOutput::error(format!("the sandbox is not available: {e}"));
                return Ok(Ran::output(out));
            }
        };
        let redactor = cx.redactor.clone();
        let (bus, thread, call) = (engine.bus().clone(), cx.thread.clone(), cx.tool_use_id.to_owned());
        let (run, dep_id) = (cx.run.cloned(), dep.id.clone());
        let mut on_output = move |stream: Stream, bytes: &[u8]| {
            let frame = EphemeralFrame {
                deployment_id: dep_id.clone(),
                thread_id: thread.clone(),
                run_id: run.clone(),
                kind: EventKind::ToolOutput {
                    tool_use_id: call.clone(),
                    stream: if stream == Stream::Stdout { OutputStream::Stdout } else { OutputStream::Stderr },
                    delta: redactor.redact(&String::from_utf8_lossy(bytes)),
                },
            };
            bus.publish(&dep_id, LiveFrame::Ephemeral(Arc::new(frame)));
        };
        let timeout = engine.options().sandbox.shell_timeout;
        let track = dep.spec.features.filesystem_webhooks;
        let started = std::time::SystemTime::now();
        let (output, changes) =
            super::run(sb.as_ref(), &dep.id, *self, args, cx.tool_use_id, timeout, track, &mut on_output).await;
        let attributes = vec![
            opentelemetry::KeyValue::new("herm.sandbox.backend", sb.backend()),
            opentelemetry::KeyValue::new("herm.sandbox.tool", self.name()),
        ];
        crate::spans::child(cx, format!("sandbox {}", self.name()), started, attributes, output.is_error);
        let records = changes.into_iter().map(|(change, path)| EventKind::Filesystem { change, path }).collect();
        if touches_memory(*self, args)
            && let Err(e) = engine.sync_memory_files(dep, cx.run).await
        {
            tracing::warn!(deployment = %dep.id, error = %e, "memory file sync after a tool call failed");
        }
        Ok(Ran { output, records })
    }
}

/// Whether a call may have changed the memory files (they are synced with the store after
/// it; anything this misses is synced when the next run starts).
fn touches_memory(tool: Builtin, args: &Value) -> bool {
    let s = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or_default();
    match tool {
        Builtin::Shell => s("command").contains(herm_types::memory::MEMORY_DIR),
        Builtin::WriteFile | Builtin::EditFile => {
            let p = s("path");
            let p = p.strip_prefix("/workspace/").unwrap_or(p);
            p.trim_start_matches("./").starts_with("memory/")
        }
        _ => false,
    }
}
