//! What the generated document needs before a client generator or an API fuzzer can hold
//! us to it, applied to the whole document in one pass instead of repeated on every handler:
//! every `{name}` of a path is a defined path parameter; every operation lists the error
//! statuses it can answer, each as `application/problem+json`; and the operations that create
//! a resource link to the ones that use its id (OpenAPI links, for stateful testing).

use serde_json::{Map, Value, json};

/// The error statuses an operation can answer, from what it is.
fn error_statuses(path: &str, method: &str, authenticated: bool, has_body: bool) -> Vec<u16> {
    if !authenticated {
        return Vec::new();
    }
    let mut s = vec![400, 401, 403];
    if path.contains('{') || path.starts_with("/v1/deployments/") {
        s.push(404);
    }
    let write = method != "get";
    if write {
        // Idempotency-key conflicts, busy threads, stale state, the last admin key.
        s.push(409);
    }
    let if_match = (path.starts_with("/v1/deployments/{deployment_id}")
        && (path.ends_with("{deployment_id}") || path.contains("/skills") || path.contains("/tools/")))
        && write;
    if if_match {
        s.push(412);
    }
    if has_body {
        s.push(413);
    }
    if write || path.ends_with("/messages") {
        s.push(422);
    }
    if path.contains("/files") {
        // No sandbox for the deployment on this server (409), or its backend did not answer.
        if !s.contains(&409) {
            s.push(409);
        }
        s.push(503);
    }
    s
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Invalid request (`validation_error`)",
        401 => "Missing, unknown or revoked API key (`unauthorized`)",
        403 => "The key lacks the scope (`forbidden`)",
        404 => "Not found (`not_found`)",
        409 => {
            "Conflict with the current state (`conflict`, `thread_busy`, `deployment_not_ready`, `last_admin_key`, …)"
        }
        412 => "`If-Match` names a stale revision (`precondition_failed`)",
        413 => "The body is too large (`payload_too_large`)",
        422 => "Unprocessable (`invalid_secret_ref`, `invalid_skill`, `unsupported`, …)",
        503 => "The sandbox is unavailable (`sandbox_unavailable`)",
        _ => "Error",
    }
}

fn problem(status: u16) -> Value {
    json!({
        "description": reason(status),
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

/// A unique, generator-friendly operation id from the method and path:
/// `get /v1/deployments/{deployment_id}/threads` → `getDeploymentsByDeploymentIdThreads`.
pub(crate) fn operation_id(method: &str, path: &str) -> String {
    let camel = |s: &str| -> String {
        s.split(['_', '-', '.'])
            .filter(|w| !w.is_empty())
            .map(|w| {
                let mut c = w.chars();
                c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
            })
            .collect()
    };
    let mut id = method.to_owned();
    for seg in path.split('/').filter(|s| !s.is_empty() && *s != "v1") {
        match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(p) => id.push_str(&format!("By{}", camel(p))),
            None => id.push_str(&camel(seg)),
        }
    }
    id
}

/// The `{name}` segments of a path template.
fn template_params(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect()
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "minLength": 1},
           "description": format!("The `{name}`.")})
}

/// Completes one operation: its id, path parameters and error responses.
fn complete(path: &str, method: &str, op: &mut Map<String, Value>) {
    op.insert("operationId".into(), Value::String(operation_id(method, path)));
    let params = op.entry("parameters").or_insert_with(|| json!([]));
    if let Some(list) = params.as_array_mut() {
        for name in template_params(path) {
            let defined = list.iter().any(|p| p["in"] == "path" && p["name"] == name);
            if !defined {
                list.push(path_param(name));
            }
        }
        if list.is_empty() {
            op.remove("parameters");
        }
    }
    let authenticated = !matches!(path, "/healthz" | "/v1/openapi.json");
    if !authenticated {
        op.insert("security".into(), json!([]));
    }
    let has_body = op.contains_key("requestBody");
    let responses = op.entry("responses").or_insert_with(|| json!({}));
    if let Some(r) = responses.as_object_mut() {
        for status in error_statuses(path, method, authenticated, has_body) {
            r.entry(status.to_string()).or_insert_with(|| problem(status));
        }
        // Every error is problem+json, including those a handler annotated itself.
        for (status, resp) in r.iter_mut() {
            if status.starts_with('4') || status.starts_with('5') {
                let description = resp.get("description").cloned().unwrap_or_else(|| json!(reason(0)));
                *resp = problem(status.parse().unwrap_or(0));
                resp["description"] = description;
            }
        }
    }
}

