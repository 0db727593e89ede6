use super::*;
use crate::Error;

#[test]
fn herm_calls_are_shown_with_cma_names_and_inputs() {
    let cases = [
        (
            "shell",
            json!({"command": "ls", "timeout_secs": 5}),
            Shown::Builtin { name: "bash".into(), input: json!({"command": "ls", "timeout_ms": 5000}) },
        ),
        (
            "read_file",
            json!({"path": "a.txt"}),
            Shown::Builtin { name: "read".into(), input: json!({"file_path": "a.txt"}) },
        ),
        (
            "write_file",
            json!({"path": "a", "content": "x"}),
            Shown::Builtin { name: "write".into(), input: json!({"file_path": "a", "content": "x"}) },
        ),
        (
            "edit_file",
            json!({"path": "a", "old_string": "x", "new_string": "y"}),
            Shown::Builtin {
                name: "edit".into(),
                input: json!({"file_path": "a", "old_string": "x", "new_string": "y"}),
            },
        ),
        (
            "list_files",
            json!({"path": "src"}),
            Shown::Builtin { name: "glob".into(), input: json!({"pattern": "*", "path": "src"}) },
        ),
        (
            "search_files",
            json!({"pattern": "x"}),
            Shown::Builtin { name: "grep".into(), input: json!({"pattern": "x"}) },
        ),
        (
            "docs__search",
            json!({"q": 1}),
            Shown::Mcp { server: "docs".into(), name: "search".into(), input: json!({"q": 1}) },
        ),
        (
            "view_image",
            json!({"path": "a.png"}),
            Shown::Builtin { name: "view_image".into(), input: json!({"path": "a.png"}) },
        ),
    ];
    for (tool, args, want) in cases {
        assert_eq!(shown(tool, &args), want, "{tool}");
    }
}

#[test]
fn a_toolset_becomes_policies() {
    let (tools, _) = normalize(
        Some(&json!([{"type": TOOLSET, "configs": [{"name": "bash", "permission_policy": {"type": "always_ask"}}, {"name": "write", "enabled": false}]}])),
        None,
    )
    .unwrap();
    let p = policies(&tools);
    assert_eq!(p["shell"], ToolPermission::AlwaysAsk);
    assert_eq!(p["write_file"], ToolPermission::Disabled);
    assert_eq!(p["read_file"], ToolPermission::AlwaysAllow);
    assert_eq!(p["view_image"], ToolPermission::AlwaysAllow);
    // The web tools are shown disabled, not silently missing.
    let cfgs = tools[0]["configs"].as_array().unwrap();
    for web in UNAVAILABLE {
        let c = cfgs.iter().find(|c| c["name"] == *web).unwrap();
        assert_eq!(c["enabled"], false);
    }
}

#[test]
fn no_toolset_means_no_builtin_tools() {
    let p = policies(&[]);
    for (_, herm) in BUILTIN {
        assert_eq!(p[*herm], ToolPermission::Disabled);
    }
}

#[test]
fn mcp_toolsets_default_to_asking_and_auto_asks() {
    let (tools, servers) = normalize(
        Some(&json!([{"type": "mcp_toolset", "mcp_server_name": "docs", "configs": [{"name": "read", "permission_policy": {"type": "always_allow"}}, {"name": "w", "permission_policy": {"type": "auto"}}]}])),
        Some(&json!([{"type": "url", "name": "docs", "url": "http://127.0.0.1:1/mcp"}])),
    )
    .unwrap();
    assert_eq!(servers.len(), 1);
    let p = policies(&tools);
    assert_eq!(p["docs__*"], ToolPermission::AlwaysAsk);
    assert_eq!(p["docs__read"], ToolPermission::AlwaysAllow);
    assert_eq!(p["docs__w"], ToolPermission::AlwaysAsk);
}

#[test]
fn refusals_name_the_problem() {
    let server = json!([{"type": "url", "name": "docs", "url": "http://x/mcp"}]);
    let cases: Vec<(Value, Option<Value>, &str, bool)> = vec![
        (json!([{"type": TOOLSET, "configs": [{"name": "web_search", "enabled": true}]}]), None, "web_search", true),
        (
            json!([{"type": "custom", "name": "x", "description": "d", "input_schema": {"type": "object"}}]),
            None,
            "custom tools",
            true,
        ),
        (json!([{"type": TOOLSET, "configs": [{"name": "fly"}]}]), None, "unknown tool", false),
        (json!([{"type": TOOLSET}, {"type": TOOLSET}]), None, "at most one", false),
        (json!([{"type": "mcp_toolset", "mcp_server_name": "nope"}]), Some(server.clone()), "no MCP server", false),
        (json!([]), Some(server.clone()), "not referenced", false),
        (
            json!([{"type": TOOLSET, "default_config": {"permission_policy": {"type": "sometimes"}}}]),
            None,
            "permission_policy",
            false,
        ),
        (json!([{"type": "mystery"}]), None, "type", false),
    ];
    for (tools, servers, words, is_unsupported) in cases {
        let e = normalize(Some(&tools), servers.as_ref()).unwrap_err();
        assert!(e.to_string().contains(words), "{tools}: {e}");
        assert_eq!(matches!(e, Error::Unsupported(_)), is_unsupported, "{tools}: {e:?}");
    }
}
