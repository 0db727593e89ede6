//! Budgets act: a run, a deployment's day and a customer's day stop before a model call
//! that would pass their limit, each ending `run_status: error` with `insufficient_credits`,
//! a `budget` event, and no further call to the provider; a provider that reports no usage
//! is estimated; output tokens are bounded per model and per deployment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

// At the fake provider's prices (3 / 15 USD per million tokens) a tool-call step costs
// 0.000315 USD and a final answer 0.00021 USD. A call does not start when what was spent plus
// the thread's previous call (the next one is at least as long) reaches a limit.

/// The run's `budget` event and the `run_status` it ended with.
async fn budget_stop(env: &Env, run: &str) -> (Value, Value) {
    let log = env.herm.thread_log(&env.thread).await;
    let mine: Vec<&Value> = log.iter().filter(|e| e["run_id"] == run).collect();
    let budget = mine.iter().find(|e| e["type"] == "budget").map(|e| (*e).clone()).unwrap_or(Value::Null);
    let last = mine.last().map(|e| (*e).clone()).unwrap_or(Value::Null);
    (budget, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stops_before_a_call_that_would_pass_its_cost_limit() {
    let script = vec![
        Reply::tool("lookup", json!({"q": "a"})),
        Reply::tool("lookup", json!({"q": "b"})),
        Reply::tool("lookup", json!({"q": "c"})),
        Reply::text(&["done"]),
    ];
    let env = setup(script, Wire::Anthropic, json!({"limits": {"max_run_cost_usd": 0.0007}})).await;
    let r = env.send("look everything up").await;
    let run_id = r["run_id"].as_str().unwrap();
    let run = env.herm.wait_run(&env.dep, run_id, Duration::from_secs(20)).await;
    assert_eq!(run["status"], "error", "{run}");
    assert_eq!(run["error"]["code"], "insufficient_credits", "{run}");
    assert_eq!(env.model.request_count(), 2, "the third call would have passed the limit");
    assert!(run["usage"]["cost_usd"].as_f64().unwrap() <= 0.0007, "the limit was never passed: {run}");
    let (budget, last) = budget_stop(&env, run_id).await;
    assert_eq!(budget["scope"], "run", "{budget}");
    assert_eq!(budget["limit_usd"], 0.0007);
    assert!((budget["next_call_usd"].as_f64().unwrap() - 0.000315).abs() < 1e-9, "{budget}");
    assert_eq!((last["type"].as_str(), last["status"].as_str()), (Some("run_status"), Some("error")));
    assert_eq!(budget["sequence"].as_i64().unwrap() + 1, last["sequence"].as_i64().unwrap(), "one commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_stops_at_its_daily_budget_across_restarts() {
    let script = vec![Reply::tool("lookup", json!({"q": "a"})), Reply::text(&["first"]), Reply::text(&["again"])];
    let mut env = setup(script, Wire::OpenAi, json!({"limits": {"max_daily_cost_usd": 0.0007}})).await;
    let r = env.send("one").await;
    let run = env.herm.wait_run(&env.dep, r["run_id"].as_str().unwrap(), Duration::from_secs(20)).await;
    assert_eq!(run["status"], "completed", "the budget allowed the run's calls: {run}");
    let r = env.send("two").await;
    let run = env.herm.wait_run(&env.dep, r["run_id"].as_str().unwrap(), Duration::from_secs(20)).await;
    assert_eq!(
        (run["status"].as_str(), run["error"]["code"].as_str()),
        (Some("error"), Some("insufficient_credits")),
        "{run}"
    );
    let (budget, _) = budget_stop(&env, r["run_id"].as_str().unwrap()).await;
    assert_eq!(budget["scope"], "deployment", "{budget}");
    // What was spent today is read from the log: a restart forgets nothing.
    env.herm.kill9().await;
    env.herm.restart().await;
    let r = env.send("three").await;
    let run = env.herm.wait_run(&env.dep, r["run_id"].as_str().unwrap(), Duration::from_secs(20)).await;
    assert_eq!(run["error"]["code"], "insufficient_credits", "{run}");
    assert_eq!(env.model.request_count(), 2);
    // Raising the budget lets the deployment work again.
    env.herm
        .ok("PATCH", &format!("/v1/deployments/{}", env.dep), &json!({"limits": {"max_daily_cost_usd": 1.0}}), 200)
        .await;
    let r = env.send("four").await;
    let run = env.herm.wait_run(&env.dep, r["run_id"].as_str().unwrap(), Duration::from_secs(20)).await;
    assert_eq!(run["status"], "completed", "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_budget_spans_its_deployments() {
    let script = vec![Reply::text(&["a"]), Reply::text(&["b"]), Reply::text(&["c"])];
    let env = setup(script, Wire::Anthropic, json!({})).await;
    let limits = "/v1/customers/cust-1/limits";
    assert_eq!(env.herm.ok("GET", limits, &Value::Null, 200).await, json!({}));
    env.herm.ok("PUT", limits, &json!({"max_daily_cost_usd": 0.0005}), 200).await;
    run_to_end(&env, "first").await;
    // The same customer's other deployment spends from the same budget.
    let dep = env.herm.ok("GET", &format!("/v1/deployments/{}", env.dep), &Value::Null, 200).await;
    let keep = ["customer_id", "name", "system_prompt", "model", "secrets", "http_tools"];
    let spec: serde_json::Map<String, Value> = dep
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| keep.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let spec = Value::Object(spec);
    let other = env.herm.deploy(&spec).await;
    let other_id = other["deployment_id"].as_str().unwrap();
    let r = env.herm.ok("POST", &format!("/v1/deployments/{other_id}/messages"), &json!({"content": "x"}), 202).await;
    let run = env.herm.wait_run(other_id, r["run_id"].as_str().unwrap(), Duration::from_secs(20)).await;
    assert_eq!(run["status"], "completed", "{run}");
    // 0.00042 spent; the first deployment's next call (about 0.00021) would pass 0.0005.
    let r = env.send("second").await;
    let run = env.herm.wait_run(&env.dep, r["run_id"].as_str().unwrap(), Duration::from_secs(20)).await;
    assert_eq!(run["error"]["code"], "insufficient_credits", "{run}");
    let (budget, _) = budget_stop(&env, r["run_id"].as_str().unwrap()).await;
    assert_eq!(budget["scope"], "customer", "{budget}");
    assert_eq!(env.model.request_count(), 2);
    for bad in [json!({"max_daily_cost_usd": -1}), json!({"max_daily_cost_usd": "lots"}), json!({"daily": 1})] {
        let (s, v) = env.herm.put(limits, &bad).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    // Lifting the budget (no limit set) lets the customer work again.
    env.herm.ok("PUT", limits, &json!({}), 200).await;
    run_to_end(&env, "third").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_reports_no_usage_is_estimated() {
    let script = vec![Reply::text(&["an answer of some length, ", "streamed in two parts"]).without_usage()];
    let env = setup(script, Wire::OpenAi, json!({})).await;
    run_to_end(&env, "hello there").await;
    let log = env.herm.thread_log(&env.thread).await;
    let call = log.iter().find(|e| e["type"] == "model_call").unwrap();
    assert_eq!(call["estimated"], true, "{call}");
    let (input, output) = (call["input_tokens"].as_u64().unwrap(), call["output_tokens"].as_u64().unwrap());
    assert!(input >= 10 && output >= 10, "{call}");
    assert!(call["cost_usd"].as_f64().unwrap() > 0.0, "{call}");
    let usage = env.herm.ok("GET", &format!("/v1/deployments/{}/usage", env.dep), &Value::Null, 200).await;
    assert_eq!(usage["total"]["estimated"], true, "{usage}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_tokens_are_bounded_per_model_and_per_deployment() {
    let script = vec![Reply::text(&["one"]), Reply::text(&["two"])];
    let env = setup(script, Wire::Anthropic, json!({})).await;
    let models = json!({"models": {"m1": {"input_per_mtok": 3.0, "output_per_mtok": 15.0, "max_output_tokens": 321}}});
    env.put_provider(Wire::Anthropic, models).await;
    run_to_end(&env, "first").await;
    env.herm
        .ok("PATCH", &format!("/v1/deployments/{}", env.dep), &json!({"limits": {"max_output_tokens": 123}}), 200)
        .await;
    run_to_end(&env, "second").await;
    let sent: Vec<u64> = env.model.attempts().iter().map(|a| a.body["max_tokens"].as_u64().unwrap()).collect();
    assert_eq!(sent, [321, 123]);
    let (s, v) =
        env.herm.patch(&format!("/v1/deployments/{}", env.dep), &json!({"limits": {"max_output_tokens": 0}})).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("validation_error")), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_must_be_positive() {
    let (h, _dir) = start_herm().await;
    for bad in [json!({"max_run_cost_usd": 0}), json!({"max_daily_cost_usd": -1})] {
        let (s, v) = h
            .post("/v1/deployments", &json!({"customer_id": "c", "name": "n", "system_prompt": "s", "limits": bad}))
            .await;
        assert_eq!((s, v["code"].as_str()), (400, Some("validation_error")), "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_reported_per_day_and_per_model() {
    let env =
        setup(vec![Reply::tool("lookup", json!({"q": "a"})), Reply::text(&["done"])], Wire::Anthropic, json!({})).await;
    run_to_end(&env, "look it up").await;
    let base = format!("/v1/deployments/{}/usage", env.dep);
    let today = env.herm.ok("GET", &base, &Value::Null, 200).await;
    let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(today["data"].as_array().unwrap().len(), 1, "{today}");
    assert_eq!(today["data"][0]["key"], day.as_str());
    let total = &today["total"];
    assert_eq!((total["input_tokens"].as_u64(), total["output_tokens"].as_u64()), (Some(50), Some(25)), "{today}");
    assert!((total["cost_usd"].as_f64().unwrap() - 0.000525).abs() < 1e-9, "{today}");
    assert_eq!(total["estimated"], false);
    let by_model = env.herm.ok("GET", &format!("{base}?group_by=model"), &Value::Null, 200).await;
    assert_eq!(by_model["data"][0]["key"], "fake/m1", "{by_model}");
    // A window before anything happened is empty.
    let past = env
        .herm
        .ok("GET", &format!("{base}?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z"), &Value::Null, 200)
        .await;
    assert_eq!((past["data"].as_array().unwrap().len(), past["total"]["cost_usd"].as_f64()), (0, Some(0.0)));
    for bad in ["?from=yesterday", "?from=2020-01-02T00:00:00Z&to=2020-01-01T00:00:00Z", "?group_by=week"] {
        let (status, body) = env.herm.get(&format!("{base}{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automation_run_spends_from_the_same_budget() {
    let env = setup(vec![Reply::text(&["first"]), Reply::text(&["second"])], Wire::Anthropic, json!({})).await;
    env.herm.ok("PUT", "/v1/customers/cust-1/limits", &json!({"max_daily_cost_usd": 0.0003}), 200).await;
    run_to_end(&env, "spend").await;
    let autos = format!("/v1/deployments/{}/automations", env.dep);
    let body = json!({"name": "nightly", "schedule": "daily at 3am", "instructions": "Report."});
    let a = env.herm.ok("POST", &autos, &body, 201).await;
    let fired =
        env.herm.ok("POST", &format!("{autos}/{}/run", a["automation_id"].as_str().unwrap()), &json!({}), 202).await;
    let run = env.herm.wait_run(&env.dep, fired["run_id"].as_str().unwrap(), Duration::from_secs(20)).await;
    assert_eq!(
        (run["kind"].as_str(), run["status"].as_str(), run["error"]["code"].as_str()),
        (Some("automation"), Some("error"), Some("insufficient_credits")),
        "{run}"
    );
    assert_eq!(env.model.request_count(), 1, "the automation's call never started");
}
