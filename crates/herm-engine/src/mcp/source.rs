//! A deployment's MCP servers as a tool source: each server's tools as `<server>__<tool>`
//! (connected on first use, then cached by the hub), run through the hub with the
//! deployment's identity in `_meta`. A long result is redacted, then spilled to the
//! workspace; a server found down is recorded with the call's result.

use super::{CallContext as Meta, McpTool};
use crate::tools::source::{CallContext, Offer, Ran, ToolRunner, ToolSource};
use crate::tools::{Origin, Tool};
use crate::{Engine, Result};
use base64::Engine as _;
use herm_types::DeploymentId;
use herm_types::EventKind;
use herm_types::config::DeploymentSpec;
use herm_types::event::McpState;
use serde_json::Value;
use std::sync::Arc;

/// The source of a deployment's MCP tools.
pub struct McpTools;

#[async_trait::async_trait]
impl ToolSource for McpTools {
    async fn offer(&self, engine: &Engine, dep: &DeploymentId, spec: &DeploymentSpec) -> Offer {
        if spec.mcp_servers.is_empty() {
            return Offer::default();
        }
        let listing = engine.mcp().list(dep, spec).await;
        let tools = listing
            .tools
            .into_iter()
            .map(|t| {
                let mut tool = Tool::new(
                    t.name.clone(),
                    t.description.clone(),
                    t.input_schema.clone(),
                    Origin::Mcp(t.server.clone()),
                    Arc::new(McpCall(t.clone())),
                );
                tool.repeat_safe = t.repeat_safe;
                // The hub checks arguments against the server's schema, with a cached validator.
                tool.checks_own_input = true;
                tool
            })
            .collect();
        Offer { tools, unavailable: listing.unavailable, live: true }
    }
}

struct McpCall(McpTool);

#[async_trait::async_trait]
impl ToolRunner for McpCall {
    async fn run(&self, cx: &CallContext<'_>, args: &Value) -> Result<Ran> {
        let dep = cx.dep;
        let meta = Meta { customer_id: &dep.spec.customer_id, deployment_id: &dep.id, thread_id: cx.thread.as_str() };
        let started = std::time::SystemTime::now();
        let outcome = cx.engine.mcp().call(&dep.spec, &self.0, args, meta).await;
        let attributes = vec![
            opentelemetry::KeyValue::new("mcp.method.name", "tools/call"),
            opentelemetry::KeyValue::new("gen_ai.tool.name", self.0.remote.clone()),
            opentelemetry::KeyValue::new("herm.mcp.server", self.0.server.clone()),
        ];
        let failed = outcome.output.is_error;
        crate::spans::child(cx, format!("tools/call {}", self.0.remote), started, attributes, failed);
        let mut output = outcome.output;
        output.content = cx.redactor.redact(&output.content);
        if !outcome.images.is_empty() && cx.engine.sees_images(&dep.spec).await {
            for (i, (media_type, data)) in outcome.images.into_iter().enumerate() {
                let name = Some(format!("{}-{i}", self.0.name));
                let kept = match base64::engine::general_purpose::STANDARD.decode(data.trim()) {
                    Ok(bytes) => cx.engine.keep_image(dep, cx.thread, bytes, Some(&media_type), name).await,
                    Err(e) => Err(crate::Error::InvalidAttachment(format!("not valid base64: {e}"))),
                };
                match kept {
                    Ok(r) => output.attachments.push(r),
                    Err(crate::Error::InvalidAttachment(why)) => {
                        output.content.push_str(&format!("\n[image {i} was not shown: {why}]"));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if output.content.len() > crate::builtin::CAP {
            let sandbox = cx.engine.use_sandbox(&dep.id, &dep.spec).await.ok();
            let sb = sandbox.as_ref().map(|(sb, _)| sb.as_ref());
            output.content = crate::builtin::spill(sb, &dep.id, cx.tool_use_id, output.content).await;
        }
        let records = outcome
            .unavailable
            .map(|(server, why)| EventKind::McpStatus {
                server,
                status: McpState::Unavailable,
                message: cx.redactor.redact(&why),
            })
            .into_iter()
            .collect();
        Ok(Ran { output, records })
    }
}
