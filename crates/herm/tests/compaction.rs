//! Long threads never overflow the model's window: a thread that crosses the threshold is
//! compacted (the next request is within budget and carries the summary), a provider's
//! "prompt is too long" triggers compaction and one successful retry, and a `kill -9` while
//! the summary is being written resumes into a completed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

/// The opening of herm's summarising system prompt.
const COMPACTOR: &str = "You compact conversations";
const HEADING: &str = "[Summary of the earlier conversation";

fn config() -> String {
    CONFIG.replace("[engine]", "[engine]\nmax_tokens = 256")
}

/// A deployment on model `m1` with the given context window (tokens).
async fn env_with_window(window: u64, summaries: Vec<Reply>) -> Env {
    let model = FakeModel::start_with_sides(vec![], vec![(COMPACTOR.into(), summaries)]).await;
    let env = setup_model(model, Wire::Anthropic, json!({}), &config()).await;
    env.put_provider(
        Wire::Anthropic,
        json!({"models": {"m1": {"input_per_mtok": 3.0, "output_per_mtok": 15.0, "context_window": window}}}),
    )
    .await;
    env
}

/// Summaries that repeat a secret the conversation saw (it must never be kept).
fn summaries(n: usize) -> Vec<Reply> {
    (0..n)
        .map(|i| Reply::text(&[&format!("Summary {i}: the user is planning a launch; colour blue; token {TOKEN}.")]))
        .collect()
}

fn turn(i: usize) -> String {
    format!("Message {i}: {}", "details about the launch plan ".repeat(40))
}

fn compactions(log: &[Value]) -> Vec<&Value> {
    log.iter().filter(|e| e["type"] == "compaction").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_thread_is_compacted_and_stays_within_the_window() {
    // 4,000 tokens of window, 256 for the answer: compaction at 80% of the rest (~3,000 tokens).
    let env = env_with_window(4000, summaries(20)).await;
    for i in 0..14 {
        run_to_end(&env, &turn(i)).await;
    }
    let log = env.herm.thread_log(&env.thread).await;
    let c = compactions(&log);
    assert!(!c.is_empty(), "no compaction in a thread of 14 long turns");
    for e in &c {
        let (before, after) = (e["tokens_before"].as_u64().unwrap(), e["tokens_after"].as_u64().unwrap());
        assert!(after < before, "{e}");
        assert!(e["replaced_through_sequence"].as_i64().unwrap() > 0);
        assert!(e["summary"].as_str().unwrap().starts_with("Summary"), "{e}");
        assert!(!e["summary"].as_str().unwrap().contains(TOKEN), "a secret in a summary: {e}");
        assert!(e["cost_usd"].as_f64().unwrap() > 0.0, "the summary's cost counts: {e}");
    }
    // Every request to the agent's model after the first compaction is within budget and
    // opens with the summary; the last turn is there verbatim.
    let main: Vec<String> =
        env.model.attempts().iter().filter(|a| a.side.is_none()).map(|a| a.body.to_string()).collect();
    let last = main.last().unwrap();
    assert!(last.contains(HEADING), "the last request carries no summary");
    assert!(last.contains("Message 13:"), "the latest turn must stay verbatim");
    assert!(!last.contains("Message 0:"), "the oldest turn should have been replaced");
    for body in main.iter().skip_while(|b| !b.contains(HEADING)) {
        assert!(body.len() / 4 < 3800, "a request of ~{} tokens passed the window", body.len() / 4);
    }
    // Summarising requests fit the window too.
    for a in env.model.attempts().iter().filter(|a| a.side.is_some()) {
        assert!(a.body.to_string().len() / 4 < 3800);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_too_long_answer_compacts_and_retries_once() {
    // herm thinks the window is large; the provider refuses anything longer than what it
    // has taken so far (plus a little): the next turn is too long for it.
    let env = env_with_window(200_000, summaries(5)).await;
    for i in 0..3 {
        run_to_end(&env, &turn(i)).await;
    }
    let longest = env.model.attempts().iter().map(|a| a.body.to_string().len()).max().unwrap();
    env.model.refuse_longer_than(longest + 600);
    let run = run_to_end(&env, &turn(3)).await;
    let refused = env.model.attempts().iter().filter(|a| a.status == TOO_LONG).count();
    assert_eq!(refused, 1, "one refusal, then a compacted retry");
    let log = env.herm.thread_log(&env.thread).await;
    let c = compactions(&log);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0]["run_id"], run.as_str());
    let last = env.model.attempts().into_iter().filter(|a| a.side.is_none()).last().unwrap();
    assert_eq!(last.status, 200);
    assert!(last.body.to_string().contains(HEADING));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_while_compacting_resumes_into_a_completed_run() {
    let mut stalled = summaries(10);
    stalled[0] = stalled[0].clone().stall_first();
    let mut env = env_with_window(4000, stalled).await;
    // Turns until the summarising call is made (and hangs).
    let mut sent = Value::Null;
    for i in 0..20 {
        sent = env.send(&turn(i)).await;
        let run = sent["run_id"].as_str().unwrap().to_owned();
        let mut done = false;
        for _ in 0..400 {
            if env.model.attempts().iter().any(|a| a.side == Some(0)) {
                break;
            }
            let r = env.herm.ok("GET", &format!("/v1/deployments/{}/runs/{run}", env.dep), &Value::Null, 200).await;
            if r["status"] == "completed" {
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        if !done {
            break;
        }
    }
    assert!(env.model.attempts().iter().any(|a| a.side == Some(0)), "compaction never started");
    env.herm.kill9().await;
    env.herm.restart().await;
    let r = env.herm.wait_run(&env.dep, sent["run_id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(r["status"], "completed", "{r}");
    let log = env.herm.thread_log(&env.thread).await;
    assert!(!compactions(&log).is_empty());
    let last = env.model.attempts().into_iter().filter(|a| a.side.is_none()).last().unwrap();
    assert!(last.body.to_string().contains(HEADING));
}
