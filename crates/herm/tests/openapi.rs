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
    ] {
        assert!(schemas.contains_key(s), "missing schema {s}: {:?}", schemas.keys().collect::<Vec<_>>());
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // Every other route needs a key.
    let (s, _) = h.request("GET", "/v1/deployments", None, None).await;
    assert_eq!(s, 401);
}
