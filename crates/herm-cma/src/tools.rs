//! CMA's tools on herm's: the built-in toolset's names and inputs, per-tool permission
//! policies onto `tool_policies`, `mcp_toolset` onto MCP tool globs. Pure.

use crate::{Result, invalid, unsupported};
use herm_types::config::ToolPermission;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const TOOLSET: &str = "agent_toolset_20260401";
/// CMA's built-in tool → herm's sandbox tool.
pub const BUILTIN: &[(&str, &str)] = &[
    ("bash", "shell"),
    ("read", "read_file"),
    ("write", "write_file"),
    ("edit", "edit_file"),
    ("glob", "list_files"),
    ("grep", "search_files"),
];
/// Built-in tools of CMA that herm does not have.
pub const UNAVAILABLE: &[&str] = &["web_fetch", "web_search"];
/// herm's own tools an agent toolset brings along (a workspace image for the model to see).
const EXTRA: &[&str] = &["view_image"];
const MAX_TOOLS: usize = 256;
const MAX_NAME: usize = 128;

/// How a herm tool appears on a CMA stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Shown {
    /// `agent.tool_use` with CMA's name and input.
    Builtin { name: String, input: Value },
    /// `agent.mcp_tool_use`.
    Mcp { server: String, name: String, input: Value },
}

/// What a herm tool call looks like on the CMA side.
pub fn shown(tool: &str, args: &Value) -> Shown {
    if let Some((server, name)) = tool.split_once("__") {
        return Shown::Mcp { server: server.into(), name: name.into(), input: args.clone() };
    }
    let Some((cma, _)) = BUILTIN.iter().find(|(_, h)| *h == tool) else {
        return Shown::Builtin { name: tool.into(), input: args.clone() };
    };
    let mut input = args.as_object().cloned().unwrap_or_default();
    if let Some(p) = input.remove("path") {
        if *cma == "glob" || *cma == "grep" {
            input.insert("path".into(), p);
        } else {
            input.insert("file_path".into(), p);
        }
    }
    if *cma == "glob" {
        input.insert("pattern".into(), json!("*"));
    }
    if let Some(t) = input.remove("timeout_secs").and_then(|t| t.as_u64()) {
        input.insert("timeout_ms".into(), json!(t * 1000));
    }
    Shown::Builtin { name: (*cma).into(), input: Value::Object(input) }
}

fn policy(v: Option<&Value>, default: &str, at: &str) -> Result<String> {
    match v {
        None | Some(Value::Null) => Ok(default.into()),
        Some(p) => match p.get("type").and_then(Value::as_str) {
            Some(t @ ("always_allow" | "always_ask" | "auto")) => Ok(t.into()),
            _ => Err(invalid(format!("`{at}.permission_policy.type` must be always_allow, always_ask or auto"))),
        },
    }
}

fn enabled(v: &Value, default: bool, at: &str) -> Result<bool> {
    match v.get("enabled") {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(format!("`{at}.enabled` must be a boolean"))),
    }
}

fn config(name: &str, on: bool, policy: &str) -> Value {
    json!({"name": name, "type": name, "enabled": on, "permission_policy": {"type": policy}})
}

/// A default config and per-name configs, validated and filled in; names outside `allowed`
/// (when given) are refused.
fn configs(t: &Value, at: &str, default_policy: &str, allowed: Option<&[&str]>) -> Result<(Value, Vec<Value>)> {
    let d = t.get("default_config").cloned().unwrap_or(Value::Null);
    if !d.is_null() && !d.is_object() {
        return Err(invalid(format!("`{at}.default_config` must be an object")));
    }
    let d_on = enabled(&d, true, &format!("{at}.default_config"))?;
    let d_policy = policy(d.get("permission_policy"), default_policy, &format!("{at}.default_config"))?;
    let mut out = Vec::new();
    let list = match t.get("configs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(invalid(format!("`{at}.configs` must be an array"))),
    };
    for (i, c) in list.iter().enumerate() {
        let here = format!("{at}.configs[{i}]");
        let name =
            c.get("name").and_then(Value::as_str).ok_or_else(|| invalid(format!("`{here}.name` is required")))?;
        if let Some(allowed) = allowed
            && !allowed.contains(&name)
        {
            return Err(invalid(format!("`{here}.name`: unknown tool `{name}`")));
        }
        if out.iter().any(|o: &Value| o["name"] == name) {
            return Err(invalid(format!("`{here}.name`: `{name}` is configured twice")));
        }
        let on = enabled(c, d_on, &here)?;
        let p = policy(c.get("permission_policy"), &d_policy, &here)?;
        out.push(config(name, on, &p));
    }
    let default = json!({"enabled": d_on, "permission_policy": {"type": d_policy}});
    Ok((default, out))
}

