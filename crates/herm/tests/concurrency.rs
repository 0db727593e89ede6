//! No lost edits: concurrent changes to one deployment's spec all land, `ETag`/`If-Match`
//! refuse a stale edit with 412, the last admin key cannot be revoked (and `HERM_ADMIN_KEY`
//! revives a revoked one at restart), and fields that cannot act yet (and attachments) are
//! refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

fn skill(name: &str) -> Value {
    json!({"name": name, "source": "inline", "content": format!("---\nname: {name}\ndescription: d\n---\nbody")})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_skill_and_tool_policy_edits_all_land() {
    let (h, _dir) = start_herm().await;
    let tools: Vec<Value> = (0..30)
        .map(|i| {
            json!({"name": format!("t{i}"), "description": "d", "method": "GET", "url": "http://127.0.0.1:9/x",
                   "input_schema": {"type": "object"}})
        })
        .collect();
    let d = h.deploy(&json!({"customer_id": "c", "name": "n", "system_prompt": "s", "http_tools": tools})).await;
    let dep = d["deployment_id"].as_str().unwrap().to_owned();
    let h = std::sync::Arc::new(h);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (h, dep) = (h.clone(), dep.clone());
        tasks.push(tokio::spawn(async move {
            if i < 20 {
                h.request(
                    "POST",
                    &format!("/v1/deployments/{dep}/skills"),
                    Some(&h.admin_key),
                    Some(&skill(&format!("s{i}"))),
                )
                .await
            } else {
                let body = json!({"permission": "always_ask"});
                h.request("PATCH", &format!("/v1/deployments/{dep}/tools/t{}", i - 20), Some(&h.admin_key), Some(&body))
                    .await
            }
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let (s, v) = t.await.unwrap();
        assert!(s == 200 || s == 201, "edit {i}: {s} {v}");
    }
    let (_, skills) = h.get(&format!("/v1/deployments/{dep}/skills")).await;
    let mut names: Vec<String> =
        skills["data"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("s{i}")).collect();
    want.sort();
    assert_eq!(names, want);
    let (_, tools) = h.get(&format!("/v1/deployments/{dep}/tools")).await;
    for i in 0..30 {
        let t = tools["data"].as_array().unwrap().iter().find(|t| t["name"] == format!("t{i}")).unwrap();
        assert_eq!(t["permission"], "always_ask", "{t}");
    }
    // Every edit moved the revision on by exactly one.
    let (_, headers, _) = h.request_with_headers("GET", &format!("/v1/deployments/{dep}"), &[], None).await;
    assert_eq!(headers.get("etag").unwrap(), "\"51\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_refuses_a_stale_edit() {
    let (h, _dir) = start_herm().await;
    let d = h.deploy(&json!({"customer_id": "c", "name": "n", "system_prompt": "s"})).await;
    let path = format!("/v1/deployments/{}", d["deployment_id"].as_str().unwrap());
    let (s, headers, _) = h.request_with_headers("GET", &path, &[], None).await;
    assert_eq!(s, 200);
    let tag = headers.get("etag").unwrap().to_str().unwrap().to_owned();
    assert_eq!(tag, "\"1\"");
    let (s, headers, v) =
        h.request_with_headers("PATCH", &path, &[("if-match", &tag)], Some(&json!({"name": "renamed"}))).await;
    assert_eq!((s, v["name"].as_str()), (200, Some("renamed")), "{v}");
    assert_eq!(headers.get("etag").unwrap(), "\"2\"");
    // The same stale tag again: refused, and nothing changed.
    for (method, p, body) in [
        ("PATCH", path.clone(), Some(json!({"name": "lost"}))),
        ("POST", format!("{path}/skills"), Some(skill("late"))),
        ("DELETE", path.clone(), None),
    ] {
        let (s, _, v) = h.request_with_headers(method, &p, &[("if-match", &tag)], body.as_ref()).await;
        assert_eq!((s, v["code"].as_str()), (412, Some("precondition_failed")), "{method} {p}: {v}");
    }
    let (s, _, v) = h.request_with_headers("PATCH", &path, &[("if-match", "\"nonsense\"")], Some(&json!({}))).await;
    assert_eq!((s, v["code"].as_str()), (412, Some("precondition_failed")), "{v}");
    let (_, v) = h.get(&path).await;
    assert_eq!(v["name"], "renamed");
    let (s, _, _) = h.request_with_headers("PATCH", &path, &[("if-match", "*")], Some(&json!({"name": "any"}))).await;
    assert_eq!(s, 200);
    // A skill edit names the revision too, and answers with the next one.
    let (s, headers, v) = h
        .request_with_headers("POST", &format!("{path}/skills"), &[("if-match", "\"3\"")], Some(&skill("fresh")))
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(headers.get("etag").unwrap(), "\"4\"");
    let (s, _, v) = h.request_with_headers("DELETE", &path, &[("if-match", "\"4\"")], None).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_admin_key_stays_and_the_operator_key_comes_back() {
    let (mut h, _dir) = start_herm().await;
    let (_, keys) = h.get("/v1/api-keys").await;
    let first = keys["data"][0]["key_id"].as_str().unwrap().to_owned();
    let (s, v) = h.request("DELETE", &format!("/v1/api-keys/{first}"), Some(&h.admin_key.clone()), None).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("last_admin_key")), "{v}");
    // With a second admin key, the operator's key can go; then the second is the last one.
    let second = h.ok("POST", "/v1/api-keys", &json!({"name": "ops", "scopes": ["admin"]}), 201).await;
    let key2 = second["key"].as_str().unwrap().to_owned();
    let (s, _) = h.request("DELETE", &format!("/v1/api-keys/{first}"), Some(&key2), None).await;
    assert_eq!(s, 204);
    let (s, _) = h.request("GET", "/v1/api-keys", Some(&h.admin_key.clone()), None).await;
    assert_eq!(s, 401);
    let (s, v) =
        h.request("DELETE", &format!("/v1/api-keys/{}", second["key_id"].as_str().unwrap()), Some(&key2), None).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("last_admin_key")), "{v}");
    // A key without admin scope can always be revoked.
    let (s, reader) = h
        .request("POST", "/v1/api-keys", Some(&key2), Some(&json!({"name": "r", "scopes": ["deployments:read"]})))
        .await;
    assert_eq!(s, 201);
    let (s, _) =
        h.request("DELETE", &format!("/v1/api-keys/{}", reader["key_id"].as_str().unwrap()), Some(&key2), None).await;
    assert_eq!(s, 204);
    // Restarting with the same HERM_ADMIN_KEY brings the operator's key back.
    h.restart().await;
    let (s, _) = h.get("/v1/api-keys").await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_that_cannot_act_yet_are_refused_by_name() {
    let (h, _dir) = start_herm().await;
    let base = json!({"customer_id": "c", "name": "n", "system_prompt": "s"});
    for (extra, field) in [
        // Dreaming consolidates memory: with memory off it cannot act.
        (json!({"features": {"dreaming": true, "memory": false}}), "features.dreaming"),
        (json!({"sandbox": {"persistent_filesystem": false}}), "sandbox.persistent_filesystem"),
        // This server runs no sandbox backend (`backend = "none"`): no type is available.
        (json!({"sandbox": {"type": "docker"}}), "sandbox.type"),
    ] {
        let mut spec = base.clone();
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let (s, v) = h.post("/v1/deployments", &spec).await;
        assert_eq!((s, v["code"].as_str()), (422, Some("unsupported")), "{v}");
        assert_eq!(v["errors"][0]["path"], field, "{v}");
    }
    let d = h.deploy(&base).await;
    let (s, v) = h
        .patch(
            &format!("/v1/deployments/{}", d["deployment_id"].as_str().unwrap()),
            &json!({"features": {"memory": false, "dreaming": true}}),
        )
        .await;
    assert_eq!((s, v["code"].as_str()), (422, Some("unsupported")), "{v}");
    // An attachment no model of the deployment can take (it names none): refused, not dropped.
    let (s, v) = h
        .post(
            &format!("/v1/deployments/{}/messages", d["deployment_id"].as_str().unwrap()),
            &json!({"content": "look", "attachments": [{"type": "image", "url": "https://example.com/a.png"}]}),
        )
        .await;
    assert_eq!((s, v["code"].as_str()), (422, Some("unsupported_attachment")), "{v}");
}
