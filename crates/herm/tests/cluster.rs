//! Three real herm nodes on one PostgreSQL (a database of their own, made in the server
//! `HERM_TEST_DATABASE_URL` names; `scripts/test.sh` sets it): a run started through one node
//! is streamed from the others while it runs; the node executing it is killed with `kill -9`
//! and another finishes it without repeating a completed model or tool call; SSE resumes
//! across nodes with `Last-Event-ID`; a node with a taken id or another master key is refused.
// Black-box tests run the real binary as an operator would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;
use common::*;

const MASTER_KEY: &str = "5f1c0a9e8d7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a10";

/// Fast failover for tests: a lease lasts 3 s.
fn config() -> String {
    CONFIG.replace("lease_ttl_secs = 10", "lease_ttl_secs = 3")
}

/// A fresh database for one test, and its URL.
async fn database() -> Option<String> {
    let Ok(base) = std::env::var("HERM_TEST_DATABASE_URL") else {
        assert!(std::env::var("HERM_REQUIRE_POSTGRES").is_err(), "HERM_TEST_DATABASE_URL is not set");
        eprintln!("skipped: HERM_TEST_DATABASE_URL is not set");
        return None;
    };
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let name = format!("herm_c_{:016x}", rand::random::<u64>());
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let (head, _) = base.rsplit_once('/').unwrap();
    Some(format!("{head}/{name}"))
}

fn options(dir: &std::path::Path, node: &str, db: &str, key: &str) -> HermOptions {
    let mut o = HermOptions::new(env!("CARGO_BIN_EXE_herm"), dir.join(node));
    o.config = Some(config());
    o.env = vec![
        ("HERM_STORAGE__DATABASE_URL".into(), db.into()),
        ("HERM_ENGINE__NODE_ID".into(), node.into()),
        ("HERM_MASTER_KEY".into(), key.into()),
    ];
    o
}

/// Who holds the thread's lease now (`node:incarnation`), read from the database.
async fn lease_owner(db: &str, thread: &str) -> Option<String> {
    let (client, conn) = tokio_postgres::connect(db, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT lease_owner FROM threads WHERE id=$1 AND lease_expires_at > (extract(epoch from clock_timestamp()) * 1000)::bigint",
            &[&thread],
        )
        .await;
    row.ok().and_then(|r| r.get(0))
}

/// Four `record` calls, then a final answer; step 2's first response hangs mid-stream.
fn script() -> Vec<Reply> {
    let mut s: Vec<Reply> =
        (0..4).map(|i| Reply::tool("record", record(i, 0)).with_text(&["step ", &i.to_string()])).collect();
    s.push(Reply::text(&["all ", "done"]));
    s[2] = s[2].clone().stall_first();
    s
}

fn calls_per_n(c: &Connector) -> Vec<usize> {
    let mut v = vec![0; 4];
    for call in c.recorded() {
        let n: usize = call.query.split('&').find_map(|kv| kv.strip_prefix("n=")).unwrap().parse().unwrap();
        v[n] += 1;
    }
    v
}

/// Committed frames' thread positions.
fn positions(frames: &[Frame]) -> Vec<i64> {
    frames.iter().filter(|f| f.is_committed()).map(|f| f.data["sequence"].as_i64().unwrap()).collect()
}

