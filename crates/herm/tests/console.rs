//! The operator console in a real headless browser (Debian's Chromium through chromedriver,
//! driven by fantoccini): sign in with a key in the fragment (cleared at once, kept in the
//! tab's session only), find the deployment and its waiting thread, fix an approval's
//! arguments (a schema violation is caught before sending) and watch the run complete; a
//! read-only key sees the request but no way to answer, and the API refuses it anyway.
//! Screenshots of the main screens are saved under `target/console-screenshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// chromedriver in its own process group: the group (the browser included) is killed and
/// the driver reaped when dropped, even when a test panics.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Browser {
    client: Client,
    _driver: Driver,
}

async fn browser() -> Browser {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let driver = Driver(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; scripts/browser.sh installs it)"),
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]}),
    );
    for _ in 0..100 {
        let mut b = ClientBuilder::rustls().unwrap();
        if let Ok(client) = b.capabilities(caps.clone()).connect(&format!("http://127.0.0.1:{port}")).await {
            return Browser { client, _driver: driver };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer");
}

async fn shot(c: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), c.screenshot().await.unwrap()).unwrap();
}

/// Waits until the thread is waiting on a person.
async fn waiting(env: &Env) {
    for _ in 0..200 {
        let t =
            env.herm.ok("GET", &format!("/v1/deployments/{}/threads/{}", env.dep, env.thread), &Value::Null, 200).await;
        if t["status"] == "waiting_on_human" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the run never waited for a person");
}

async fn text_of(c: &Client, css: &str) -> String {
    c.wait().at_most(Duration::from_secs(15)).for_element(Locator::Css(css)).await.unwrap().text().await.unwrap()
}

async fn wait_text(c: &Client, css: &str, want: &str) {
    for _ in 0..150 {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && e.text().await.unwrap_or_default().contains(want)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`{css}` never showed `{want}`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_approves_an_edited_call_and_a_read_only_key_cannot() {
    let script = vec![
        Reply::tool("record", record(1, 0)),
        Reply::text(&["Recorded."]),
        Reply::tool("record", record(2, 0)),
        Reply::text(&["Recorded again."]),
    ];
    let env = setup_with(script, Wire::Anthropic, json!({"tool_policies": {"record": "always_ask"}}), CONFIG).await;
    env.send("record entry one").await;
    waiting(&env).await;

    // The page's headers: its own script and styles only, no framing.
    let resp = reqwest::get(format!("{}/console", env.herm.url)).await.unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");

    let b = browser().await;
    let c = &b.client;
    c.goto(&format!("{}/console#key={}", env.herm.url, env.herm.admin_key)).await.unwrap();
    let name = text_of(c, "tr.deployment a").await;
    assert_eq!(name, "test agent");
    // The key left the address bar, and lives in this tab's session only.
    assert!(!c.current_url().await.unwrap().as_str().contains("key="));
    let stores =
        c.execute("return [sessionStorage.length, localStorage.length, document.cookie]", vec![]).await.unwrap();
    assert_eq!(stores, json!([1, 0, ""]));
    wait_text(c, "tr.deployment", "1 waiting").await;
    // The model call so far cost 0.000315 USD at the fake provider's prices.
    wait_text(c, "tr.deployment td.cost", "$0.0003").await;
    shot(c, "1-deployments").await;

    c.find(Locator::Css("tr.deployment a")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("tr.thread a")).await.unwrap().click().await.unwrap();
    let args = c.wait().for_element(Locator::Css(".card.pending textarea.arguments")).await.unwrap();
    assert!(args.prop("value").await.unwrap().unwrap().contains("\"n\": 1"));
    wait_text(c, "#log", "record entry one").await;
    shot(c, "2-approval").await;

    // An edit that breaks the tool's schema is caught in the page: nothing is sent.
    args.clear().await.unwrap();
    args.send_keys(r#"{"n": "seven"}"#).await.unwrap();
    c.find(Locator::Css(".card.pending button.approve")).await.unwrap().click().await.unwrap();
    wait_text(c, ".card.pending .problems", "expected integer").await;
    assert_eq!(env.connector.calls(), 0);
    // A fitting edit is approved with the keyboard (focus, Enter) and the run completes.
    args.clear().await.unwrap();
    args.send_keys(r#"{"n": 7, "delay_ms": 0}"#).await.unwrap();
    let approve = c.find(Locator::Css(".card.pending button.approve")).await.unwrap();
    c.execute("arguments[0].focus()", vec![serde_json::to_value(&approve).unwrap()]).await.unwrap();
    approve.send_keys("\u{E007}").await.unwrap();
    wait_text(c, "#log", "run completed").await;
    wait_text(c, "#log", "Recorded.").await;
    assert!(c.find_all(Locator::Css(".card.pending")).await.unwrap().is_empty());
    let calls = env.connector.recorded();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].query.contains("n=7"), "{calls:?}");
    shot(c, "3-completed").await;
    c.set_window_size(390, 844).await.unwrap();
    shot(c, "4-completed-phone").await;
    c.set_window_size(1280, 900).await.unwrap();

    // A read-only key: it sees the waiting request, but no way to answer it.
    let ro = env.herm.ok("POST", "/v1/api-keys", &json!({"name": "viewer", "scopes": ["deployments:read"]}), 201).await;
    let ro = ro["key"].as_str().unwrap().to_owned();
    env.send("record entry two").await;
    waiting(&env).await;
    c.execute("sessionStorage.clear()", vec![]).await.unwrap();
    c.goto(&format!("{}/console#key={ro}", env.herm.url)).await.unwrap();
    text_of(c, "tr.deployment a").await;
    c.goto(&format!("{}/console#/d/{}/t/{}", env.herm.url, env.dep, env.thread)).await.unwrap();
    wait_text(c, ".card.pending", "cannot answer").await;
    assert!(c.find_all(Locator::Css("button.approve, button.deny, #compose")).await.unwrap().is_empty());
    shot(c, "5-read-only").await;
    let t = env.herm.ok("GET", &format!("/v1/deployments/{}/threads/{}", env.dep, env.thread), &Value::Null, 200).await;
    let request = t["pending"][0]["request_id"].as_str().unwrap();
    let (status, body) = env
        .herm
        .request(
            "POST",
            &format!("/v1/threads/{}/events", env.thread),
            Some(&ro),
            Some(&json!({"events": [{"type": "user.tool_confirmation", "request_id": request, "result": "allow"}]})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    // Signing out forgets the key.
    c.find(Locator::Css("#signout")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("form.signin")).await.unwrap();
    assert_eq!(c.execute("return sessionStorage.length", vec![]).await.unwrap(), json!(0));
}

/// The deployment page: a file the agent wrote is browsed and previewed, a memory is edited
/// (a new version), an automation is paused; each change is visible through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_browses_files_and_edits_memory_and_automations() {
    let script =
        vec![shell("mkdir -p out && echo 'thumbnail report: 5 variations' > out/report.txt"), Reply::text(&["Done."])];
    let env = setup_with(script, Wire::Anthropic, json!({}), &sandbox_config()).await;
    run_to_end(&env, "write the report").await;
    let base = format!("/v1/deployments/{}", env.dep);
    let m = env
        .herm
        .ok("POST", &format!("{base}/memories"), &json!({"path": "prefs/voice.md", "content": "Warm and short."}), 201)
        .await;
    let a = env
        .herm
        .ok(
            "POST",
            &format!("{base}/automations"),
            &json!({"name": "daily digest", "schedule": "every day at 9am", "timezone": "UTC", "instructions": "digest"}),
            201,
        )
        .await;

    let b = browser().await;
    let c = &b.client;
    c.goto(&format!("{}/console#key={}", env.herm.url, env.herm.admin_key)).await.unwrap();
    c.wait().for_element(Locator::Css("tr.deployment a")).await.unwrap().click().await.unwrap();

    // Files: into out/, open report.txt.
    let dir =
        c.wait().for_element(Locator::XPath("//section[contains(@class,'files')]//button[.='out/']")).await.unwrap();
    dir.click().await.unwrap();
    c.wait()
        .for_element(Locator::XPath("//section[contains(@class,'files')]//button[.='report.txt']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, ".files .file-text", "thumbnail report: 5 variations").await;
    shot(c, "6-files").await;

    // Memories: open, edit, save: version 2 through the API.
    c.wait()
        .for_element(Locator::XPath("//section[contains(@class,'memories')]//button[.='prefs/voice.md']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let text = c.wait().for_element(Locator::Css(".memory-editor textarea")).await.unwrap();
    text.clear().await.unwrap();
    text.send_keys("Warm, short, no emoji.").await.unwrap();
    c.find(Locator::XPath("//div[contains(@class,'memory-editor')]//button[.='Save']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, ".memory-editor h3", "version 2").await;
    let id = m["memory_id"].as_str().unwrap();
    let now = env.herm.ok("GET", &format!("{base}/memories/{id}"), &Value::Null, 200).await;
    assert_eq!((now["content"].as_str(), now["version"].as_i64()), (Some("Warm, short, no emoji."), Some(2)));
    shot(c, "7-memory").await;

    // Automations: pause.
    c.find(Locator::XPath("//section[contains(@class,'automations')]//button[.='Pause']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let aid = a["automation_id"].as_str().unwrap();
    for _ in 0..100 {
        let now = env.herm.ok("GET", &format!("{base}/automations/{aid}"), &Value::Null, 200).await;
        if now["enabled"] == false {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the automation was not paused");
}

/// A question from the agent is answered in the page, and a message sent from it starts the
/// next run; both show up live in the thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_answers_a_question_and_talks_to_the_agent() {
    let script = vec![
        Reply::tool(
            "ask_user",
            json!({"question": "Two campaigns match: which one?", "options": ["Spring", "Summer"]}),
        ),
        Reply::text(&["Paused Summer."]),
        Reply::text(&["Resumed it."]),
    ];
    let env = setup_with(script, Wire::Anthropic, json!({}), CONFIG).await;
    env.send("pause the campaign").await;
    waiting(&env).await;
    let b = browser().await;
    let c = &b.client;
    c.goto(&format!("{}/console#key={}", env.herm.url, env.herm.admin_key)).await.unwrap();
    text_of(c, "tr.deployment a").await;
    c.goto(&format!("{}/console#/d/{}/t/{}", env.herm.url, env.dep, env.thread)).await.unwrap();
    wait_text(c, ".card.pending", "which one?").await;
    let answer = c.find(Locator::Css(".card.pending input.answer")).await.unwrap();
    answer.send_keys("Summer").await.unwrap();
    c.find(Locator::XPath("//div[contains(@class,'card')]//button[.='Answer']")).await.unwrap().click().await.unwrap();
    wait_text(c, "#log", "Paused Summer.").await;
    shot(c, "8-answered").await;
    let compose = c.find(Locator::Css("#compose")).await.unwrap();
    compose.send_keys("now resume it").await.unwrap();
    c.find(Locator::Css("button.send")).await.unwrap().click().await.unwrap();
    wait_text(c, "#log", "Resumed it.").await;
    // The model saw the answer, and the message sent from the page.
    let attempts = env.model.attempts();
    let last = attempts.last().unwrap().body.to_string();
    assert!(last.contains("Summer") && last.contains("now resume it"), "{last}");
}
