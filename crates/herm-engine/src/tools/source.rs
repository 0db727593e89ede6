//! The seam between the registry and where tools come from. A [`ToolSource`] offers a
//! deployment's tools (the sandbox built-ins, HTTP connectors, MCP servers, the agent's own
//! `ask_user` and `load_skill`; memory, automation and goal tools next), each with the
//! [`ToolRunner`] that performs its calls. The registry and the worker know these two traits
//! only: no source's internals, and no source imports another.

use crate::redact::Redactor;
use crate::tools::{Tool, ToolOutput};
use crate::{Engine, Result};
use herm_store::DeploymentRecord;
use herm_types::*;
use serde_json::Value;
use std::sync::Arc;

/// What a source offers a deployment right now.
#[derive(Default)]
pub struct Offer {
    /// Its tools (their permission is set by the registry from the deployment's policies).
    pub tools: Vec<Tool>,
    /// Parts of the source that offer nothing right now (an MCP server that is down), and why.
    pub unavailable: Vec<(String, String)>,
    /// The source may offer otherwise at its next look for the same spec (an MCP server's
    /// listing changes with the server); a fixed offer is what the spec says.
    pub live: bool,
}

impl Offer {
    /// An offer that follows from the deployment's spec alone.
    pub fn fixed(tools: Vec<Tool>) -> Self {
        Self { tools, unavailable: Vec::new(), live: false }
    }
}

/// A source of tools.
#[async_trait::async_trait]
pub trait ToolSource: Send + Sync {
    /// The tools this source offers the deployment on this node.
    async fn offer(&self, engine: &Engine, dep: &DeploymentId, spec: &herm_types::config::DeploymentSpec) -> Offer;
}

/// Who a call is made for and with what: given to a runner.
pub struct CallContext<'a> {
    pub engine: &'a Engine,
    pub dep: &'a DeploymentRecord,
    pub thread: &'a ThreadId,
    pub run: Option<&'a RunId>,
    pub tool_use_id: &'a str,
    /// The run's redactor: anything a runner publishes or returns passes through it.
    pub redactor: &'a Arc<Redactor>,
}

/// What a call produced: its output, and records to commit with its result (workspace
/// changes, a server found down).
pub struct Ran {
    pub output: ToolOutput,
    pub records: Vec<EventKind>,
}

impl Ran {
    pub fn output(output: ToolOutput) -> Self {
        Self { output, records: Vec::new() }
    }
}

/// How one tool's calls are performed. Arguments arrive checked against the tool's schema,
/// unless the tool says it checks them itself.
#[async_trait::async_trait]
pub trait ToolRunner: Send + Sync {
    async fn run(&self, cx: &CallContext<'_>, args: &Value) -> Result<Ran>;
}
