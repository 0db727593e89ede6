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
