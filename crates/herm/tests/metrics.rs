//! `/metrics`: the page parses as Prometheus text, its counters move as runs complete and
//! fail, its gauges count open streams, no label carries an id, and only admins read it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::collections::HashMap;

/// One sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Parses the Prometheus text format (0.0.4) strictly enough to catch a malformed page:
/// comment lines are `# HELP name text` or `# TYPE name kind`, samples are
/// `name{label="value",…} number`, and every sample's family has a TYPE line.
fn parse(page: &str) -> Vec<Sample> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
    };
    let mut types: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for line in page.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (what, name, tail) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap_or(""));
            assert!(name_ok(name), "bad name in {line}");
            match what {
                "TYPE" => {
                    assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&tail), "{line}");
                    types.insert(name.to_owned(), tail.to_owned());
                }
                "HELP" => {}
                _ => panic!("unknown comment {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), Vec::new()),
            Some((n, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels in {line}"));
                let mut labels = Vec::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let (k, v) = rest.split_once("=\"").unwrap_or_else(|| panic!("bad label in {line}"));
                    assert!(name_ok(k), "bad label name in {line}");
                    let end = v.find('"').unwrap_or_else(|| panic!("unclosed value in {line}"));
                    labels.push((k.to_owned(), v[..end].to_owned()));
                    rest = v[end + 1..].trim_start_matches(',');
                }
                (n.to_owned(), labels)
            }
        };
        assert!(name_ok(&name), "bad sample name in {line}");
        let family =
            ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).filter(|f| types.contains_key(*f));
        let family = family.unwrap_or(&name);
        assert!(types.contains_key(family), "no TYPE line for {name}");
        out.push((name, labels, value));
    }
    out
}

fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| n == name && want.iter().all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v)))
        .map(|(_, _, v)| v)
        .sum()
}

async fn scrape(h: &Herm) -> Vec<Sample> {
    let (status, ct, page) = h.get_text("/metrics").await;
    assert_eq!(status, 200, "{page}");
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    parse(&page)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_as_runs_complete_and_fail() {
    let script = vec![
        Reply::tool("lookup", json!({"q": "a"})),
        Reply::text(&["done"]),
        Reply::tool("lookup", json!({"q": "b"})),
    ];
    let env = setup(script, Wire::Anthropic, json!({})).await;
    let before = scrape(&env.herm).await;
    assert_eq!(value(&before, "herm_runs_total", &[("status", "completed")]), 0.0);

    let mut stream = env.thread_stream(None).await;
    let _ = stream.next(Duration::from_millis(200)).await;
    let open = scrape(&env.herm).await;
    assert_eq!(value(&open, "herm_sse_clients", &[]), 1.0, "one stream is open");

    run_to_end(&env, "look it up").await;
    // A run that fails: one step allowed, and the model asks for a tool.
    env.herm.ok("PATCH", &format!("/v1/deployments/{}", env.dep), &json!({"limits": {"max_run_steps": 1}}), 200).await;
    let r = env.send("again").await;
    let run = env.herm.wait_run(&env.dep, r["run_id"].as_str().unwrap(), Duration::from_secs(20)).await;
    assert_eq!(run["status"], "error", "{run}");

    // Events are counted off the commit path, in commit order: once the failed run's end is
    // counted, everything before it is.
    let mut after = scrape(&env.herm).await;
    for _ in 0..100 {
        if value(&after, "herm_runs_total", &[("status", "error")]) == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = scrape(&env.herm).await;
    }
    assert_eq!(value(&after, "herm_runs_total", &[("kind", "user"), ("status", "completed")]), 1.0);
    assert_eq!(value(&after, "herm_runs_total", &[("kind", "user"), ("status", "error")]), 1.0);
    assert_eq!(value(&after, "herm_model_calls_total", &[("model", "fake/m1")]), 3.0);
    assert_eq!(value(&after, "herm_model_call_duration_seconds_count", &[("model", "fake/m1")]), 3.0);
    assert_eq!(value(&after, "herm_model_tokens_total", &[("direction", "input")]), 30.0 + 20.0 + 30.0);
    assert_eq!(value(&after, "herm_tool_calls_total", &[("tool", "lookup"), ("outcome", "ok")]), 2.0);
    assert!(value(&after, "herm_model_cost_microusd_total", &[]) > 0.0);
    let sends = &[("route", "/v1/deployments/{deployment_id}/messages"), ("method", "POST"), ("status", "202")];
    assert_eq!(value(&after, "herm_http_requests_total", sends), 2.0);
    assert_eq!(value(&after, "herm_runs_active", &[]), 0.0);
    assert_eq!(value(&after, "herm_runs_waiting", &[]), 0.0);

    // No label carries an id (thread, run, deployment, event…): route labels are patterns.
    let is_id = |t: &str| {
        t.split_once('_').is_some_and(|(p, rest)| {
            ["thr", "run", "dep", "evt", "key", "sec"].contains(&p)
                && rest.len() >= 16
                && rest.chars().all(|c| c.is_ascii_alphanumeric())
        })
    };
    for (name, labels, _) in &after {
        for (k, v) in labels {
            assert!(!v.split(['/', ' ']).any(is_id), "{name} has an id in its label {k}={v}");
        }
    }
    assert!(after.iter().any(|(_, l, _)| l.iter().any(|(_, v)| v == "/v1/deployments/{deployment_id}/runs/{run_id}")));
    drop(stream);

    // Only an admin reads the page.
    let ro = env.herm.ok("POST", "/v1/api-keys", &json!({"name": "viewer", "scopes": ["deployments:read"]}), 201).await;
    let (s, _) = env.herm.request("GET", "/metrics", Some(ro["key"].as_str().unwrap()), None).await;
    assert_eq!(s, 403);
    let (s, _) = env.herm.request("GET", "/metrics", None, None).await;
    assert_eq!(s, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_runs_are_counted() {
    let script = vec![Reply::tool("record", json!({"n": 1, "delay_ms": 0}))];
    let env = setup(script, Wire::Anthropic, json!({"tool_policies": {"record": "always_ask"}})).await;
    let r = env.send("record it").await;
    wait_status(&env, r["run_id"].as_str().unwrap(), "waiting_on_human").await;
    let page = scrape(&env.herm).await;
    assert_eq!(value(&page, "herm_runs_waiting", &[]), 1.0);
}
