//! The deployment's `http_tools` as a tool source: one tool per connector, whose calls
//! resolve the secrets they use at the moment of the call and send one templated request
//! (see [`super::http`]).

use super::source::{CallContext, Offer, Ran, ToolRunner, ToolSource};
use super::{Origin, Tool, ToolOutput, http};
use crate::{Engine, Result};
use herm_types::DeploymentId;
use herm_types::config::{DeploymentSpec, HttpToolSpec};
use serde_json::Value;
use std::sync::Arc;

/// The source of a deployment's connector tools.
pub struct ConnectorTools;

#[async_trait::async_trait]
impl ToolSource for ConnectorTools {
    async fn offer(&self, _: &Engine, _: &DeploymentId, spec: &DeploymentSpec) -> Offer {
        let tools = spec
            .http_tools
            .iter()
            .map(|h| {
                let mut t = Tool::new(
                    h.name.clone(),
                    h.description.clone(),
                    h.input_schema.clone(),
                    Origin::Http,
                    Arc::new(Connector(h.clone())),
                );
                t.repeat_safe = h.repeat_safe;
                t
            })
            .collect();
        Offer::fixed(tools)
    }
}

struct Connector(HttpToolSpec);

#[async_trait::async_trait]
impl ToolRunner for Connector {
    async fn run(&self, cx: &CallContext<'_>, args: &Value) -> Result<Ran> {
        let needed = http::secrets_used(&self.0);
        let values = cx.engine.secrets().resolve(&cx.dep.spec, &needed).await?;
        if let Some(missing) = needed.iter().find(|n| !values.contains_key(*n)) {
            let msg =
                format!("secret `{missing}` is not available to this deployment (unknown name or deleted reference)");
            return Ok(Ran::output(ToolOutput::error(msg)));
        }
        Ok(Ran::output(http::call(cx.engine.http(), &self.0, args, &values).await))
    }
}
