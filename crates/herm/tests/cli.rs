//! The operator CLI against a real server: `secrets set` from stdin, `deploy -f` YAML,
//! `chat` streaming an answer, `events tail`.
// Black-box tests run the real binary and look at the host as an operator would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn herm_cli(conn: &(String, String), args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_herm"))
        .args(args)
        .env("HERM_URL", &conn.0)
        .env("HERM_API_KEY", &conn.1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_deploy_chat_and_tail() {
    let model = FakeModel::start(vec![Reply::text(&["Hello ", "from ", "herm."])]).await;
    let (h, dir) = start_herm().await;
    h.ok("PUT", "/v1/providers/fake", &json!({"kind": "anthropic", "base_url": model.anthropic_url()}), 200).await;

    let hh = (h.url.clone(), h.admin_key.clone());
    let (ok, out, err) =
        tokio::task::spawn_blocking(move || herm_cli(&hh, &["secrets", "set", "CLI_SECRET"], "cli-secret-value-42\n"))
            .await
            .unwrap();
    assert!(ok, "{err}");
    let sid = out.trim().to_owned();
    assert!(sid.starts_with("sec_"), "{out}");
    let (_, list) = h.get("/v1/secrets").await;
    assert!(list["data"].as_array().unwrap().iter().any(|s| s["secret_id"] == sid.as_str()));

    let yaml = format!(
        "customer_id: cli\nname: cli agent\nsystem_prompt: |\n  Be brief.\nmodel: fake/m\nsecrets:\n  CLI_SECRET: {sid}\n"
    );
    let file = dir.path().join("dep.yaml");
    std::fs::write(&file, yaml).unwrap();
    let hh = (h.url.clone(), h.admin_key.clone());
    let f = file.to_str().unwrap().to_owned();
    let (ok, out, err) = tokio::task::spawn_blocking(move || herm_cli(&hh, &["deploy", "-f", &f], "")).await.unwrap();
    assert!(ok, "{err}");
    let dep: Value = serde_json::from_str(&out).unwrap();
    let dep_id = dep["deployment_id"].as_str().unwrap().to_owned();
    for _ in 0..100 {
        if h.get(&format!("/v1/deployments/{dep_id}")).await.1["status"] == "ready" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let hh = (h.url.clone(), h.admin_key.clone());
    let d = dep_id.clone();
    let (ok, out, err) = tokio::task::spawn_blocking(move || herm_cli(&hh, &["chat", &d], "hi there\n")).await.unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("Hello from herm."), "{out}");

    // `events tail` prints the log as JSON lines (it follows forever; read a few lines).
    let mut tail = Command::new(env!("CARGO_BIN_EXE_herm"))
        .args(["events", "tail", &dep_id])
        .env("HERM_URL", &h.url)
        .env("HERM_API_KEY", &h.admin_key)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout).lines().take(3).map(|l| l.unwrap()).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    tail.kill().unwrap();
    tail.wait().unwrap();
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!((first["type"].as_str(), first["content"].as_str()), (Some("message"), Some("hi there")));
    // The CLI refuses to run without a key rather than guessing.
    let out = Command::new(env!("CARGO_BIN_EXE_herm"))
        .args(["events", "tail", &dep_id])
        .env_remove("HERM_API_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_prompts_for_approval_and_approve_answers_questions() {
    let script = vec![
        Reply::tool("record", record(5, 0)).with_text(&["Recording."]),
        Reply::text(&["Recorded it."]),
        Reply::tool("ask_user", json!({"question": "Which list?", "options": ["A", "B"]})),
        Reply::text(&["Using B."]),
    ];
    let env = setup(script, Wire::OpenAi, json!({"tool_policies": {"record": "always_ask"}})).await;
    let conn = (env.herm.url.clone(), env.herm.admin_key.clone());
    let dep = env.dep.clone();
    // Message, then `e` (edit) with new arguments at the approval prompt.
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        herm_cli(&conn, &["chat", &dep], "record five\ne\n{\"n\": 6, \"delay_ms\": 0}\n")
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("? approve record("), "{out}");
    assert!(out.contains("Recorded it."), "{out}");
    assert_eq!(env.connector.recorded()[0].query, "n=6&delay_ms=0");

    // A question answered from another terminal with `herm approve`, by option number.
    let run = env.send("which list?").await["run_id"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        if env.herm.get(&format!("/v1/deployments/{}/runs/{run}", env.dep)).await.1["status"] == "waiting_on_human" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let conn = (env.herm.url.clone(), env.herm.admin_key.clone());
    let dep = env.dep.clone();
    let (ok, out, err) = tokio::task::spawn_blocking(move || herm_cli(&conn, &["approve", &dep], "2\n")).await.unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("Which list?") && out.contains("2. B"), "{out}");
    assert_eq!(env.herm.wait_run(&env.dep, &run, Duration::from_secs(10)).await["status"], "completed");
    let last = env.model.attempts().pop().unwrap().body.to_string();
    assert!(last.contains("\"content\":\"B\""), "the answer was the option's text: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_show_and_usage_print_the_work() {
    let env = setup(
        vec![Reply::tool("lookup", json!({"q": "weather"})), Reply::text(&["sunny"])],
        Wire::Anthropic,
        json!({}),
    )
    .await;
    let run = run_to_end(&env, "what is the weather").await;
    let conn = (env.herm.url.clone(), env.herm.admin_key.clone());
    let (dep, r) = (env.dep.clone(), run.clone());
    let (ok, out, err) =
        tokio::task::spawn_blocking(move || herm_cli(&conn, &["runs", "show", &r, "--deployment", &dep], ""))
            .await
            .unwrap();
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with(&format!("run {run} — user completed, 2 steps")), "{out}");
    assert!(out.contains("model fake/m1 in ") && out.contains("30 in / 15 out · $0.000315"), "{out}");
    assert!(out.contains("tool → lookup(q=\"weather\")"), "{out}");
    assert!(out.contains("tool ← lookup ok in "), "{out}");
    assert!(out.contains("status completed"), "{out}");
    assert!(lines.last().unwrap().starts_with("total 50 in / 25 out tokens · $0.000525"), "{out}");
    assert!(!out.contains('\x1b'), "piped output is plain");

    let conn = (env.herm.url.clone(), env.herm.admin_key.clone());
    let dep = env.dep.clone();
    let (ok, out, err) =
        tokio::task::spawn_blocking(move || herm_cli(&conn, &["usage", "--deployment", &dep], "")).await.unwrap();
    assert!(ok, "{err}");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(out.lines().any(|l| l.starts_with(&today) && l.contains("0.000525")), "{out}");
    assert!(out.lines().last().unwrap().starts_with("total"), "{out}");
    let conn = (env.herm.url.clone(), env.herm.admin_key.clone());
    let dep = env.dep.clone();
    let (ok, out, _) =
        tokio::task::spawn_blocking(move || herm_cli(&conn, &["usage", "--deployment", &dep, "--by", "model"], ""))
            .await
            .unwrap();
    assert!(ok && out.contains("fake/m1"), "{out}");
}
