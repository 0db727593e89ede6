//! A session's herm deployment, made from its pinned agent version, its environment and its
//! vaults' credentials, mounting the memory stores it attaches, with its agent's skills. Pure.

use crate::environments;
use crate::vaults::Bearer;
use crate::{Result, tools, unsupported};
use herm_types::config::{BusyPolicy, DeploymentSpec, Features, Limits, McpServerSpec, MemoryMount, SkillSpec};
use serde_json::Value;
use std::collections::BTreeMap;

/// `claude-sonnet-4-5` resolves through the default provider; `provider/model` is as given.
pub fn model_ref(id: &str, default_provider: &str) -> String {
    if id.contains('/') { id.to_owned() } else { format!("{default_provider}/{id}") }
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The deployment: CMA's semantics where herm has a choice (messages sent while the agent
/// works wait their turn; no memory or automations of herm's own; built-in tools as the
/// agent's toolset says).
/// What a session brings to its deployment besides its agent and environment.
#[derive(Clone, Debug, Default)]
pub struct Attached {
    /// The vaults' `static_bearer` credentials.
    pub bearers: Vec<Bearer>,
    /// Its `memory_store` resources.
    pub mounts: Vec<MemoryMount>,
    /// Its agent's skills, as herm skills.
    pub skills: Vec<SkillSpec>,
    /// Its `budget`: what the session may cost in all (USD).
    pub max_cost_usd: Option<f64>,
}

pub fn deployment(
    agent: &Value,
    environment: &Value,
    attached: &Attached,
    customer_id: &str,
    default_provider: &str,
) -> Result<DeploymentSpec> {
    let bearers = &attached.bearers;
    let tools: Vec<Value> = agent["tools"].as_array().cloned().unwrap_or_default();
    let servers: Vec<Value> = agent["mcp_servers"].as_array().cloned().unwrap_or_default();
    let net = &environment["config"]["networking"];
    if !servers.is_empty() && net["type"] == "limited" && net["allow_mcp_servers"] != true {
        return Err(unsupported(
            "the environment's `limited` networking does not allow MCP servers but the agent has some: set `allow_mcp_servers: true` (herm calls MCP servers from its host, never from the sandbox)",
        ));
    }
    let mut secrets = BTreeMap::new();
    let mut mcp = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let url = s["url"].as_str().unwrap_or_default();
        let headers = bearers.iter().find(|b| same_url(&b.mcp_server_url, url)).map(|b| {
            let name = format!("MCP_TOKEN_{i}");
            secrets.insert(name.clone(), b.secret_id.clone());
            BTreeMap::from([("Authorization".to_owned(), format!("Bearer {{{{secrets.{name}}}}}"))])
        });
        mcp.push(McpServerSpec {
            name: s["name"].as_str().unwrap_or_default().to_owned(),
            url: Some(url.to_owned()),
            headers,
            command: None,
            args: None,
            env: None,
            tools: None,
        });
    }
    let name: String = agent["name"].as_str().unwrap_or("agent").chars().take(100).collect();
    Ok(DeploymentSpec {
        customer_id: customer_id.to_owned(),
        name,
        system_prompt: agent["system"].as_str().unwrap_or_default().to_owned(),
        runtime: "hermes".into(),
        model: Some(model_ref(agent["model"]["id"].as_str().unwrap_or_default(), default_provider)),
        sandbox: environments::sandbox(&environment["config"]),
        mcp_servers: mcp,
        skills: attached.skills.clone(),
        secrets,
        http_tools: vec![],
        tool_policies: tools::policies(&tools),
        busy_policy: BusyPolicy::Queue,
        features: Features {
            memory: false,
            dreaming: false,
            automations: false,
            steering: true,
            filesystem_webhooks: false,
        },
        limits: Limits { max_thread_cost_usd: attached.max_cost_usd, ..Limits::default() },
        memory_mounts: attached.mounts.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_session_deployment_follows_its_agent_environment_and_vaults() {
        let agent = json!({
            "name": "a", "system": "be brief", "model": {"id": "claude-sonnet-4-5"},
            "tools": [{"type": "agent_toolset_20260401", "default_config": {"enabled": true, "permission_policy": {"type": "always_allow"}}, "configs": []},
                      {"type": "mcp_toolset", "mcp_server_name": "docs", "default_config": {"enabled": true, "permission_policy": {"type": "always_ask"}}, "configs": []}],
            "mcp_servers": [{"type": "url", "name": "docs", "url": "http://127.0.0.1:9/mcp"}],
        });
        let env = json!({"config": {"type": "cloud", "networking": {"type": "unrestricted"}}});
        let bearers = vec![Bearer { mcp_server_url: "http://127.0.0.1:9/mcp/".into(), secret_id: "sec_1".into() }];
        let s = deployment(&agent, &env, &Attached { bearers, ..Attached::default() }, "sesn_1", "anthropic").unwrap();
        assert_eq!(s.model.as_deref(), Some("anthropic/claude-sonnet-4-5"));
        assert_eq!(s.system_prompt, "be brief");
        assert_eq!(s.sandbox.network, "on");
        assert_eq!(s.busy_policy, BusyPolicy::Queue);
        assert_eq!(s.secrets["MCP_TOKEN_0"], "sec_1");
        let h = s.mcp_servers[0].headers.as_ref().unwrap();
        assert_eq!(h["Authorization"], "Bearer {{secrets.MCP_TOKEN_0}}");
        assert!(!s.features.memory && !s.features.automations);

        let off = json!({"config": {"type": "cloud", "networking": {"type": "limited", "allow_mcp_servers": false}}});
        assert!(deployment(&agent, &off, &Attached::default(), "s", "anthropic").is_err());
        let no_mcp = json!({"name": "a", "model": {"id": "openai/gpt-4o"}, "tools": [], "mcp_servers": []});
        let s = deployment(&no_mcp, &off, &Attached::default(), "s", "anthropic").unwrap();
        assert_eq!(s.sandbox.network, "off");
        assert_eq!(s.model.as_deref(), Some("openai/gpt-4o"));
        assert!(s.mcp_servers[..].is_empty());
    }
}
