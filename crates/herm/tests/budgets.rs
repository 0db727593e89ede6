//! Budgets act: a run stops at its cost limit, and a deployment stops starting model calls
//! once its runs of the day have spent its daily budget, each ending `run_status: error` with
//! `insufficient_credits` and no further call to the provider.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

// At the fake provider's prices (3 / 15 USD per million tokens) a tool-call step costs
// 0.000315 USD and a final answer 0.00021 USD.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stops_at_its_cost_limit() {
    let script = vec![
        Reply::tool("lookup", json!({"q": "a"})),
        Reply::tool("lookup", json!({"q": "b"})),
        Reply::tool("lookup", json!({"q": "c"})),
        Reply::text(&["done"]),
    ];
    let env = setup(script, Wire::Anthropic, json!({"limits": {"max_run_cost_usd": 0.0005}})).await;
    let r = env.send("look everything up").await;
    let run = env.herm.wait_run(&env.dep, r["run_id"].as_str().unwrap(), Duration::from_secs(20)).await;
    assert_eq!(run["status"], "error", "{run}");
    assert_eq!(run["error"]["code"], "insufficient_credits", "{run}");
    assert_eq!(env.model.request_count(), 2, "no model call starts once the limit is reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_stops_at_its_daily_budget() {
    let script = vec![Reply::tool("lookup", json!({"q": "a"})), Reply::text(&["first"]), Reply::text(&["second"])];
    let env = setup(script, Wire::OpenAi, json!({"limits": {"max_daily_cost_usd": 0.0005}})).await;
    let r = env.send("one").await;
    let run = env.herm.wait_run(&env.dep, r["run_id"].as_str().unwrap(), Duration::from_secs(20)).await;
    assert_eq!(run["status"], "completed", "the budget was not reached before the run's last call: {run}");
    let r = env.send("two").await;
    let run = env.herm.wait_run(&env.dep, r["run_id"].as_str().unwrap(), Duration::from_secs(20)).await;
    assert_eq!(
        (run["status"].as_str(), run["error"]["code"].as_str()),
        (Some("error"), Some("insufficient_credits")),
        "{run}"
    );
    assert_eq!(env.model.request_count(), 2);
    // Raising the budget lets the deployment work again.
    env.herm
        .ok("PATCH", &format!("/v1/deployments/{}", env.dep), &json!({"limits": {"max_daily_cost_usd": 1.0}}), 200)
        .await;
    let r = env.send("three").await;
    let run = env.herm.wait_run(&env.dep, r["run_id"].as_str().unwrap(), Duration::from_secs(20)).await;
    assert_eq!(run["status"], "completed", "{run}");
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
