//! The MCP benchmark's baseline: a bare SDK client with none of herm's layer (no schema
//! check, secrets, `_meta`, rendering or jail), calling the same server as herm does. It lives
//! with the benchmark, not in the engine that ships.

use rmcp::RoleClient;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::Value;
use std::time::Duration;

pub struct Direct {
    service: RunningService<RoleClient, ()>,
}

impl Direct {
    /// Connects to `url` (streamable HTTP) or runs `command args` as a plain child.
    pub async fn connect(url: Option<&str>, command: &str, args: &[String]) -> anyhow::Result<Self> {
        let service = match url {
            Some(u) => {
                // The same HTTP client settings as the engine's, so only herm's layer differs.
                let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build()?;
                let config = StreamableHttpClientTransportConfig::with_uri(u.to_owned());
                ().serve(StreamableHttpClientTransport::with_client(http, config)).await?
            }
            None => {
                let home = std::env::temp_dir().join(format!("herm-bench-direct-{}", std::process::id()));
                let cmd = herm_sandbox::host::plain_child(&home, command, args, &Default::default())
                    .map_err(anyhow::Error::msg)?;
                let (t, _) = TokioChildProcess::builder(cmd).stderr(std::process::Stdio::null()).spawn()?;
                ().serve(t).await?
            }
        };
        Ok(Self { service })
    }

    /// Calls `tool` and returns its first text block.
    pub async fn call(&self, tool: &str, args: &Value) -> anyhow::Result<String> {
        let mut params = CallToolRequestParams::new(tool.to_owned());
        params.arguments = args.as_object().cloned();
        let r = self.service.peer().call_tool(params).await?;
        // Read through the JSON form, as herm does, so SDK type changes do not reach here.
        Ok(r.content
            .iter()
            .filter_map(|c| serde_json::to_value(c).ok())
            .find_map(|v| v.get("text").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default())
    }
}
