//! Automations as a user meets them: schedules read and echoed back, every slot fired exactly
//! once across `kill -9` and restarts (with a test clock), missed slots per policy, runs that
//! wait for approval like any other, webhook triggers with their own token and delivery ids,
//! self-pausing after failures, and the agent creating one in chat.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::collections::BTreeMap;

fn autos(env: &Env) -> String {
    format!("/v1/deployments/{}/automations", env.dep)
}

async fn firings(env: &Env, id: &str) -> Vec<Value> {
    let v = env.herm.ok("GET", &format!("{}/{id}/firings?limit=100", autos(env)), &Value::Null, 200).await;
    v["data"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_read_echoed_and_edited_and_bad_ones_are_refused() {
    let env = setup(vec![], Wire::Anthropic, json!({})).await;
    let a = env
        .herm
        .ok(
            "POST",
            &autos(&env),
            &json!({"name": "weekly variations", "schedule": "every Monday at 9am", "timezone": "Europe/Paris",
                    "instructions": "Make five variations of our top video."}),
            201,
        )
        .await;
    assert_eq!(a["cron"], "0 9 * * 1", "{a}");
    assert_eq!(a["description"], "every Monday at 09:00 (Europe/Paris)");
    let next = chrono::DateTime::parse_from_rfc3339(a["next_run_at"].as_str().unwrap()).unwrap();
    assert_eq!(next.with_timezone(&chrono_tz::Europe::Paris).format("%a %H:%M").to_string(), "Mon 09:00");
    let id = a["automation_id"].as_str().unwrap();
    assert!(id.starts_with("auto_"));

    for (body, says) in [
        (
            json!({"name": "n", "schedule": "every Monday at nine-ish", "instructions": "i"}),
            "understood `every monday at` but not `nine-ish`",
        ),
        (json!({"name": "n", "schedule": "every 7 minutes", "instructions": "i"}), "understood `every`"),
        (json!({"name": "n", "schedule": "0 9 * * 1", "timezone": "Mars/Olympus", "instructions": "i"}), "time zone"),
        (json!({"name": "n", "instructions": "i"}), "needs a `schedule`"),
        (json!({"name": "", "schedule": "hourly", "instructions": "i"}), "`name`"),
        (json!({"name": "n", "schedule": "hourly", "instructions": "i", "thread_id": "thr_nope"}), "thread"),
    ] {
        let (s, v) = env.herm.post(&autos(&env), &body).await;
        assert_eq!((s, v["code"].as_str()), (400, Some("validation_error")), "{body}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(says), "{body}: {v}");
    }
    let (s, v) =
        env.herm.post(&autos(&env), &json!({"name": "n", "schedule": "hourly", "instructions": "i", "bogus": 1})).await;
    assert_eq!(s, 400, "{v}");

    // Edits are conditional: a stale If-Match is refused; the schedule is read again.
    let url = format!("{}/{id}", autos(&env));
    let (s, _, v) = env
        .herm
        .request_with_headers("PATCH", &url, &[("if-match", "\"7\"")], Some(&json!({"schedule": "daily at 6pm"})))
        .await;
    assert_eq!((s, v["code"].as_str()), (412, Some("precondition_failed")), "{v}");
    let p = env.herm.ok("PATCH", &url, &json!({"schedule": "every weekday at 17:30", "timezone": "UTC"}), 200).await;
    assert_eq!(
        (p["cron"].as_str(), p["description"].as_str()),
        (Some("30 17 * * 1-5"), Some("every weekday (Monday to Friday) at 17:30 (UTC)"))
    );
    let p = env.herm.ok("POST", &format!("{url}/pause"), &json!({}), 200).await;
    assert_eq!((p["enabled"].as_bool(), p["next_run_at"].as_str()), (Some(false), None), "{p}");
    let p = env.herm.ok("POST", &format!("{url}/resume"), &json!({}), 200).await;
    assert!(p["enabled"].as_bool().unwrap() && p["next_run_at"].is_string(), "{p}");
    let list = env.herm.ok("GET", &autos(&env), &Value::Null, 200).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let log = env.herm.thread_log(&env.thread).await;
    let states: Vec<&str> =
        log.iter().filter(|e| e["type"] == "automation_status").map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(states, ["paused", "resumed"]);

    let (s, _) = env.herm.request("DELETE", &url, Some(&env.herm.admin_key.clone()), None).await;
    assert_eq!(s, 204);
    let (s, v) = env.herm.get(&url).await;
    assert_eq!((s, v["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_slot_fires_exactly_once_across_kill_9_and_restarts() {
    let clock_dir = tempfile::tempdir().unwrap();
    let clock = clock_dir.path().join("clock");
    let t0 = chrono::DateTime::parse_from_rfc3339("2030-01-07T08:00:30Z").unwrap().with_timezone(&chrono::Utc);
    set_clock(&clock, t0);
    let config =
        CONFIG.replace("[engine]\n", &format!("[engine]\ntest_clock_file = {:?}\n", clock.display().to_string()));
    // The clock jumps minutes at a time: the memory observer (two idle minutes) would answer
    // from the same script, so it waits a day here.
    let config = config + "\n[memory]\nobserve_after_secs = 86400\n";
    let script = (0..40).map(|i| Reply::text(&[&format!("done {i}")])).collect();
    let mut env = setup_with(script, Wire::OpenAi, json!({}), &config).await;
    let a = env
        .herm
        .ok("POST", &autos(&env), &json!({"name": "tick", "schedule": "every minute", "instructions": "Tick."}), 201)
        .await;
    let id = a["automation_id"].as_str().unwrap().to_owned();
    assert_eq!(a["next_run_at"], "2030-01-07T08:01:00Z", "{a}");

    // Minute after minute, herm is killed at a different moment around each slot's firing.
    let waits = [0u64, 30, 120, 250, 400, 700];
    for (i, wait) in waits.iter().enumerate() {
        let minute = i as i64 + 1;
        set_clock(&clock, t0 + chrono::Duration::seconds(minute * 60 - 30) + chrono::Duration::milliseconds(100));
        tokio::time::sleep(Duration::from_millis(*wait)).await;
        env.herm.kill9().await;
        env.herm.restart().await;
        let slot =
            (t0 + chrono::Duration::seconds(minute * 60 - 30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        wait_for_slot(&env, &id, &slot).await;
    }
    // Down for five slots: the latest one runs (it is on time), the four before are skipped.
    env.herm.kill9().await;
    let back = t0 + chrono::Duration::seconds(11 * 60 - 30) + chrono::Duration::milliseconds(100);
    set_clock(&clock, back);
    env.herm.restart().await;
    let last = (t0 + chrono::Duration::seconds(11 * 60 - 30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    wait_for_slot(&env, &id, &last).await;
    let all = firings(&env, &id).await;
    let mut by_slot: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for f in &all {
        by_slot.entry(f["slot_at"].as_str().unwrap().to_owned()).or_default().push(f);
    }
    assert_eq!(by_slot.len(), 11, "slots 1..=11 each recorded: {all:?}");
    assert!(by_slot.values().all(|v| v.len() == 1));
    let statuses: Vec<&str> = by_slot.values().map(|v| v[0]["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        ["fired", "fired", "fired", "fired", "fired", "fired", "skipped", "skipped", "skipped", "skipped", "fired"],
        "{all:?}"
    );
    // Exactly one run per fired slot, and one model call per run: none fired twice.
    let log = env.herm.thread_log(&env.thread).await;
    let mut runs_per_slot: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for e in log.iter().filter(|e| e["type"] == "run_status" && e["kind"] == "automation") {
        runs_per_slot
            .entry(e["trigger"]["slot"].as_str().unwrap().to_owned())
            .or_default()
            .insert(e["run_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(runs_per_slot.len(), 7, "{runs_per_slot:?}");
    assert!(runs_per_slot.values().all(|r| r.len() == 1), "{runs_per_slot:?}");
    let messages = log.iter().filter(|e| e["type"] == "message").count();
    assert_eq!(messages, 7, "one instructions message per fired slot");
    assert_eq!(env.model.completed_per_step().iter().take(8).copied().collect::<Vec<_>>(), [1, 1, 1, 1, 1, 1, 1, 0]);
}

async fn wait_for_slot(env: &Env, id: &str, slot: &str) -> Value {
    for _ in 0..300 {
        let fs = firings(env, id).await;
        if let Some(f) = fs.iter().find(|f| f["slot_at"] == slot) {
            if f["status"] == "skipped" {
                return f.clone();
            }
            let run = f["run_id"].as_str().unwrap();
            let r = env.herm.wait_run(&env.dep, run, Duration::from_secs(20)).await;
            assert_eq!(r["status"], "completed", "{r}");
            assert_eq!(
                (r["kind"].as_str(), r["trigger"]["automation_id"].as_str()),
                (Some("automation"), Some(id)),
                "{r}"
            );
            return f.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("slot {slot} never fired: {:?}", firings(env, id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automation_run_waits_for_approval_like_any_run_and_new_threads_are_its_own() {
    let script = vec![Reply::tool("record", record(1, 0)), Reply::text(&["Recorded."]), Reply::text(&["Again."])];
    let env = setup(script, Wire::Anthropic, json!({"tool_policies": {"record": "always_ask"}})).await;
    let a = env
        .herm
        .ok(
            "POST",
            &autos(&env),
            &json!({"name": "nightly", "schedule": "daily at 3am", "instructions": "Record one entry."}),
            201,
        )
        .await;
    let url = format!("{}/{}", autos(&env), a["automation_id"].as_str().unwrap());
    let fired = env.herm.ok("POST", &format!("{url}/run"), &json!({}), 202).await;
    let run = fired["run_id"].as_str().unwrap();
    assert_eq!(fired["thread_id"], env.thread.as_str(), "the default thread");
    let pending = first_pending(&env).await;
    assert_eq!(pending["tool"], "record", "{pending}");
    assert_eq!(env.connector.calls(), 0);
    let (s, v) = env
        .herm
        .post(
            &format!("/v1/threads/{}/events", env.thread),
            &json!({"events": [{"type": "user.tool_confirmation", "request_id": pending["request_id"], "result": "allow"}]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let r = env.herm.wait_run(&env.dep, run, Duration::from_secs(20)).await;
    assert_eq!((r["status"].as_str(), r["kind"].as_str()), (Some("completed"), Some("automation")), "{r}");
    assert_eq!(env.connector.calls(), 1);
    let got = env.herm.ok("GET", &url, &Value::Null, 200).await;
    assert_eq!(got["recent_runs"][0]["run_id"], run, "{got}");
    assert_eq!(
        (got["recent_runs"][0]["source"].as_str(), got["recent_runs"][0]["status"].as_str()),
        (Some("manual"), Some("fired"))
    );

    // `thread_id: "new"`: a fresh thread per firing.
    env.herm.ok("PATCH", &url, &json!({"thread_id": "new"}), 200).await;
    let one = env.herm.ok("POST", &format!("{url}/run"), &json!({}), 202).await;
    assert_ne!(one["thread_id"], env.thread.as_str());
    let r = env
        .herm
        .ok("GET", &format!("/v1/deployments/{}/runs/{}", env.dep, one["run_id"].as_str().unwrap()), &Value::Null, 200)
        .await;
    assert_eq!(r["thread_id"], one["thread_id"]);
    let thread = env
        .herm
        .ok(
            "GET",
            &format!("/v1/deployments/{}/threads/{}", env.dep, one["thread_id"].as_str().unwrap()),
            &Value::Null,
            200,
        )
        .await;
    assert_eq!(thread["title"], "nightly");
    // And back to the default thread.
    let back = env.herm.ok("PATCH", &url, &json!({"thread_id": "default"}), 200).await;
    assert!(back["thread_id"].is_null(), "{back}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_trigger_needs_its_token_and_fires_once_per_delivery() {
    let env = setup(vec![Reply::text(&["Order handled."])], Wire::Anthropic, json!({})).await;
    let a = env
        .herm
        .ok(
            "POST",
            &autos(&env),
            &json!({"name": "orders", "trigger": {"type": "webhook"}, "instructions": "Handle the new order."}),
            201,
        )
        .await;
    let token = a["trigger"]["token"].as_str().unwrap().to_owned();
    let url = a["trigger"]["url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("/v1/triggers/{}", a["automation_id"].as_str().unwrap()));
    assert!(a["cron"].is_null() && a["next_run_at"].is_null(), "{a}");
    let payload = json!({"order_id": "ord-8841", "total": 42});
    for auth in [None, Some("Bearer wrong-token"), Some(&format!("Bearer {}", env.herm.admin_key) as &str)] {
        let headers: Vec<(&str, &str)> = auth.map(|a| vec![("authorization", a)]).unwrap_or_default();
        let (s, v) = env.herm.request_raw("POST", &url, &headers, Some(&payload)).await;
        assert_eq!((s, v["code"].as_str()), (401, Some("unauthorized")), "{auth:?}: {v}");
    }
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str()), ("herm-delivery-id", "dlv-1")];
    let (s, first) = env.herm.request_raw("POST", &url, &headers, Some(&payload)).await;
    assert_eq!(s, 202, "{first}");
    let (s, again) = env.herm.request_raw("POST", &url, &headers, Some(&payload)).await;
    assert_eq!((s, &again["run_id"]), (202, &first["run_id"]), "a replayed delivery gets the same run");
    let r = env.herm.wait_run(&env.dep, first["run_id"].as_str().unwrap(), Duration::from_secs(20)).await;
    assert_eq!(r["status"], "completed");
    assert_eq!(env.model.request_count(), 1, "one run, one model call");
    assert!(env.model.attempts()[0].body.to_string().contains("ord-8841"), "the payload reaches the model");
    let fs = firings(&env, a["automation_id"].as_str().unwrap()).await;
    assert_eq!(fs.len(), 1);
    assert_eq!(fs[0]["source"], "webhook");
    // The token is a secret: never echoed again, never logged.
    let got = env
        .herm
        .ok("GET", &format!("{}/{}", autos(&env), a["automation_id"].as_str().unwrap()), &Value::Null, 200)
        .await;
    assert!(got["trigger"]["token"].is_null() && !got.to_string().contains(&token), "{got}");
    assert!(!env.herm.log_text().contains(&token));
    // Not JSON: 400.
    let (s, v) = env.herm.request_raw_body("POST", &url, &[("authorization", bearer.as_str())], "not json").await;
    assert_eq!((s, v["code"].as_str()), (400, Some("validation_error")), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automation_whose_runs_keep_failing_pauses_itself() {
    // The provider refuses every request (a 400 is not retried).
    let env = setup(vec![Reply::text(&["never"]).fail_first(400, 1000)], Wire::Anthropic, json!({})).await;
    let a = env
        .herm
        .ok(
            "POST",
            &autos(&env),
            &json!({"name": "doomed", "schedule": "hourly", "instructions": "Try.", "max_consecutive_failures": 2}),
            201,
        )
        .await;
    let url = format!("{}/{}", autos(&env), a["automation_id"].as_str().unwrap());
    for _ in 0..2 {
        let f = env.herm.ok("POST", &format!("{url}/run"), &json!({}), 202).await;
        let r = env.herm.wait_run(&env.dep, f["run_id"].as_str().unwrap(), Duration::from_secs(20)).await;
        assert_eq!(r["status"], "error", "{r}");
    }
    let mut got = Value::Null;
    for _ in 0..100 {
        got = env.herm.ok("GET", &url, &Value::Null, 200).await;
        if got["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got["enabled"], false, "{got}");
    assert!(got["paused_reason"].as_str().unwrap().contains("2 consecutive failed runs"), "{got}");
    assert_eq!(got["recent_runs"][0]["status"], "failed");
    let log = env.herm.thread_log(&env.thread).await;
    let paused = log.iter().find(|e| e["type"] == "automation_status").unwrap();
    assert_eq!(paused["status"], "paused");
    assert!(paused["reason"].as_str().unwrap().contains("last error: "), "{paused}");
    let (s, v) = env.herm.post(&format!("{url}/run"), &json!({})).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("conflict")), "a paused automation does not run: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_creates_an_automation_in_chat_after_approval() {
    let script = vec![
        Reply::tool(
            "create_automation",
            json!({"name": "evening report", "schedule": "every weekday at 17:30", "instructions": "Send the report.", "timezone": "America/New_York"}),
        ),
        Reply::text(&["Scheduled."]),
    ];
    let env = setup(script, Wire::OpenAi, json!({})).await;
    let tools = env.herm.ok("GET", &format!("/v1/deployments/{}/tools", env.dep), &Value::Null, 200).await;
    let perm =
        |n: &str| tools["data"].as_array().unwrap().iter().find(|t| t["name"] == n).map(|t| t["permission"].clone());
    assert_eq!(perm("create_automation"), Some(json!("always_ask")), "{tools}");
    assert_eq!(perm("list_automations"), Some(json!("always_allow")));
    let run = env.send("Every weekday at 5:30pm New York time, send me the report.").await["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pending = first_pending(&env).await;
    assert_eq!(pending["tool"], "create_automation", "{pending}");
    let list = env.herm.ok("GET", &autos(&env), &Value::Null, 200).await;
    assert!(list["data"].as_array().unwrap().is_empty(), "nothing is created before approval");
    env.herm
        .ok("POST", &format!("/v1/threads/{}/events", env.thread), &json!({"events": [{"type": "user.tool_confirmation", "request_id": pending["request_id"], "result": "allow"}]}), 200)
        .await;
    assert_eq!(env.herm.wait_run(&env.dep, &run, Duration::from_secs(20)).await["status"], "completed");
    let list = env.herm.ok("GET", &autos(&env), &Value::Null, 200).await;
    let a = &list["data"][0];
    assert_eq!((a["cron"].as_str(), a["timezone"].as_str()), (Some("30 17 * * 1-5"), Some("America/New_York")), "{a}");
    assert_eq!(a["thread_id"], env.thread.as_str(), "it fires into the conversation it was made in");
    let result = results(&env, &env.thread).await;
    assert!(result[0]["result"].as_str().unwrap().contains("30 17 * * 1-5"), "{result:?}");
}

/// The first request waiting for a person on the deployment's default thread (`null` if
/// none appears within five seconds).
async fn first_pending(env: &Env) -> Value {
    for _ in 0..200 {
        let (_, t) = env.herm.get(&format!("/v1/deployments/{}/threads/{}", env.dep, env.thread)).await;
        if let Some(p) = t["pending"].as_array().and_then(|p| p.first()) {
            return p.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Value::Null
}