/// A response type that flattens a strict request type (`additionalProperties: false`, as
/// `DeploymentSpec` is) would forbid its own other fields: such references inside `allOf`
/// point at a relaxed copy, `<Name>Fields`, instead.
fn relax_flattened(doc: &mut Value) {
    let Some(schemas) = doc.pointer("/components/schemas").and_then(Value::as_object).cloned() else { return };
    let strict = |name: &str| schemas.get(name).is_some_and(|s| s.get("additionalProperties") == Some(&json!(false)));
    let mut copies = Map::new();
    let mut out = schemas.clone();
    for (_, schema) in out.iter_mut() {
        let Some(parts) = schema.get_mut("allOf").and_then(Value::as_array_mut) else { continue };
        for part in parts {
            let Some(name) =
                part.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/"))
            else {
                continue;
            };
            if strict(name) {
                let mut relaxed = schemas[name].clone();
                if let Some(o) = relaxed.as_object_mut() {
                    o.remove("additionalProperties");
                }
                copies.insert(format!("{name}Fields"), relaxed);
                *part = json!({"$ref": format!("#/components/schemas/{name}Fields")});
            }
        }
    }
    out.extend(copies);
    if let Some(s) = doc.pointer_mut("/components/schemas") {
        *s = Value::Object(out);
    }
}

/// Links from a created resource to the operations on it.
fn links(doc: &mut Value) {
    let link = |method: &str, path: &str, params: Value| json!({"operationId": operation_id(method, path), "parameters": params});
    let d = "/v1/deployments/{deployment_id}";
    let dep = json!({"deployment_id": "$response.body#/deployment_id"});
    let sets: [(&str, &str, &str, Value); 10] = [
        (
            "/v1/deployments",
            "post",
            "201",
            json!({
                "GetDeployment": link("get", d, dep.clone()),
                "PatchDeployment": link("patch", d, dep.clone()),
                "SendMessage": link("post", &format!("{d}/messages"), dep.clone()),
                "ListThreads": link("get", &format!("{d}/threads"), dep.clone()),
                "ListSkills": link("get", &format!("{d}/skills"), dep.clone()),
                "AddSkill": link("post", &format!("{d}/skills"), dep.clone()),
                "CreateThread": link("post", &format!("{d}/threads"), dep.clone()),
                "ListFiles": link("get", &format!("{d}/files"), dep.clone()),
                "ListTools": link("get", &format!("{d}/tools"), dep.clone()),
                "CreateAutomation": link("post", &format!("{d}/automations"), dep.clone()),
                "CreateGoal": link("post", &format!("{d}/goals"), dep.clone()),
                "DeleteDeployment": link("delete", d, dep),
            }),
        ),
        (
            "/v1/deployments/{deployment_id}/threads",
            "post",
            "201",
            json!({
                "GetThread": link("get", &format!("{d}/threads/{{thread_id}}"), json!({
                    "deployment_id": "$request.path.deployment_id", "thread_id": "$response.body#/thread_id"})),
                "SendEvents": link("post", "/v1/threads/{thread_id}/events", json!({"thread_id": "$response.body#/thread_id"})),
                "ListEvents": link("get", "/v1/threads/{thread_id}/events", json!({"thread_id": "$response.body#/thread_id"})),
            }),
        ),
        (
            "/v1/deployments/{deployment_id}/messages",
            "post",
            "202",
            json!({"GetRun": link("get", &format!("{d}/runs/{{run_id}}"), json!({
                "deployment_id": "$request.path.deployment_id", "run_id": "$response.body#/run_id"}))}),
        ),
        ("/v1/deployments/{deployment_id}/skills", "post", "201", {
            let skill = json!({"deployment_id": "$request.path.deployment_id", "skill_id": "$response.body#/skill_id"});
            json!({
                "GetSkill": link("get", &format!("{d}/skills/{{skill_id}}"), skill.clone()),
                "ReplaceSkill": link("put", &format!("{d}/skills/{{skill_id}}"), skill.clone()),
                "DeleteSkill": link("delete", &format!("{d}/skills/{{skill_id}}"), skill),
            })
        }),
        ("/v1/deployments/{deployment_id}/automations", "post", "201", {
            let a = json!({"deployment_id": "$request.path.deployment_id", "automation_id": "$response.body#/automation_id"});
            let at = |suffix: &str| format!("{d}/automations/{{automation_id}}{suffix}");
            json!({
                "GetAutomation": link("get", &at(""), a.clone()),
                "PatchAutomation": link("patch", &at(""), a.clone()),
                "RunAutomation": link("post", &at("/run"), a.clone()),
                "PauseAutomation": link("post", &at("/pause"), a.clone()),
                "ResumeAutomation": link("post", &at("/resume"), a.clone()),
                "ListFirings": link("get", &at("/firings"), a.clone()),
                "DeleteAutomation": link("delete", &at(""), a),
            })
        }),
        ("/v1/deployments/{deployment_id}/memories", "post", "201", {
            let m = json!({"deployment_id": "$request.path.deployment_id", "memory_id": "$response.body#/memory_id"});
            let at = |s: &str| format!("{d}/memories/{{memory_id}}{s}");
            json!({
                "GetMemory": link("get", &at(""), m.clone()),
                "PatchMemory": link("patch", &at(""), m.clone()),
                "ListMemoryVersions": link("get", &at("/versions"), m.clone()),
                "DeleteMemory": link("delete", &at(""), m),
            })
        }),
        ("/v1/deployments/{deployment_id}/dreams", "post", "202", {
            let m = json!({"deployment_id": "$request.path.deployment_id", "dream_id": "$response.body#/dream_id"});
            json!({"GetDream": link("get", &format!("{d}/dreams/{{dream_id}}"), m)})
        }),
        ("/v1/deployments/{deployment_id}/goals", "post", "201", {
            let g = json!({"deployment_id": "$request.path.deployment_id", "goal_id": "$response.body#/goal_id"});
            json!({
                "GetGoal": link("get", &format!("{d}/goals/{{goal_id}}"), g.clone()),
                "CancelGoal": link("post", &format!("{d}/goals/{{goal_id}}/cancel"), g),
            })
        }),
        (
            "/v1/api-keys",
            "post",
            "201",
            json!({"RevokeKey": link("delete", "/v1/api-keys/{key_id}", json!({"key_id": "$response.body#/key_id"}))}),
        ),
        (
            "/v1/secrets",
            "post",
            "201",
            json!({"DeleteSecret": link("delete", "/v1/secrets/{secret_id}", json!({"secret_id": "$response.body#/secret_id"}))}),
        ),
    ];
    for (path, method, status, l) in sets {
        if let Some(r) = doc.pointer_mut(&format!("/paths/{}/{method}/responses/{status}", path.replace('/', "~1")))
            && let Some(o) = r.as_object_mut()
        {
            o.insert("links".into(), l);
        }
    }
}

