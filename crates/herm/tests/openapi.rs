//! The OpenAPI 3.1 document is served without authentication and describes every route and
//! wire type of this version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_covers_the_api() {
    let (h, _dir) = start_herm().await;
    let (s, doc) = h.request("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/healthz",
        "/v1/api-keys",
        "/v1/api-keys/{key_id}",
        "/v1/secrets",
        "/v1/secrets/{secret_id}",
        "/v1/providers",
        "/v1/providers/{name}",
        "/v1/deployments",
        "/v1/deployments/{deployment_id}",
        "/v1/deployments/{deployment_id}/messages",
        "/v1/deployments/{deployment_id}/threads",
        "/v1/deployments/{deployment_id}/threads/{thread_id}",
        "/v1/deployments/{deployment_id}/runs/{run_id}",
        "/v1/deployments/{deployment_id}/events",
        "/v1/threads/{thread_id}/events",
        "/v1/threads/{thread_id}/events/stream",
        "/v1/deployments/{deployment_id}/automations",
        "/v1/deployments/{deployment_id}/automations/{automation_id}",
        "/v1/deployments/{deployment_id}/automations/{automation_id}/run",
        "/v1/deployments/{deployment_id}/automations/{automation_id}/pause",
        "/v1/deployments/{deployment_id}/automations/{automation_id}/resume",
        "/v1/deployments/{deployment_id}/automations/{automation_id}/firings",
        "/v1/triggers/{automation_id}",
        "/v1/deployments/{deployment_id}/goals",
        "/v1/deployments/{deployment_id}/goals/{goal_id}",
        "/v1/deployments/{deployment_id}/goals/{goal_id}/cancel",
    ] {
        assert!(paths.contains_key(p), "missing path {p}");
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in [
        "DeploymentSpec",
        "DeploymentResponse",
        "Event",
        "EventKind",
        "Problem",
        "MessageRequest",
        "UserEvent",
        "RunResponse",
        "SecretCreate",
        "AutomationCreate",
        "Automation",
        "Firing",
        "GoalCreate",
        "Goal",
    ] {
        assert!(schemas.contains_key(s), "missing schema {s}: {:?}", schemas.keys().collect::<Vec<_>>());
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // A webhook trigger authenticates with its automation's token, not an API key.
    assert_eq!(doc["paths"]["/v1/triggers/{automation_id}"]["post"]["security"], json!([{"trigger_token": []}]));
    // Every `{name}` of every path is a defined path parameter; every operation id is unique;
    // every error response is problem+json; query parameters are in the query.
    let mut ids = std::collections::HashSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for seg in path.split('/').filter(|s| s.starts_with('{')) {
                let name = seg.trim_start_matches('{').trim_end_matches('}');
                assert!(
                    params.iter().any(|p| p["in"] == "path" && p["name"] == name && p["required"] == true),
                    "{method} {path}: `{name}` undefined"
                );
            }
            for p in &params {
                if p["in"] == "path" {
                    assert!(path.contains(&format!("{{{}}}", p["name"].as_str().unwrap())), "{method} {path}: {p}");
                }
            }
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_owned()), "{method} {path}: duplicate id");
            for (status, resp) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') {
                    assert!(resp["content"]["application/problem+json"].is_object(), "{method} {path} {status}");
                }
            }
            if path != "/healthz" && path != "/v1/openapi.json" {
                assert!(op["responses"]["401"].is_object(), "{method} {path}: 401 undocumented");
            }
        }
    }
    let revoke = &paths["/v1/api-keys/{key_id}"]["delete"]["responses"];
    assert!(revoke["409"].is_object(), "revoking the last admin key is a documented 409");
    assert!(paths["/v1/deployments/{deployment_id}"]["patch"]["responses"]["412"].is_object());
    // Every other route needs a key.
    let (s, _) = h.request("GET", "/v1/deployments", None, None).await;
    assert_eq!(s, 401);
}
