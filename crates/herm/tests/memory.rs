//! Memory as an operator and a customer meet it: the Memories API (filters, versions,
//! redaction, concurrent writes), a preference learned in one thread shaping the next (seen
//! at the fake model), isolation between deployments, the observer after a thread goes idle
//! (and after `kill -9`), dreams with their change sets, and deletion that leaves no copy
//! in the data directory or the workspace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::time::Instant;

const OBSERVER: &str = "memory observer";
const DREAMER: &str = "memory, dreaming";

/// The test settings with the observer and dreams after `observe` and `dream` seconds.
fn memory_config(observe: u64, dream: u64) -> String {
    format!("{CONFIG}\n[memory]\nobserve_after_secs = {observe}\ndream_after_secs = {dream}\n")
}

async fn mem(env: &Env, method: &str, path: &str, body: &Value, want: u16) -> Value {
    env.herm.ok(method, &format!("/v1/deployments/{}/memories{path}", env.dep), body, want).await
}

/// Every request body the fake model received, as text.
fn bodies(env: &Env) -> Vec<String> {
    env.model.attempts().iter().map(|a| a.body.to_string()).collect()
}

async fn wait_for<F: Fn(&Value) -> bool>(env: &Env, path: &str, ok: F) -> Value {
    let mut v = Value::Null;
    for _ in 0..400 {
        v = env.herm.ok("GET", &format!("/v1/deployments/{}{path}", env.dep), &Value::Null, 200).await;
        if ok(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never got there: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memories_api_filters_versions_redacts_and_loses_no_write() {
    let env = setup_with(vec![], Wire::Anthropic, json!({}), &memory_config(1, 1)).await;
    let voice = mem(
        &env,
        "POST",
        "",
        &json!({"path": "preferences/brand-voice.md", "content": "Playful; never use exclamation marks."}),
        201,
    )
    .await;
    assert_eq!((voice["source"].as_str(), voice["version"].as_i64()), (Some("api"), Some(1)), "{voice}");
    mem(&env, "POST", "", &json!({"path": "facts/company.md", "content": "Acme sells anvils."}), 201).await;
    let unnamed = mem(&env, "POST", "", &json!({"content": "Prefers short replies."}), 201).await;
    assert!(unnamed["path"].as_str().unwrap().starts_with("notes/mem_"), "{unnamed}");
    // Bad input is refused at the edge.
    let dup = mem(&env, "POST", "", &json!({"path": "preferences/brand-voice.md", "content": "x"}), 409).await;
    assert_eq!(dup["code"], "conflict");
    for bad in
        [json!({"path": "../escape.md", "content": "x"}), json!({"content": "x".repeat(70_000)}), json!({"content": 5})]
    {
        let (s, _) = env.herm.post(&format!("/v1/deployments/{}/memories", env.dep), &bad).await;
        assert!(s == 400 || s == 422, "{bad}: {s}");
    }

    let found = mem(&env, "GET", "?q=EXCLAMATION", &Value::Null, 200).await;
    assert_eq!(found["data"].as_array().unwrap().len(), 1);
    let under = mem(&env, "GET", "?prefix=facts/", &Value::Null, 200).await;
    assert_eq!(under["data"][0]["path"], "facts/company.md");
    assert_eq!(mem(&env, "GET", "?limit=2", &Value::Null, 200).await["data"].as_array().unwrap().len(), 2);

    let id = voice["memory_id"].as_str().unwrap();
    let url = format!("{}/v1/deployments/{}/memories/{id}", env.herm.url, env.dep);
    let client = reqwest::Client::new();
    let got = client.get(&url).bearer_auth(&env.herm.admin_key).send().await.unwrap();
    assert_eq!(got.headers()["etag"], "\"1\"");
    let stale = client
        .patch(&url)
        .bearer_auth(&env.herm.admin_key)
        .header("if-match", "\"7\"")
        .json(&json!({"content": "lost"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    let v2 =
        mem(&env, "PATCH", &format!("/{id}"), &json!({"content": "Playful, warm; never use exclamation marks."}), 200)
            .await;
    assert_eq!(v2["version"], 2);

    // Twenty writers at once: each lands as its own version; none is lost.
    let writes = (0..20).map(|i| {
        let (env, id) = (&env, id.to_owned());
        async move { mem(env, "PATCH", &format!("/{id}"), &json!({"content": format!("writer {i}")}), 200).await }
    });
    futures::future::join_all(writes).await;
    let versions = mem(&env, "GET", &format!("/{id}/versions"), &Value::Null, 200).await;
    let contents: Vec<&str> =
        versions["data"].as_array().unwrap().iter().filter_map(|v| v["content"].as_str()).collect();
    assert_eq!(contents.len(), 22, "{versions}");
    for i in 0..20 {
        assert!(contents.contains(&format!("writer {i}").as_str()), "writer {i} lost");
    }
    let ops: Vec<&str> =
        versions["data"].as_array().unwrap().iter().map(|v| v["operation"].as_str().unwrap()).collect();
    assert_eq!((ops[0], ops[1]), ("created", "modified"));

    // Redacting an earlier version clears its text; the current one cannot be.
    let r = mem(&env, "POST", &format!("/{id}/versions/1/redact"), &Value::Null, 200).await;
    assert!(r["content"].is_null() && r["redacted_at"].is_string(), "{r}");
    mem(&env, "POST", &format!("/{id}/versions/22/redact"), &Value::Null, 409).await;
    mem(&env, "POST", &format!("/{id}/versions/99/redact"), &Value::Null, 404).await;
    let versions = mem(&env, "GET", &format!("/{id}/versions"), &Value::Null, 200).await;
    assert!(!versions.to_string().contains("Playful; never"), "redacted text still listed");

    // A vault secret never becomes memory.
    let m = mem(&env, "POST", "", &json!({"path": "facts/token.md", "content": format!("the token is {TOKEN}")}), 201)
        .await;
    assert!(!m["content"].as_str().unwrap().contains(TOKEN), "{m}");

    // Another deployment sees none of it.
    let other = env
        .herm
        .deploy(&json!({"customer_id": "cust-2", "name": "other", "system_prompt": "x", "model": "fake/m1"}))
        .await;
    let theirs = env
        .herm
        .ok("GET", &format!("/v1/deployments/{}/memories", other["deployment_id"].as_str().unwrap()), &Value::Null, 200)
        .await;
    assert_eq!(theirs["data"], json!([]));
    let (s, _) =
        env.herm.get(&format!("/v1/deployments/{}/memories/{id}", other["deployment_id"].as_str().unwrap())).await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preference_from_one_thread_shapes_the_next_and_stays_in_its_deployment() {
    let script = vec![
        Reply::tool(
            "memory_write",
            json!({"path": "preferences/brand-voice.md", "content": "Brand voice: playful, never use exclamation marks."}),
        ),
        Reply::text(&["Noted, no exclamation marks from now on."]),
    ];
    let model = FakeModel::start_with_sides(
        script,
        vec![
            ("THREAD-TWO".into(), vec![Reply::text(&["Here is the post."])]),
            (
                "OTHER-DEP".into(),
                vec![
                    Reply::tool("memory_search", json!({"query": "exclamation brand voice"})),
                    Reply::text(&["nothing"]),
                ],
            ),
        ],
    )
    .await;
    let env = setup_model(model, Wire::Anthropic, json!({}), &memory_config(3600, 3600)).await;
    run_to_end(&env, "Our brand voice is playful. Never use exclamation marks.").await;
    let listed = mem(&env, "GET", "", &Value::Null, 200).await;
    let m = &listed["data"][0];
    assert_eq!(
        (m["path"].as_str(), m["source"].as_str()),
        (Some("preferences/brand-voice.md"), Some("agent")),
        "{listed}"
    );
    let versions =
        mem(&env, "GET", &format!("/{}/versions", m["memory_id"].as_str().unwrap()), &Value::Null, 200).await;
    assert!(versions["data"][0]["run_id"].as_str().unwrap().starts_with("run_"), "{versions}");

    // A new thread: its first model request already carries the preference.
    let t = env.herm.ok("POST", &format!("/v1/deployments/{}/threads", env.dep), &json!({}), 201).await;
    let thread2 = t["thread_id"].as_str().unwrap();
    let sent = env
        .herm
        .ok(
            "POST",
            &format!("/v1/deployments/{}/messages", env.dep),
            &json!({"content": "THREAD-TWO: write a launch post", "thread_id": thread2}),
            202,
        )
        .await;
    env.herm.wait_run(&env.dep, sent["run_id"].as_str().unwrap(), Duration::from_secs(60)).await;
    let first = bodies(&env).into_iter().find(|b| b.contains("THREAD-TWO")).unwrap();
    assert!(first.contains("never use exclamation marks"), "thread 2's first request lacks the memory: {first}");

    // Another deployment: its requests never hold A's memory, and its agent finds nothing.
    let b = env
        .herm
        .deploy(&json!({"customer_id": "cust-2", "name": "b", "system_prompt": "You are B.", "model": "fake/m1"}))
        .await;
    let sent = env
        .herm
        .ok(
            "POST",
            &format!("/v1/deployments/{}/messages", b["deployment_id"].as_str().unwrap()),
            &json!({"content": "OTHER-DEP: how should I write?"}),
            202,
        )
        .await;
    let run = env
        .herm
        .wait_run(b["deployment_id"].as_str().unwrap(), sent["run_id"].as_str().unwrap(), Duration::from_secs(60))
        .await;
    assert_eq!(run["status"], "completed");
    let theirs: Vec<String> = bodies(&env).into_iter().filter(|b| b.contains("OTHER-DEP")).collect();
    assert!(!theirs.is_empty());
    for body in &theirs {
        assert!(!body.contains("exclamation marks."), "B saw A's memory: {body}");
    }
    assert!(theirs.last().unwrap().contains("no memory matches"), "{}", theirs.last().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_mounts_another_deployments_memory_by_name_with_its_access() {
    let model = FakeModel::start_with_sides(
        vec![Reply::text(&["(main)"])],
        vec![(
            "MOUNT-RO".into(),
            vec![
                Reply::tool("store_read", json!({"store": "team", "path": "/team/style.md"})),
                Reply::tool("store_write", json!({"store": "team", "path": "team/style.md", "content": "spaces"})),
                Reply::text(&["Tabs."]),
            ],
        )],
    )
    .await;
    let env = setup_model(model, Wire::Anthropic, json!({}), &memory_config(3600, 3600)).await;
    mem(&env, "POST", "", &json!({"path": "team/style.md", "content": "Indent with tabs."}), 201).await;
    let spec = |mounts: Value| {
        json!({"customer_id": "cust-2", "name": "c", "system_prompt": "You are C.", "model": "fake/m1",
               "features": {"memory": false}, "memory_mounts": mounts})
    };
    let c = env
        .herm
        .deploy(&spec(json!([{"deployment_id": env.dep, "name": "team", "access": "read_only",
                              "instructions": "The team's conventions."}])))
        .await;
    assert_eq!(c["memory_mounts"][0]["access"], "read_only", "{c}");
    let dep = c["deployment_id"].as_str().unwrap();
    let sent = env
        .herm
        .ok("POST", &format!("/v1/deployments/{dep}/messages"), &json!({"content": "MOUNT-RO: how do we indent?"}), 202)
        .await;
    let run = env.herm.wait_run(dep, sent["run_id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(run["status"], "completed", "{run}");
    let reqs: Vec<Value> =
        env.model.attempts().into_iter().filter(|a| a.body.to_string().contains("MOUNT-RO")).map(|a| a.body).collect();
    assert_eq!(reqs.len(), 3);
    let system = reqs[0]["system"].to_string();
    assert!(
        system.contains("Memory store `team` (read-only)") && system.contains("The team's conventions."),
        "{system}"
    );
    assert!(system.contains("Indent with tabs."), "the store's memories are in the prompt: {system}");
    let names: Vec<&str> = reqs[0]["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"store_read") && !names.contains(&"store_write"), "{names:?}");
    assert!(!names.contains(&"memory_write"), "C's own memory is off: {names:?}");
    assert!(
        reqs[1].to_string().contains(r"team/style.md (version 1):\nIndent with tabs."),
        "the read came back: {}",
        reqs[1]
    );
    let refused_write = &reqs[2]["messages"].as_array().unwrap().last().unwrap()["content"][0];
    assert_eq!(refused_write["is_error"], true, "a write to a read-only store is refused: {refused_write}");
    let listed = mem(&env, "GET", "", &Value::Null, 200).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed["data"][0]["content"], "Indent with tabs.", "the store is unchanged: {listed}");

    // What a mount must name.
    let refused = |body: Value| {
        let herm = &env.herm;
        async move { herm.ok("POST", "/v1/deployments", &body, 400).await }
    };
    let e = refused(spec(json!([{"deployment_id": "dep_0357kcX9iLRbA4fgXxIcz9", "name": "x"}]))).await;
    assert!(e.to_string().contains("memory_mounts[0].deployment_id"), "{e}");
    let e = refused(spec(json!([{"deployment_id": dep, "name": "c"}]))).await;
    assert!(e.to_string().contains("features.memory"), "a deployment with memory off cannot be mounted: {e}");
    let e =
        refused(spec(json!([{"deployment_id": env.dep, "name": "a"}, {"deployment_id": env.dep, "name": "a"}]))).await;
    assert!(e.to_string().contains("duplicate store name"), "{e}");
    refused(spec(json!([{"deployment_id": env.dep, "name": "bad name"}]))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_thread_is_observed_once_even_across_kill_9() {
    let observer = vec![
        // The first observer request hangs: herm is killed while it is in flight.
        Reply::tool("memory_write", json!({"path": "corrections/date-format.md", "content": "Dates as 31/01/2026."}))
            .stall_first(),
        Reply::tool(
            "memory_write",
            json!({"path": "corrections/date-format.md", "content": "Dates as 31/01/2026 (day first)."}),
        ),
        Reply::text(&["Recorded the date format."]),
    ];
    let model =
        FakeModel::start_with_sides(vec![Reply::text(&["Fixed: 31/01/2026."])], vec![(OBSERVER.into(), observer)])
            .await;
    let mut env = setup_model(model, Wire::Anthropic, json!({}), &memory_config(1, 1)).await;
    run_to_end(&env, "No, write dates day first: 31/01/2026.").await;
    // The observer starts about a second later and stalls in its model call.
    for _ in 0..200 {
        if env.model.attempts().iter().any(|a| a.side == Some(0)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let asked = bodies(&env).into_iter().find(|b| b.contains(OBSERVER)).expect("no observer request");
    assert!(asked.contains("day first: 31/01/2026"), "the observer did not see the conversation: {asked}");
    env.herm.kill9().await;
    env.herm.restart().await;
    let listed = wait_for(&env, "/memories", |v| v["data"].as_array().is_some_and(|d| !d.is_empty())).await;
    let m = &listed["data"][0];
    assert_eq!((m["path"].as_str(), m["source"].as_str()), (Some("corrections/date-format.md"), Some("agent")));
    assert!(m["content"].as_str().unwrap().contains("day first"), "{m}");
    // One observer run, of its own kind, visible in the deployment's stream.
    let threads = env.herm.ok("GET", &format!("/v1/deployments/{}/threads", env.dep), &Value::Null, 200).await;
    let memory_thread = threads["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["thread_id"] != env.thread.as_str())
        .expect("no memory thread")["thread_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut log = Vec::new();
    for _ in 0..200 {
        log = env.herm.thread_log(&memory_thread).await;
        if log.iter().any(|e| e["type"] == "run_status" && e["status"] == "completed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let runs: std::collections::BTreeSet<&str> =
        log.iter().filter(|e| e["type"] == "run_status").map(|e| e["run_id"].as_str().unwrap()).collect();
    assert_eq!(runs.len(), 1, "{log:?}");
    assert!(log.iter().filter(|e| e["type"] == "run_status").all(|e| e["kind"] == "observer"));
    let trigger = &log.iter().find(|e| e["type"] == "run_status").unwrap()["trigger"];
    assert_eq!(trigger["thread_id"], env.thread.as_str(), "{trigger}");
    // Nothing new happened in the thread: no second observation.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(env.model.attempts().iter().filter(|a| a.side == Some(0)).count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dream_consolidates_memory_into_a_reviewable_change_set() {
    let dream = vec![
        Reply::tool(
            "memory_write",
            json!({"path": "preferences/tone.md", "content": "Tone: playful and warm; no exclamation marks.", "expected_version": 1}),
        ),
        Reply::tool("memory_delete", json!({"path": "notes/tone-again.md"})),
        Reply::text(&["Merged two tone notes."]),
    ];
    let model = FakeModel::start_with_sides(
        vec![Reply::tool("record", record(1, 3000)), Reply::text(&["ok"])],
        vec![(DREAMER.into(), dream)],
    )
    .await;
    let env =
        setup_model(model, Wire::Anthropic, json!({"features": {"dreaming": true}}), &memory_config(3600, 3600)).await;
    mem(&env, "POST", "", &json!({"path": "preferences/tone.md", "content": "Playful tone."}), 201).await;
    mem(&env, "POST", "", &json!({"path": "notes/tone-again.md", "content": "Be warm, no exclamation marks."}), 201)
        .await;

    // Not while a run is active.
    let sent = env.send("record something slowly").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = env.herm.ok("POST", &format!("/v1/deployments/{}/dreams", env.dep), &Value::Null, 409).await;
    assert_eq!(busy["code"], "conflict");
    env.herm.wait_run(&env.dep, sent["run_id"].as_str().unwrap(), Duration::from_secs(60)).await;

    let d = env.herm.ok("POST", &format!("/v1/deployments/{}/dreams", env.dep), &Value::Null, 202).await;
    let id = d["dream_id"].as_str().unwrap();
    assert!(id.starts_with("drm_"), "{d}");
    let done = wait_for(&env, &format!("/dreams/{id}"), |v| v["status"] == "completed").await;
    let changes = done["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{done}");
    assert_eq!(
        (changes[0]["operation"].as_str(), changes[0]["before_version"].as_i64(), changes[0]["after_version"].as_i64()),
        (Some("modified"), Some(1), Some(2))
    );
    assert_eq!(
        (changes[1]["operation"].as_str(), changes[1]["path"].as_str()),
        (Some("deleted"), Some("notes/tone-again.md"))
    );
    let listed = mem(&env, "GET", "", &Value::Null, 200).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    // The merged memory's history shows the before and after.
    let mid = changes[0]["memory_id"].as_str().unwrap();
    let versions = mem(&env, "GET", &format!("/{mid}/versions"), &Value::Null, 200).await;
    assert_eq!(versions["data"][0]["content"], "Playful tone.");
    assert!(versions["data"][1]["run_id"] == done["run_id"], "{versions}");
    let all = env.herm.ok("GET", &format!("/v1/deployments/{}/dreams", env.dep), &Value::Null, 200).await;
    assert_eq!(all["data"][0]["dream_id"], id);
    // The dream saw the memories, not the conversation's tools.
    let asked = bodies(&env).into_iter().find(|b| b.contains(DREAMER)).unwrap();
    assert!(asked.contains("Playful tone.") && !asked.contains("\"name\":\"record\""), "{asked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dreaming_starts_by_itself_when_the_deployment_is_idle_with_new_material() {
    let dream = vec![Reply::tool("memory_delete", json!({"path": "notes/stale.md"})), Reply::text(&["Pruned."])];
    let model = FakeModel::start_with_sides(vec![], vec![(DREAMER.into(), dream)]).await;
    let env = setup_model(model, Wire::Anthropic, json!({"features": {"dreaming": true}}), &memory_config(1, 1)).await;
    mem(&env, "POST", "", &json!({"path": "notes/stale.md", "content": "The launch is next week (in March)."}), 201)
        .await;
    let dreams = wait_for(&env, "/dreams", |v| v["data"][0]["status"] == "completed").await;
    assert_eq!(dreams["data"][0]["reason"], "idle", "{dreams}");
    assert_eq!(dreams["data"].as_array().unwrap().len(), 1);
    assert_eq!(mem(&env, "GET", "", &Value::Null, 200).await["data"], json!([]));
    // A dream's own changes are no new material: no second dream.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let dreams = env.herm.ok("GET", &format!("/v1/deployments/{}/dreams", env.dep), &Value::Null, 200).await;
    assert_eq!(dreams["data"].as_array().unwrap().len(), 1, "{dreams}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memories_are_workspace_files_and_a_deleted_one_leaves_no_copy() {
    let script = vec![
        Reply::tool(
            "write_file",
            json!({"path": "memory/facts/pet.md", "content": "The customer's dog is named Biscuit."}),
        ),
        Reply::text(&["Saved."]),
        shell("grep -r OKAPI /workspace || echo no-okapi"),
        Reply::text(&["Checked."]),
    ];
    // Another deployment's agent goes looking for this one's memory from its own sandbox.
    let attack = "cat /workspace/memory/preferences/colour.md; ls -R /workspace/memory; \
        grep -rs OKAPI / --exclude-dir=proc --exclude-dir=sys --exclude-dir=usr; echo attack-done";
    let model = FakeModel::start_with_sides(
        script,
        vec![("ATTACK".into(), vec![shell(attack), Reply::text(&["found nothing"])])],
    )
    .await;
    let config = format!("{}\n[memory]\nobserve_after_secs = 3600\n", sandbox_config());
    let env = setup_model(model, Wire::Anthropic, json!({}), &config).await;
    let m = mem(
        &env,
        "POST",
        "",
        &json!({"path": "preferences/colour.md", "content": "Favourite colour: UNIQUE-PURPLE-OKAPI-42"}),
        201,
    )
    .await;
    let id = m["memory_id"].as_str().unwrap().to_owned();
    // The operator's memory appears as a file the agent can read.
    let mut file = (0, Vec::new());
    for _ in 0..200 {
        file = env.file("memory/preferences/colour.md").await;
        if file.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        (file.0, String::from_utf8_lossy(&file.1).into_owned()),
        (200, "Favourite colour: UNIQUE-PURPLE-OKAPI-42".to_owned())
    );
    let b = env
        .herm
        .deploy(&json!({"customer_id": "cust-2", "name": "b", "system_prompt": "You are B.", "model": "fake/m1"}))
        .await;
    let b_dep = b["deployment_id"].as_str().unwrap();
    let sent = env
        .herm
        .ok(
            "POST",
            &format!("/v1/deployments/{b_dep}/messages"),
            &json!({"content": "ATTACK: read the other customer's memory"}),
            202,
        )
        .await;
    let r = env.herm.wait_run(b_dep, sent["run_id"].as_str().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(r["status"], "completed", "{r}");
    let log = env.herm.thread_log(b["thread_id"].as_str().unwrap()).await;
    let out = log.iter().find(|e| e["type"] == "tool_result").unwrap()["result"].as_str().unwrap().to_owned();
    assert!(out.contains("attack-done") && !out.contains("OKAPI"), "B reached A's memory: {out}");
    // A file the agent writes under memory/ becomes the agent's memory.
    run_to_end(&env, "Remember my dog's name is Biscuit.").await;
    let pet = mem(&env, "GET", "?prefix=facts/", &Value::Null, 200).await;
    assert_eq!(
        (pet["data"][0]["path"].as_str(), pet["data"][0]["source"].as_str()),
        (Some("facts/pet.md"), Some("agent")),
        "{pet}"
    );

    // Rewritten, then deleted on a data-deletion request.
    mem(&env, "PATCH", &format!("/{id}"), &json!({"content": "Favourite colour: UNIQUE-PURPLE-OKAPI-43"}), 200).await;
    env.herm.ok("DELETE", &format!("/v1/deployments/{}/memories/{id}", env.dep), &Value::Null, 204).await;
    let (s, _) = env.herm.get(&format!("/v1/deployments/{}/memories/{id}", env.dep)).await;
    assert_eq!(s, 404);
    let (s, _) = env.herm.get(&format!("/v1/deployments/{}/memories/{id}/versions", env.dep)).await;
    assert_eq!(s, 404);
    assert_eq!(env.file("memory/preferences/colour.md").await.0, 404);
    let needles = vec!["UNIQUE-PURPLE-OKAPI-42".to_owned(), "UNIQUE-PURPLE-OKAPI-43".to_owned()];
    let hits = scan_dir(&env.dir.path().join("data"), &needles);
    assert!(hits.is_empty(), "the deleted memory is still in the data directory: {hits:?}");
    // Not in the workspace, and not in the next prompt.
    run_to_end(&env, "Check the workspace.").await;
    let out = results(&env, &env.thread).await;
    assert!(out.last().unwrap()["result"].as_str().unwrap().contains("no-okapi"), "{out:?}");
    let last = env.model.attempts().last().unwrap().body.to_string();
    assert!(!last.contains("PURPLE-OKAPI"), "a later prompt carries the deleted memory");
    assert!(last.contains("Biscuit"), "the agent's own memory is loaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observer_waits_while_a_run_is_active_on_the_thread() {
    let observer = vec![
        Reply::tool("memory_write", json!({"path": "facts/ledger.md", "content": "Keeps a ledger of entries."})),
        Reply::text(&["Recorded."]),
    ];
    let script = vec![Reply::text(&["Hello."]), Reply::tool("record", record(7, 3000)), Reply::text(&["Recorded 7."])];
    let model = FakeModel::start_with_sides(script, vec![(OBSERVER.into(), observer)]).await;
    let env = setup_model(model, Wire::Anthropic, json!({}), &memory_config(1, 3600)).await;
    run_to_end(&env, "Hi, I keep a ledger.").await;
    // A second run starts before the thread has been idle a second, and lasts three.
    let sent = env.send("Record entry seven in my ledger.").await;
    let run = env.herm.wait_run(&env.dep, sent["run_id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(run["status"], "completed");
    let ended = Instant::now();
    assert_eq!(env.model.attempts().iter().filter(|a| a.side == Some(0)).count(), 0, "observed while a run was active");
    wait_for(&env, "/memories", |v| v["data"].as_array().is_some_and(|d| !d.is_empty())).await;
    assert!(ended.elapsed() >= Duration::from_millis(500), "the observer did not wait for the thread to be idle");
    // One observation, of both runs.
    let asked: Vec<String> = bodies(&env).into_iter().filter(|b| b.contains(OBSERVER)).collect();
    assert!(asked[0].contains("I keep a ledger") && asked[0].contains("entry seven"), "{}", asked[0]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(env.model.attempts().iter().filter(|a| a.side == Some(0)).count(), 2, "one observer run of two calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dream_resumes_after_kill_9() {
    let dream = vec![
        Reply::tool("memory_delete", json!({"path": "notes/old.md"})).stall_first(),
        Reply::tool("memory_delete", json!({"path": "notes/old.md"})),
        Reply::text(&["Pruned."]),
    ];
    let model = FakeModel::start_with_sides(vec![], vec![(DREAMER.into(), dream)]).await;
    let mut env =
        setup_model(model, Wire::Anthropic, json!({"features": {"dreaming": true}}), &memory_config(3600, 3600)).await;
    mem(&env, "POST", "", &json!({"path": "notes/old.md", "content": "Old news."}), 201).await;
    mem(&env, "POST", "", &json!({"path": "notes/keep.md", "content": "Still true."}), 201).await;
    let d = env.herm.ok("POST", &format!("/v1/deployments/{}/dreams", env.dep), &Value::Null, 202).await;
    let id = d["dream_id"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        if env.model.attempts().iter().any(|a| a.side == Some(0)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let running = env.herm.ok("GET", &format!("/v1/deployments/{}/dreams/{id}", env.dep), &Value::Null, 200).await;
    assert_eq!(running["status"], "running", "{running}");
    env.herm.kill9().await;
    env.herm.restart().await;
    let done = wait_for(&env, &format!("/dreams/{id}"), |v| v["status"] == "completed").await;
    let changes = done["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{done}");
    assert_eq!(
        (changes[0]["operation"].as_str(), changes[0]["path"].as_str()),
        (Some("deleted"), Some("notes/old.md"))
    );
    let listed = mem(&env, "GET", "", &Value::Null, 200).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["data"][0]["path"], "notes/keep.md");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dream_yields_to_a_run_that_starts() {
    let dream = vec![
        Reply::tool("memory_write", json!({"path": "notes/merged.md", "content": "Merged."}))
            .with_text(&["a", "b", "c", "d"])
            .delayed(Duration::from_millis(300)),
        Reply::text(&["never asked"]),
    ];
    let model = FakeModel::start_with_sides(
        vec![Reply::tool("record", record(3, 6000)), Reply::text(&["ok"])],
        vec![(DREAMER.into(), dream)],
    )
    .await;
    let env =
        setup_model(model, Wire::Anthropic, json!({"features": {"dreaming": true}}), &memory_config(3600, 3600)).await;
    mem(&env, "POST", "", &json!({"path": "notes/a.md", "content": "A."}), 201).await;
    let d = env.herm.ok("POST", &format!("/v1/deployments/{}/dreams", env.dep), &Value::Null, 202).await;
    let id = d["dream_id"].as_str().unwrap().to_owned();
    // While the dream's first model call streams, a person's run starts.
    for _ in 0..200 {
        if env.model.attempts().iter().any(|a| a.side == Some(0)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent = env.send("record three").await;
    let done = wait_for(&env, &format!("/dreams/{id}"), |v| v["status"] == "cancelled").await;
    // What it did before yielding stays, reviewable; it asked the model nothing more.
    assert_eq!(done["changes"].as_array().unwrap().len(), 1, "{done}");
    assert_eq!(env.model.attempts().iter().filter(|a| a.side == Some(0)).count(), 1);
    let run = env
        .herm
        .ok("GET", &format!("/v1/deployments/{}/runs/{}", env.dep, done["run_id"].as_str().unwrap()), &Value::Null, 200)
        .await;
    assert_eq!(run["error"]["code"], "yielded", "{run}");
    let user = env.herm.wait_run(&env.dep, sent["run_id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(user["status"], "completed");
}