fn completed(f: &Frame) -> bool {
    f.data["type"] == "run_status" && f.data["status"] == "completed"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_survives_its_node_and_streams_from_every_node() {
    let Some(db) = database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for n in ["a", "b", "c"] {
        nodes.push(Herm::start(options(dir.path(), n, &db, MASTER_KEY)).await);
    }
    let model = FakeModel::start(script()).await;
    let connector = Connector::start().await;
    // Configured through node a; used through all three.
    let a = &nodes[0];
    let tok = a.ok("POST", "/v1/secrets", &json!({"name": "API_TOKEN", "value": TOKEN}), 201).await;
    let pk = a.ok("POST", "/v1/secrets", &json!({"name": "PROVIDER_KEY", "value": PROVIDER_KEY}), 201).await;
    a.ok("PUT", "/v1/providers/fake", &provider(&model, Wire::Anthropic, &pk["secret_id"], json!({})), 200).await;
    let d = nodes[1]
        .deploy(&json!({
            "customer_id": "cust-1", "name": "cluster agent", "system_prompt": "You are a test agent.",
            "model": "fake/m1", "secrets": {"API_TOKEN": tok["secret_id"]},
            "http_tools": [{"name": "record", "description": "Record an entry (has effects)", "method": "POST",
                "url": connector.url("/record?n={{input.n}}&delay_ms={{input.delay_ms}}"),
                "headers": {"Authorization": "Bearer {{secrets.API_TOKEN}}"},
                "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}, "delay_ms": {"type": "integer"}}}}]
        }))
        .await;
    let (dep, thread) = (d["deployment_id"].as_str().unwrap().to_owned(), d["thread_id"].as_str().unwrap().to_owned());
    // Every node streams the thread before anything happens.
    let mut readers = Vec::new();
    for n in &nodes {
        let url = format!("{}/v1/threads/{thread}/events/stream", n.url);
        readers.push(SseReader::connect(&url, &n.admin_key, None).await);
    }
    let sent = nodes[0].ok("POST", &format!("/v1/deployments/{dep}/messages"), &json!({"content": "go"}), 202).await;
    let run = sent["run_id"].as_str().unwrap().to_owned();
    // Step 2's model stream hangs: kill the node that executes the run, mid-stream.
    for _ in 0..400 {
        if model.attempts().iter().any(|a| a.step == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(model.attempts().iter().any(|a| a.step == 2), "the run never reached step 2");
    let owner = lease_owner(&db, &thread).await.expect("the running thread has a live lease");
    let victim = ["a", "b", "c"].iter().position(|n| owner.starts_with(&format!("{n}:"))).unwrap();
    nodes[victim].kill9().await;
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    let r = nodes[survivors[0]].wait_run(&dep, &run, Duration::from_secs(60)).await;
    assert_eq!(r["status"], "completed", "{r}\n{}", nodes[survivors[0]].log_text());
    let now_owner = lease_owner(&db, &thread).await;
    assert!(now_owner.as_deref().is_none_or(|o| !o.starts_with(&owner)), "the dead node's lease was not taken over");
    // The interrupted call was made again (it left nothing durable); no completed call twice.
    assert_eq!(model.completed_per_step(), vec![1, 1, 1, 1, 1]);
    assert_eq!(calls_per_n(&connector), vec![1, 1, 1, 1]);
    // Each surviving node's stream saw every committed event once, in order, with no gap.
    let log = nodes[survivors[0]].thread_log(&thread).await;
    let all: Vec<i64> = log.iter().map(|e| e["sequence"].as_i64().unwrap()).collect();
    assert_eq!(all, (1..=all.len() as i64).collect::<Vec<_>>());
    let mut streamed = Vec::new();
    for i in &survivors {
        let mut frames = readers[*i].until(Duration::from_secs(20), completed).await;
        assert_eq!(positions(&frames), all, "node {i}'s stream");
        // The run's live tokens reached every node's stream, wherever it ran (a preview
        // relayed from another node may trail the event it previews).
        while let Some(f) = readers[*i].next(Duration::from_millis(500)).await {
            assert!(!f.is_committed(), "node {i}: {f:?}");
            frames.push(f);
        }
        let tokens: String =
            frames.iter().filter(|f| f.data["type"] == "token").filter_map(|f| f.data["delta"].as_str()).collect();
        assert!(tokens.contains("step 3") && tokens.contains("all done"), "node {i}'s live tokens: {tokens:?}");
        streamed.push(frames);
    }
    // Resumed on the other survivor from the middle of the first one's stream: the rest, once.
    let frames = &streamed[0];
    let committed: Vec<&Frame> = frames.iter().filter(|f| f.is_committed()).collect();
    let mid = committed[committed.len() / 2];
    let other = &nodes[survivors[1]];
    let url = format!("{}/v1/threads/{thread}/events/stream", other.url);
    let mut resumed = SseReader::connect(&url, &other.admin_key, Some(&mid.last_event_id)).await;
    let rest = resumed.until(Duration::from_secs(20), completed).await;
    let from = mid.data["sequence"].as_i64().unwrap();
    assert_eq!(positions(&rest), ((from + 1)..=all.len() as i64).collect::<Vec<_>>());
    // The killed node comes back under its own id at once, and sees the run finished.
    nodes[victim].restart().await;
    let (s, v) = nodes[victim].get(&format!("/v1/deployments/{dep}/runs/{run}")).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("completed")), "{v}");
}

/// Runs `herm serve` to its exit, expecting a refusal: its standard error.
async fn refused(o: HermOptions) -> String {
    let mut cmd = tokio::process::Command::new(&o.bin);
    let cfg = o.data_dir.with_extension("toml");
    std::fs::write(&cfg, o.config.clone().unwrap()).unwrap();
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(&o.data_dir)
        .arg("--config")
        .arg(&cfg)
        .envs(o.env.iter().cloned())
        .env("HERM_ADMIN_KEY", "test-admin-key-0123456789abcdef")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output()).await.expect("herm did not exit").unwrap();
    assert!(!out.status.success(), "herm started: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_node_id_and_another_master_key_are_refused() {
    let Some(db) = database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let a = Herm::start(options(dir.path(), "a", &db, MASTER_KEY)).await;
    // A second process calling itself `a` (another data directory) while `a` is live.
    let mut twin = options(dir.path(), "a", &db, MASTER_KEY);
    twin.data_dir = dir.path().join("twin");
    let err = refused(twin).await;
    assert!(err.contains("node id `a` belongs to another live node"), "{err}");
    // A node whose key is not the cluster's never joins (and never writes a secret).
    let other_key = "00".repeat(32);
    let err = refused(options(dir.path(), "b", &db, &other_key)).await;
    assert!(err.contains("master key cannot open the shared vault"), "{err}");
    assert!(!err.contains("herm:herm"), "the database URL's password was printed: {err}");
    drop(a);
}

/// The automation's firings, read through `node`.
async fn firings(node: &Herm, dep: &str, id: &str) -> Vec<Value> {
    let v =
        node.ok("GET", &format!("/v1/deployments/{dep}/automations/{id}/firings?limit=100"), &Value::Null, 200).await;
    v["data"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_slot_fires_once_across_three_nodes_and_their_kills() {
    let Some(db) = database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    // One test clock for the cluster; it jumps a minute at a time.
    let clock = dir.path().join("clock");
    let t0 = chrono::DateTime::parse_from_rfc3339("2030-01-07T08:00:30Z").unwrap().with_timezone(&chrono::Utc);
    set_clock(&clock, t0);
    let cfg = config()
        .replace("[engine]\n", &format!("[engine]\ntest_clock_file = {:?}\n", clock.display().to_string()))
        + "\n[memory]\nobserve_after_secs = 86400\n";
    let mut nodes = Vec::new();
    for n in ["a", "b", "c"] {
        let mut o = options(dir.path(), n, &db, MASTER_KEY);
        o.config = Some(cfg.clone());
        nodes.push(Herm::start(o).await);
    }
    let model = FakeModel::start((0..20).map(|i| Reply::text(&[&format!("done {i}")])).collect()).await;
    let pk = nodes[0].ok("POST", "/v1/secrets", &json!({"name": "PROVIDER_KEY", "value": PROVIDER_KEY}), 201).await;
    nodes[0].ok("PUT", "/v1/providers/fake", &provider(&model, Wire::OpenAi, &pk["secret_id"], json!({})), 200).await;
    let d = nodes[0]
        .deploy(&json!({"customer_id": "c", "name": "ticker", "system_prompt": "Tick.", "model": "fake/m1"}))
        .await;
    let dep = d["deployment_id"].as_str().unwrap().to_owned();
    let a = nodes[1]
        .ok(
            "POST",
            &format!("/v1/deployments/{dep}/automations"),
            &json!({"name": "tick", "schedule": "every minute", "instructions": "Tick."}),
            201,
        )
        .await;
    let id = a["automation_id"].as_str().unwrap().to_owned();
    // Minute after minute, one node (a different one each time) is killed at a different
    // moment around the slot's firing, and comes back.
    let waits = [0u64, 40, 150, 300, 600, 900];
    for (i, wait) in waits.iter().enumerate() {
        let minute = i as i64 + 1;
        set_clock(&clock, t0 + chrono::Duration::seconds(minute * 60 - 30) + chrono::Duration::milliseconds(100));
        tokio::time::sleep(Duration::from_millis(*wait)).await;
        let victim = i % 3;
        nodes[victim].kill9().await;
        nodes[victim].restart().await;
        let slot =
            (t0 + chrono::Duration::seconds(minute * 60 - 30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let reader = &nodes[(victim + 1) % 3];
        let mut fired = None;
        for _ in 0..400 {
            if let Some(f) = firings(reader, &dep, &id).await.into_iter().find(|f| f["slot_at"] == slot) {
                fired = Some(f);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let f = fired.unwrap_or_else(|| panic!("slot {slot} never fired"));
        let r = reader.wait_run(&dep, f["run_id"].as_str().unwrap(), Duration::from_secs(30)).await;
        assert_eq!(r["status"], "completed", "{r}");
    }
    // Every slot once, one run each, one completed model call each.
    let all = firings(&nodes[2], &dep, &id).await;
    let mut slots: Vec<&str> = all.iter().map(|f| f["slot_at"].as_str().unwrap()).collect();
    slots.sort();
    slots.dedup();
    assert_eq!((slots.len(), all.len()), (6, 6), "{all:?}");
    assert!(all.iter().all(|f| f["status"] == "fired"), "{all:?}");
    let mut runs: Vec<&str> = all.iter().map(|f| f["run_id"].as_str().unwrap()).collect();
    runs.sort();
    runs.dedup();
    assert_eq!(runs.len(), 6);
    // Each run journaled one model call: none was made again once finished. The fake model
    // may have answered a step twice, never more: a kill can land after its answer reached
    // the node and before the node journaled it (nothing was finished, so the run's new
    // node asks again). Each minute's step had one kill.
    for r in &runs {
        let (s, run) = nodes[0].get(&format!("/v1/deployments/{dep}/runs/{r}")).await;
        assert_eq!(s, 200, "{run}");
        let events = nodes[0].thread_log(run["thread_id"].as_str().unwrap()).await;
        let calls = events.iter().filter(|e| e["type"] == "model_call" && e["run_id"] == *r).count();
        assert_eq!(calls, 1, "run {r} journaled {calls} model calls");
    }
    let per_step = model.completed_per_step();
    assert!(per_step[..6].iter().all(|n| (1..=2).contains(n)) && per_step[6] == 0, "{per_step:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_on_shared_storage_follows_its_deployment_to_another_node() {
    let Some(db) = database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared-workspaces");
    let cfg = sandbox_config().replace("backend = \"docker\"", "backend = \"namespaces\"").replace("pool_size = 1", "")
        + &format!("shared_workspaces = {:?}\n", shared.display().to_string());
    let node = |n: &str| {
        let mut o = options(dir.path(), n, &db, MASTER_KEY);
        o.config = Some(cfg.clone());
        o
    };
    let script = vec![
        Reply::tool("shell", json!({"command": "mkdir -p notes && echo kept > notes/a.txt"})),
        Reply::text(&["written"]),
        Reply::tool("read_file", json!({"path": "notes/a.txt"})),
        Reply::text(&["read"]),
    ];
    let model = FakeModel::start(script).await;
    // Only node a runs while the first run writes the file.
    let mut a = Herm::start(node("a")).await;
    let pk = a.ok("POST", "/v1/secrets", &json!({"name": "PROVIDER_KEY", "value": PROVIDER_KEY}), 201).await;
    a.ok("PUT", "/v1/providers/fake", &provider(&model, Wire::OpenAi, &pk["secret_id"], json!({})), 200).await;
    let d =
        a.deploy(&json!({"customer_id": "c", "name": "writer", "system_prompt": "Work.", "model": "fake/m1"})).await;
    let dep = d["deployment_id"].as_str().unwrap().to_owned();
    let first = a.ok("POST", &format!("/v1/deployments/{dep}/messages"), &json!({"content": "write"}), 202).await;
    let r = a.wait_run(&dep, first["run_id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(r["status"], "completed", "{r}\n{}", a.log_text());
    // Node a dies; node b, on another "host" (its own data directory), takes the next run.
    let b = Herm::start(node("b")).await;
    a.kill9().await;
    let second = b.ok("POST", &format!("/v1/deployments/{dep}/messages"), &json!({"content": "read"}), 202).await;
    let r = b.wait_run(&dep, second["run_id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(r["status"], "completed", "{r}\n{}", b.log_text());
    let log = b.thread_log(d["thread_id"].as_str().unwrap()).await;
    let results: Vec<&Value> = log.iter().filter(|e| e["type"] == "tool_result").collect();
    assert_eq!(results[1]["result"], "kept\n", "{results:?}");
    assert!(shared.join(&dep).join("workspace/notes/a.txt").is_file());
    assert!(!dir.path().join("b/sandboxes").join(&dep).join("workspace").exists(), "the workspace is not b's own");
}
