//! The sandbox against the real Docker engine (scripts/test.sh starts it and builds the
//! image): the agent's shell and file tools, persistence across a container stop and a
//! herm `kill -9`, isolation attacked from inside deployment A's sandbox, hardening, path
//! confinement, and a shell command in flight at a crash.
// Black-box tests run the real binary and look at the host as an operator would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;
use common::*;
use std::process::Command;

/// Sandbox tests run one at a time: a fork bomb or a memory hog beside another test on a
/// 2-core machine makes timings meaningless.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker CLI");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn delete(env: &Env) {
    env.herm.request("DELETE", &format!("/v1/deployments/{}", env.dep), Some(&env.herm.admin_key.clone()), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_and_files_persist_across_container_stop_and_restart() {
    let _serial = SERIAL.lock().await;
    let script = vec![
        shell("mkdir -p notes && echo hello > notes/a.txt && python3 -c 'print(6*7)'"),
        Reply::tool("read_file", json!({"path": "notes/a.txt"})),
        Reply::text(&["done"]),
        Reply::tool("read_file", json!({"path": "/workspace/notes/a.txt"})),
        Reply::text(&["still there"]),
    ];
    // Traced: each sandbox exec is a span under its tool call's span.
    let receiver = OtlpReceiver::start().await;
    let config = format!("{}\n[telemetry]\notlp_endpoint = \"{}\"\n", sandbox_config(), receiver.url());
    let mut env = setup_with(script, Wire::Anthropic, json!({}), &config).await;
    let (_, d) = env.herm.get(&format!("/v1/deployments/{}", env.dep)).await;
    assert_eq!(d["status"], "ready", "ready only once the sandbox answers: {d}");
    assert_eq!(docker(&["inspect", "-f", "{{.State.Running}}", &format!("herm-{}", env.dep)]), "true");
    let mut sse = env.thread_stream(None).await;
    run_to_end(&env, "make a note").await;
    let frames =
        sse.until(Duration::from_secs(5), |f| f.event == "run_status" && f.data["status"] == "completed").await;
    let live: String =
        frames.iter().filter(|f| f.event == "tool_output").map(|f| f.data["delta"].as_str().unwrap()).collect();
    assert!(live.contains("42"), "shell output streamed live: {frames:?}");
    let r = results(&env, &env.thread).await;
    assert!(r[0]["result"].as_str().unwrap().starts_with("exit code 0\n42"), "{}", r[0]);
    assert_eq!(r[1]["result"], "hello\n");

    let spans = receiver
        .wait_for("sandbox and tool spans", |s| {
            s.iter().any(|s| s.name == "sandbox shell") && s.iter().any(|s| s.name == "execute_tool shell")
        })
        .await;
    let exec = spans.iter().find(|s| s.name == "sandbox shell").expect("a sandbox span");
    let tool = spans.iter().find(|s| s.name == "execute_tool shell").expect("a tool span");
    assert_eq!(exec.parent_span_id, tool.span_id);
    assert_eq!((exec.attr("herm.sandbox.backend"), exec.attr("herm.sandbox.tool")), (Some("docker"), Some("shell")));

    // Files API.
    let (s, l) = env.herm.get(&format!("/v1/deployments/{}/files?path=notes", env.dep)).await;
    assert_eq!(s, 200, "{l}");
    assert_eq!(l["entries"][0]["name"], "a.txt");
    assert_eq!(l["entries"][0]["type"], "file");
    // Stop the container, kill herm, start it again: the file is still there.
    docker(&["stop", "-t", "1", &format!("herm-{}", env.dep)]);
    env.herm.kill9().await;
    env.herm.restart().await;
    assert_eq!(env.file("notes/a.txt").await, (200, b"hello\n".to_vec()));
    run_to_end(&env, "is it there?").await;
    assert_eq!(results(&env, &env.thread).await[2]["result"], "hello\n");
    // Write and delete through the API.
    let v = env.put_file("up/load.bin", vec![0u8, 159, 146, 150]).await;
    assert_eq!(v["size"], 4);
    let (s, _) = env
        .herm
        .request(
            "DELETE",
            &format!("/v1/deployments/{}/files?path=up", env.dep),
            Some(&env.herm.admin_key.clone()),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = env.herm.get(&format!("/v1/deployments/{}/files?path=up", env.dep)).await;
    assert_eq!(s, 404);
    delete(&env).await;
    assert_eq!(
        docker(&["ps", "-aq", "--filter", &format!("name=herm-{}", env.dep)]),
        "",
        "the container is removed with the deployment"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_a_cannot_reach_b() {
    let _serial = SERIAL.lock().await;
    let b = setup_with(vec![Reply::text(&["idle"])], Wire::OpenAi, json!({}), &sandbox_config()).await;
    // B holds a file and runs a listening server.
    b.put_file("b-private.txt", "b-private-canary").await;
    let b_name = format!("herm-{}", b.dep);
    docker(&["exec", "-d", &b_name, "python3", "-m", "http.server", "8000", "--directory", "/workspace"]);
    let b_ip = docker(&["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", &b_name]);
    assert!(!b_ip.is_empty());
    // The server takes a moment to listen (longer on a loaded machine): wait for it.
    let mut served = String::new();
    for _ in 0..50 {
        served = docker(&["exec", &b_name, "curl", "-s", "-m", "3", "http://127.0.0.1:8000/b-private.txt"]);
        if served == "b-private-canary" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served, "b-private-canary", "B's server works");

    let data_dir = b.dir.path().display().to_string();
    let attack = format!(
        "echo PROCS; ps -eo args=; echo FIND; find / -name 'b-private*' 2>/dev/null; echo NET; \
         curl -s -m 3 http://{b_ip}:8000/b-private.txt || echo unreachable; echo DATA; ls {data_dir} 2>&1; \
         echo ENV; env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; echo GREP; \
         grep -rIl -e canary-token -e canary-provider / --exclude-dir=proc --exclude-dir=sys 2>/dev/null; \
         echo SOCK; ls -la /var/run/docker.sock 2>&1; echo MOUNTS; cat /proc/mounts"
    );
    let a = setup_with(vec![shell(&attack), Reply::text(&["done"])], Wire::OpenAi, json!({}), &sandbox_config()).await;
    run_to_end(&a, "look around").await;
    let out = results(&a, &a.thread).await[0]["result"].as_str().unwrap().to_owned();
    let section = |name: &str, next: &str| section(&out, name, next);
    let procs = section("PROCS", "FIND");
    assert!(!procs.contains("http.server") && !procs.contains("herm "), "A sees only its own processes: {procs}");
    assert!(section("FIND", "NET").trim().is_empty(), "A cannot find B's files: {out}");
    assert!(section("NET", "DATA").contains("unreachable"), "A cannot reach B's network: {out}");
    assert!(section("DATA", "ENV").contains("No such file"), "herm's data directory is not there: {out}");
    // No secret in any process's environment, nor in any file A can read.
    let env_text = section("ENV", "GREP");
    assert!(env_text.contains("HOME=/workspace"), "{env_text}");
    assert!(!env_text.contains(TOKEN) && !env_text.contains(PROVIDER_KEY) && !env_text.contains("HERM_"), "{env_text}");
    assert!(section("GREP", "SOCK").trim().is_empty(), "files holding a secret: {out}");
    assert!(section("SOCK", "MOUNTS").contains("No such file"), "no Docker socket: {out}");
    assert!(!out.contains(TOKEN) && !out.contains(PROVIDER_KEY));
    // B, its container and its server were there all along: A's herm, started after B's,
    // did not take B's container for an orphan of its own.
    assert_eq!(
        docker(&["exec", &b_name, "curl", "-s", "-m", "3", "http://127.0.0.1:8000/b-private.txt"]),
        "b-private-canary",
        "B's server still runs"
    );
    delete(&a).await;
    delete(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_holds_from_inside() {
    let _serial = SERIAL.lock().await;
    let script = vec![
        shell(
            "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; touch /etc/x 2>/dev/null && echo ROOT-WRITABLE || echo root-read-only; touch /tmp/t && echo tmp-ok",
        ),
        Reply::tool("shell", json!({"command": "f(){ f|f; }; f", "timeout_secs": 5})),
        Reply::tool("shell", json!({"command": "python3 -c 'a = bytearray(1024**3); print(len(a))'"})),
        Reply::tool("shell", json!({"command": "(sleep 300 & sleep 300 & wait)", "timeout_secs": 2})),
        shell("ps -eo args= | grep -c '[s]leep 300' || true"),
        Reply::text(&["done"]),
    ];
    let env = setup_with(script, Wire::Anthropic, json!({}), &sandbox_config()).await;
    run_to_end(&env, "probe").await;
    let r = results(&env, &env.thread).await;
    let first = r[0]["result"].as_str().unwrap();
    assert!(first.contains("CapEff:\t0000000000000000"), "{first}");
    assert!(
        first.contains("NoNewPrivs:\t1") && first.contains("root-read-only") && first.contains("tmp-ok"),
        "{first}"
    );
    // The fork bomb hit the pids limit, was killed as a tree at its timeout, herm stayed
    // healthy, and the sandbox still runs commands afterwards (the steps below).
    assert_eq!(env.herm.get("/healthz").await.0, 200);
    assert_eq!(
        r[1]["is_error"],
        true,
        "{}",
        &r[1]["result"].as_str().unwrap()[..200.min(r[1]["result"].as_str().unwrap().len())]
    );
    assert!(
        r[1]["result"].as_str().unwrap().starts_with("killed: timed out"),
        "{}",
        &r[1]["result"].as_str().unwrap()[..100]
    );
    // The allocation past the memory limit was killed, reported as a tool error.
    assert_eq!(r[2]["is_error"], true, "{}", r[2]);
    assert!(
        r[2]["result"].as_str().unwrap().starts_with("killed")
            || r[2]["result"].as_str().unwrap().contains("MemoryError"),
        "{}",
        r[2]
    );
    // The timeout killed the command and its children.
    assert!(r[3]["result"].as_str().unwrap().contains("timed out after 2 s"), "{}", r[3]);
    assert!(r[4]["result"].as_str().unwrap().starts_with("exit code 0\n0"), "no sleep survived: {}", r[4]);
    delete(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_outside_the_workspace_and_awkward_files_are_refused() {
    let _serial = SERIAL.lock().await;
    let script = vec![
        shell("ln -s /etc/passwd link; ln -s / rootlink; head -c 100 /dev/urandom > blob.bin; seq 1 100000"),
        Reply::tool("read_file", json!({"path": "link"})),
        Reply::tool("read_file", json!({"path": "../etc/passwd"})),
        Reply::tool("read_file", json!({"path": "blob.bin"})),
        Reply::tool("read_file", json!({"path": "nope.txt"})),
        Reply::tool("write_file", json!({"path": "rootlink/etc/evil", "content": "x"})),
        Reply::tool("edit_file", json!({"path": "blob2.txt", "old_string": "a", "new_string": "b"})),
        Reply::text(&["done"]),
    ];
    let env = setup_with(script, Wire::OpenAi, json!({}), &sandbox_config()).await;
    run_to_end(&env, "try").await;
    let r = results(&env, &env.thread).await;
    let big = r[0]["result"].as_str().unwrap();
    assert!(
        big.contains("[output truncated") && big.contains(".herm/outputs/"),
        "huge output capped with its file: {}",
        &big[big.len() - 200..]
    );
    for (i, want) in [(1, "outside"), (2, "outside"), (3, "binary"), (4, "not found"), (5, "outside"), (6, "not found")]
    {
        let t = r[i]["result"].as_str().unwrap();
        assert_eq!(r[i]["is_error"], true, "{i}: {t}");
        assert!(t.to_lowercase().contains(want) || t.contains("escapes"), "{i}: {t}");
    }
    // The full output is there, through the Files API.
    let path = big.split("/workspace/").last().unwrap().trim_end_matches(']');
    assert!(String::from_utf8_lossy(&env.file(path).await.1).contains("\n100000\n"));
    for bad in ["../etc/passwd", "/etc/passwd", "link", "rootlink/etc"] {
        let (s, v) = env.herm.get(&format!("/v1/deployments/{}/files/content?path={bad}", env.dep)).await;
        assert_eq!((s, v["code"].as_str()), (400, Some("validation_error")), "{bad}: {v}");
    }
    let (s, _) = env.herm.get(&format!("/v1/deployments/{}/files/content?path=missing", env.dep)).await;
    assert_eq!(s, 404);
    assert!(
        docker(&["exec", &format!("herm-{}", env.dep), "ls", "/etc/evil"]).is_empty(),
        "nothing was written outside"
    );
    delete(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_command_in_flight_at_a_crash_is_interrupted_unknown() {
    let _serial = SERIAL.lock().await;
    let script =
        vec![shell("echo started > started.txt; sleep 20; echo finished > finished.txt"), Reply::text(&["ok"])];
    let mut env = setup_with(script, Wire::Anthropic, json!({}), &sandbox_config()).await;
    let run = env.send("long job").await["run_id"].as_str().unwrap().to_owned();
    let name = format!("herm-{}", env.dep);
    for _ in 0..200 {
        if docker(&["exec", &name, "cat", "/workspace/started.txt"]) == "started" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.herm.kill9().await;
    env.herm.restart().await;
    let r = env.herm.wait_run(&env.dep, &run, Duration::from_secs(60)).await;
    assert_eq!(r["status"], "completed", "{r}");
    let res = results(&env, &env.thread).await;
    assert_eq!(res[0]["outcome"], "interrupted_unknown", "shell is not repeat-safe: {}", res[0]);
    assert_eq!(env.model.completed_per_step(), vec![1, 1]);
    delete(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_kills_a_running_shell_command() {
    let _serial = SERIAL.lock().await;
    let script = vec![shell("sh -c 'sleep 400' & sleep 400; echo never"), Reply::text(&["ok"])];
    let env = setup_with(script, Wire::OpenAi, json!({}), &sandbox_config()).await;
    let run = env.send("long").await["run_id"].as_str().unwrap().to_owned();
    let name = format!("herm-{}", env.dep);
    let count = || docker(&["exec", &name, "sh", "-c", "pgrep -fx 'sleep 400' | wc -l"]);
    for _ in 0..600 {
        if count() == "2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(), "2", "the command and its child are running");
    let (s, _) = env
        .herm
        .post(&format!("/v1/threads/{}/events", env.thread), &json!({"events": [{"type": "user.interrupt"}]}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(env.herm.wait_run(&env.dep, &run, Duration::from_secs(10)).await["status"], "interrupted");
    let mut left = count();
    for _ in 0..100 {
        if left == "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = count();
    }
    assert_eq!(left, "0", "the interrupt killed the command's whole process tree");
    let log = env.herm.thread_log(&env.thread).await;
    let r = log.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert_eq!((r["tool"].as_str(), r["outcome"].as_str()), (Some("shell"), Some("interrupted_unknown")));
    delete(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sandboxes_stop_and_orphans_are_reconciled() {
    let _serial = SERIAL.lock().await;
    // An orphan: a sandbox labelled with a deployment this herm does not know, as an older
    // herm made them (no owner label).
    let orphan = "dep_0000000000000000000001";
    docker(&[
        "create",
        "--name",
        &format!("herm-{orphan}"),
        "--label",
        &format!("herm.deployment={orphan}"),
        "--label",
        "herm.managed=true",
        "herm-sandbox:default",
        "true",
    ]);
    let cfg = sandbox_config().replace("shell_timeout_secs = 30", "shell_timeout_secs = 30\nidle_stop_secs = 1");
    let env = setup_with(vec![shell("echo hi > f.txt"), Reply::text(&["ok"])], Wire::OpenAi, json!({}), &cfg).await;
    assert_eq!(
        docker(&["ps", "-aq", "--filter", &format!("name=herm-{orphan}")]),
        "",
        "the orphan was removed at start"
    );
    run_to_end(&env, "write").await;
    let name = format!("herm-{}", env.dep);
    let mut running = String::new();
    for _ in 0..100 {
        running = docker(&["inspect", "-f", "{{.State.Running}}", &name]);
        if running == "false" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(running, "false", "the idle sandbox was stopped");
    // It starts again on demand, workspace intact.
    let (s, l) = env.herm.get(&format!("/v1/deployments/{}/files", env.dep)).await;
    assert_eq!(s, 200);
    assert!(l["entries"].as_array().unwrap().iter().any(|e| e["name"] == "f.txt"));
    assert_eq!(docker(&["inspect", "-f", "{{.State.Running}}", &name]), "true");
    // A sandbox removed behind herm's back (the volume kept) is recreated at the next start,
    // before anyone uses it, with the same workspace.
    let mut env = env;
    env.herm.kill9().await;
    docker(&["rm", "-f", &name]);
    env.herm.restart().await;
    let mut exists = String::new();
    for _ in 0..300 {
        exists = docker(&["ps", "-aq", "--filter", &format!("name={name}")]);
        if !exists.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!exists.is_empty(), "the missing sandbox was recreated at start");
    let (s, l) = env.herm.get(&format!("/v1/deployments/{}/files", env.dep)).await;
    assert_eq!(s, 200);
    assert!(l["entries"].as_array().unwrap().iter().any(|e| e["name"] == "f.txt"));
    delete(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_events_when_enabled() {
    let _serial = SERIAL.lock().await;
    let script = vec![
        Reply::tool("write_file", json!({"path": "a.txt", "content": "one"})),
        shell("echo two > b.txt; rm a.txt; mkdir -p d && echo three > d/c.txt"),
        Reply::tool("write_file", json!({"path": "b.txt", "content": "2"})),
        Reply::text(&["ok"]),
    ];
    let env =
        setup_with(script, Wire::OpenAi, json!({"features": {"filesystem_webhooks": true}}), &sandbox_config()).await;
    run_to_end(&env, "files").await;
    env.put_file("up.txt", "x").await;
    let log = env.herm.thread_log(&env.thread).await;
    let fs: Vec<(String, String)> = log
        .iter()
        .filter(|e| e["type"] == "filesystem")
        .map(|e| (e["change"].as_str().unwrap().to_owned(), e["path"].as_str().unwrap().to_owned()))
        .collect();
    let want: Vec<(String, String)> = [
        ("created", "a.txt"),
        ("deleted", "a.txt"),
        ("created", "b.txt"),
        ("created", "d/c.txt"),
        ("modified", "b.txt"),
        ("created", "up.txt"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(fs, want);
    // Without the feature, no such events.
    let quiet = setup_with(
        vec![Reply::tool("write_file", json!({"path": "q.txt", "content": "q"})), Reply::text(&["ok"])],
        Wire::OpenAi,
        json!({}),
        &sandbox_config(),
    )
    .await;
    run_to_end(&quiet, "files").await;
    assert!(quiet.herm.thread_log(&quiet.thread).await.iter().all(|e| e["type"] != "filesystem"));
    delete(&env).await;
    delete(&quiet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_skills_are_read_from_the_workspace() {
    let _serial = SERIAL.lock().await;
    let script = vec![Reply::tool("load_skill", json!({"name": "notes"})), Reply::text(&["ok"])];
    let skills = json!({"skills": [{"name": "notes", "source": "file", "path": "skills/notes/SKILL.md"}]});
    let env = setup_with(script, Wire::Anthropic, skills, &sandbox_config()).await;
    env.put_file(
        "skills/notes/SKILL.md",
        "---\nname: notes\ndescription: Where the team keeps notes.\n---\nNotes live in /workspace/notes.\n",
    )
    .await;
    run_to_end(&env, "where are notes?").await;
    let a = env.model.attempts();
    assert!(a[0].body["system"].as_str().unwrap().contains("- notes: Where the team keeps notes."));
    assert_eq!(results(&env, &env.thread).await[0]["result"], "Notes live in /workspace/notes.\n");
    delete(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_settings_changed_by_patch_reach_the_running_sandbox() {
    let _serial = SERIAL.lock().await;
    let probe = "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \
                 ls /sys/class/net | tr '\\n' ' '";
    let mut script = Vec::new();
    for n in ["1", "2", "3", "4"] {
        script.extend([shell(probe), Reply::text(&[n])]);
    }
    let env = setup_with(script, Wire::OpenAi, json!({}), &sandbox_config()).await;
    let name = format!("herm-{}", env.dep);
    let id = docker(&["inspect", "-f", "{{.Id}}", &name]);
    let patch = |sandbox: Value| {
        let env = &env;
        async move {
            let (s, v) = env.herm.patch(&format!("/v1/deployments/{}", env.dep), &json!({"sandbox": sandbox})).await;
            assert_eq!(s, 200, "{v}");
        }
    };
    run_to_end(&env, "as created").await;
    // Network off and less memory: the next command runs without a network, under the new
    // limit, in the same container (nothing was restarted).
    patch(json!({"network": "off", "memory_mb": 200})).await;
    run_to_end(&env, "after off").await;
    assert_eq!(docker(&["inspect", "-f", "{{.Id}}", &name]), id, "the same container");
    patch(json!({"network": "on", "memory_mb": 256})).await;
    run_to_end(&env, "after on").await;
    assert_eq!(docker(&["inspect", "-f", "{{.Id}}", &name]), id, "the same container");
    // Another image applies when the sandbox next starts: a new container on the same
    // workspace.
    let tag = "herm-sandbox:patch-test";
    docker(&["tag", "herm-sandbox:default", tag]);
    env.put_file("keep.txt", "kept").await;
    patch(json!({"image": tag, "memory_mb": 256})).await;
    docker(&["stop", "-t", "1", &name]);
    run_to_end(&env, "after image").await;
    assert_eq!(docker(&["inspect", "-f", "{{.Config.Image}}", &name]), tag);
    assert_ne!(docker(&["inspect", "-f", "{{.Id}}", &name]), id, "a new container");
    assert_eq!(env.file("keep.txt").await, (200, b"kept".to_vec()), "on the same workspace");

    let r: Vec<String> =
        results(&env, &env.thread).await.iter().map(|r| r["result"].as_str().unwrap().to_owned()).collect();
    let mib = |n: u64| (n * 1024 * 1024).to_string();
    assert!(r[0].contains(&mib(256)) && r[0].contains("eth0"), "{}", r[0]);
    assert!(r[1].contains(&mib(200)) && r[1].trim_end().ends_with("\nlo"), "off: only the loopback: {}", r[1]);
    // Connected again, the interface may get another name (eth1).
    assert!(r[2].contains(&mib(256)) && r[2].contains("eth"), "on again: {}", r[2]);
    assert!(r[3].contains(&mib(256)) && r[3].contains("eth"), "{}", r[3]);
    delete(&env).await;
    docker(&["rmi", tag]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_without_python_gets_the_binary_helper() {
    let _serial = SERIAL.lock().await;
    let image = "herm-sandbox:no-python";
    let maker = "herm-test-no-python";
    docker(&["rm", "-f", maker]);
    docker(&["run", "--name", maker, "herm-sandbox:default", "sh", "-c", "rm -f /usr/bin/python3*"]);
    docker(&["commit", maker, image]);
    docker(&["rm", "-f", maker]);
    let script = vec![
        shell("command -v python3 || echo no-python; ps -eo args= | grep -c '^/run/herm/helper'"),
        Reply::text(&["ok"]),
    ];
    let env = setup_with(script, Wire::OpenAi, json!({"sandbox": {"image": image}}), &sandbox_config()).await;
    run_to_end(&env, "which helper?").await;
    let r = results(&env, &env.thread).await[0]["result"].as_str().unwrap().to_owned();
    assert_eq!(r, "exit code 0\nno-python\n1\n", "commands run through the static helper: {r}");
    delete(&env).await;
    docker(&["rmi", image]);
}

/// Idle stop is a durable timer: a sandbox left running by a herm killed with SIGKILL (its
/// in-memory state gone) is still stopped once idle after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_left_running_by_a_crash_idles_out_after_restart() {
    let _serial = SERIAL.lock().await;
    // Long enough that the sandbox is still running when herm is killed, short enough to wait.
    let cfg = sandbox_config().replace("shell_timeout_secs = 30", "shell_timeout_secs = 30\nidle_stop_secs = 4");
    let mut env = setup_with(vec![shell("echo hi"), Reply::text(&["ok"])], Wire::OpenAi, json!({}), &cfg).await;
    run_to_end(&env, "say hi").await;
    let name = format!("herm-{}", env.dep);
    assert_eq!(docker(&["inspect", "-f", "{{.State.Running}}", &name]), "true");
    env.herm.kill9().await;
    assert_eq!(docker(&["inspect", "-f", "{{.State.Running}}", &name]), "true", "still running after the crash");
    env.herm.restart().await;
    let mut running = String::new();
    for _ in 0..150 {
        running = docker(&["inspect", "-f", "{{.State.Running}}", &name]);
        if running == "false" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(running, "false", "the sandbox a crashed herm left running was stopped once idle");
    delete(&env).await;
}