/// Applies the contract to a generated document.
pub fn apply(doc: &mut Value) {
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for (method, op) in item.iter_mut() {
                if let Some(op) = op.as_object_mut() {
                    complete(path, method, op);
                }
            }
        }
    }
    links(doc);
    relax_flattened(doc);
    event_trace_ids(doc);
}

/// An event of a run names its trace and span on the wire (computed when it is written out,
/// see `herm_types::trace`), which the derived schema cannot see.
fn event_trace_ids(doc: &mut Value) {
    let Some(parts) = doc.pointer_mut("/components/schemas/Event/allOf").and_then(Value::as_array_mut) else { return };
    for part in parts {
        if let Some(props) = part.get_mut("properties").and_then(Value::as_object_mut) {
            for (name, what) in [
                ("trace_id", "W3C trace id (32 hex) of the event's run"),
                ("span_id", "W3C span id (16 hex) of the span the event belongs to"),
            ] {
                props.insert(name.into(), json!({"type": "string", "description": what}));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_declare_their_trace_ids() {
        let mut doc = json!({"components": {"schemas": {"Event": {"allOf": [
            {"$ref": "#/components/schemas/EventKind"}, {"properties": {"id": {"type": "string"}}, "type": "object"}]}}}});
        event_trace_ids(&mut doc);
        assert_eq!(doc.pointer("/components/schemas/Event/allOf/1/properties/trace_id/type"), Some(&json!("string")));
        assert!(doc.pointer("/components/schemas/Event/allOf/1/properties/span_id").is_some());
    }

    #[test]
    fn every_template_parameter_is_defined_once() {
        let mut doc = json!({"paths": {"/v1/deployments/{deployment_id}/skills/{skill_id}": {"get": {
            "parameters": [{"name": "skill_id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "ok"}}}}}});
        apply(&mut doc);
        let op = &doc["paths"]["/v1/deployments/{deployment_id}/skills/{skill_id}"]["get"];
        let names: Vec<&str> =
            op["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["skill_id", "deployment_id"]);
        let codes: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
        assert_eq!(codes, vec!["200", "400", "401", "403", "404"]);
        assert_eq!(
            op["responses"]["404"]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
    }

    #[test]
    fn operation_ids_are_unique_identifiers() {
        assert_eq!(
            operation_id("get", "/v1/deployments/{deployment_id}/threads"),
            "getDeploymentsByDeploymentIdThreads"
        );
        assert_eq!(operation_id("put", "/v1/api-keys/{key_id}"), "putApiKeysByKeyId");
        assert_eq!(operation_id("get", "/healthz"), "getHealthz");
    }

    #[test]
    fn statuses_follow_what_an_operation_is() {
        let cases: [(&str, &str, bool, bool, Vec<u16>); 4] = [
            ("/healthz", "get", false, false, vec![]),
            ("/v1/deployments", "post", true, true, vec![400, 401, 403, 409, 413, 422]),
            ("/v1/deployments/{deployment_id}", "patch", true, true, vec![400, 401, 403, 404, 409, 412, 413, 422]),
            ("/v1/deployments/{deployment_id}/files", "get", true, false, vec![400, 401, 403, 404, 409, 503]),
        ];
        for (path, method, auth, body, want) in cases {
            assert_eq!(error_statuses(path, method, auth, body), want, "{method} {path}");
        }
    }
}