/// Validates an agent's `tools` and `mcp_servers` and returns them as responses show them.
/// CMA's web tools are refused when enabled explicitly; when only the default would enable
/// them they are listed `enabled: false`, so the agent says what it really has.
pub fn normalize(tools: Option<&Value>, servers: Option<&Value>) -> Result<(Vec<Value>, Vec<Value>)> {
    let servers = match servers {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(invalid("`mcp_servers` must be an array")),
    };
    if servers.len() > 20 {
        return Err(invalid("`mcp_servers` holds at most 20 servers"));
    }
    let mut names = Vec::new();
    let mut out_servers = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let ty = s.get("type").and_then(Value::as_str).unwrap_or("url");
        if ty != "url" {
            return Err(invalid(format!("`mcp_servers[{i}].type` must be `url`")));
        }
        let name = s.get("name").and_then(Value::as_str).filter(|n| valid_name(n));
        let url =
            s.get("url").and_then(Value::as_str).filter(|u| u.starts_with("http://") || u.starts_with("https://"));
        let (Some(name), Some(url)) = (name, url) else {
            return Err(invalid(format!(
                "`mcp_servers[{i}]` needs a `name` ([A-Za-z0-9_-], 1-128) and an http(s) `url`"
            )));
        };
        if names.contains(&name.to_owned()) {
            return Err(invalid(format!("`mcp_servers[{i}].name`: `{name}` is used twice")));
        }
        names.push(name.to_owned());
        out_servers.push(json!({"type": "url", "name": name, "url": url}));
    }
    let tools = match tools {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(invalid("`tools` must be an array")),
    };
    if tools.len() > MAX_TOOLS {
        return Err(invalid(format!("`tools` holds at most {MAX_TOOLS} entries")));
    }
    let mut out = Vec::new();
    let mut toolsets = 0;
    let mut referenced = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        let at = format!("tools[{i}]");
        match t.get("type").and_then(Value::as_str) {
            Some(TOOLSET) => {
                toolsets += 1;
                let all: Vec<&str> = BUILTIN.iter().map(|(c, _)| *c).chain(UNAVAILABLE.iter().copied()).collect();
                let (default, mut cfgs) = configs(t, &at, "always_allow", Some(&all))?;
                for web in UNAVAILABLE {
                    match cfgs.iter().position(|c| c["name"] == *web) {
                        Some(p) if t["configs"][p].get("enabled") == Some(&Value::Bool(true)) => {
                            return Err(unsupported(format!(
                                "`{web}` is not available on herm: its sandboxes have no {web} tool (disable it, or give the agent an MCP server that does it)"
                            )));
                        }
                        Some(p) => cfgs[p]["enabled"] = Value::Bool(false),
                        None => cfgs.push(config(
                            web,
                            false,
                            default["permission_policy"]["type"].as_str().unwrap_or("always_allow"),
                        )),
                    }
                }
                out.push(json!({"type": TOOLSET, "default_config": default, "configs": cfgs}));
            }
            Some("mcp_toolset") => {
                let server = t.get("mcp_server_name").and_then(Value::as_str).unwrap_or_default();
                if !names.iter().any(|n| n == server) {
                    return Err(invalid(format!(
                        "`{at}.mcp_server_name`: no MCP server named `{server}` in `mcp_servers`"
                    )));
                }
                if referenced.contains(&server.to_owned()) {
                    return Err(invalid(format!("`{at}`: MCP server `{server}` has two toolsets")));
                }
                referenced.push(server.to_owned());
                let (default, cfgs) = configs(t, &at, "always_ask", None)?;
                out.push(json!({"type": "mcp_toolset", "mcp_server_name": server, "default_config": default, "configs": cfgs}));
            }
            Some("custom") => {
                return Err(unsupported(
                    "custom tools (executed by your client) are not supported by herm yet; herm's agents ask the user through the `ask_user` tool, answered with `user.custom_tool_result`",
                ));
            }
            _ => return Err(invalid(format!("`{at}.type` must be {TOOLSET}, mcp_toolset or custom"))),
        }
    }
    if toolsets > 1 {
        return Err(invalid("`tools` holds at most one agent toolset"));
    }
    if let Some(n) = names.iter().find(|n| !referenced.contains(n)) {
        return Err(invalid(format!("MCP server `{n}` is not referenced by any mcp_toolset in `tools`")));
    }
    Ok((out, out_servers))
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= MAX_NAME && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn permission(on: &Value, policy: &Value) -> ToolPermission {
    match (on.as_bool(), policy["type"].as_str()) {
        (Some(false), _) => ToolPermission::Disabled,
        (_, Some("always_allow")) => ToolPermission::AlwaysAllow,
        // `auto` lets the server judge each call; herm's judgement is to ask a person.
        _ => ToolPermission::AlwaysAsk,
    }
}

/// herm's `tool_policies` for normalised tools: every built-in decided (disabled without a
/// toolset), MCP servers by glob then per tool.
pub fn policies(tools: &[Value]) -> BTreeMap<String, ToolPermission> {
    let mut p = BTreeMap::new();
    let toolset = tools.iter().find(|t| t["type"] == TOOLSET);
    for (cma, herm) in BUILTIN {
        let perm = match toolset {
            None => ToolPermission::Disabled,
            Some(t) => match t["configs"].as_array().and_then(|c| c.iter().find(|c| c["name"] == *cma)) {
                Some(c) => permission(&c["enabled"], &c["permission_policy"]),
                None => permission(&t["default_config"]["enabled"], &t["default_config"]["permission_policy"]),
            },
        };
        p.insert((*herm).to_owned(), perm);
    }
    for extra in EXTRA {
        let perm = match toolset {
            None => ToolPermission::Disabled,
            Some(t) => permission(&t["default_config"]["enabled"], &t["default_config"]["permission_policy"]),
        };
        p.insert((*extra).to_owned(), perm);
    }
    for t in tools.iter().filter(|t| t["type"] == "mcp_toolset") {
        let server = t["mcp_server_name"].as_str().unwrap_or_default();
        p.insert(
            format!("{server}__*"),
            permission(&t["default_config"]["enabled"], &t["default_config"]["permission_policy"]),
        );
        for c in t["configs"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let name = c["name"].as_str().unwrap_or_default();
            p.insert(format!("{server}__{name}"), permission(&c["enabled"], &c["permission_policy"]));
        }
    }
    p
}

#[cfg(test)]
mod tests;
