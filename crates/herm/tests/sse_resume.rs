//! SSE resumption: disconnect at random points and reconnect with `Last-Event-ID`; the union
//! of the frames received equals the log exactly (no gaps, no duplicates), for the thread
//! stream and the deployment stream, while two runs write concurrently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::collections::BTreeSet;

struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Reads with random disconnects until `done` returns true; returns the committed frames in
/// arrival order.
async fn read_resuming(url: &str, key: &str, rng: &mut Rng, mut done: impl FnMut(&Frame) -> bool) -> Vec<Frame> {
    let mut got: Vec<Frame> = Vec::new();
    let mut finished = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !finished {
        assert!(tokio::time::Instant::now() < deadline, "stream did not finish");
        let last = got.last().and_then(|f| f.id.clone());
        let mut r = SseReader::connect(url, key, last.as_deref()).await;
        let take = 1 + rng.next(6);
        let mut n = 0;
        while n < take {
            let Some(f) = r.next(Duration::from_secs(5)).await else { break };
            if f.is_committed() {
                n += 1;
                finished |= done(&f);
                got.push(f);
                if finished {
                    break;
                }
            }
        }
        // Dropping the reader disconnects at whatever point the server was.
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_is_exact_on_thread_and_deployment_streams() {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("seed {seed}");
    let mut script: Vec<Reply> = (0..6)
        .map(|i| {
            Reply::tool("lookup", json!({"q": format!("q{i}")}))
                .with_text(&["a", "b", "c"])
                .delayed(Duration::from_millis(15))
        })
        .collect();
    script.push(Reply::text(&["done"]));
    let env = setup(script, Wire::Anthropic, json!({})).await;
    let r1 = env.send("first").await;
    let r2 = env
        .herm
        .ok(
            "POST",
            &format!("/v1/deployments/{}/messages", env.dep),
            &json!({"content": "second", "thread_id": "new"}),
            202,
        )
        .await;
    let (run1, run2) = (r1["run_id"].as_str().unwrap().to_owned(), r2["run_id"].as_str().unwrap().to_owned());
    let thread2 = r2["thread_id"].as_str().unwrap().to_owned();

    let key = env.herm.admin_key.clone();
    let turl = format!("{}/v1/threads/{}/events/stream", env.herm.url, env.thread);
    let durl = format!("{}/v1/deployments/{}/events", env.herm.url, env.dep);
    let (mut rng1, mut rng2) = (Rng(seed), Rng(seed.rotate_left(17) | 1));
    let is_done =
        |run: &str, f: &Frame| f.event == "run_status" && f.data["run_id"] == run && f.data["status"] == "completed";
    let mut finished = BTreeSet::new();
    let (tframes, dframes) = tokio::join!(
        read_resuming(&turl, &key, &mut rng1, |f| is_done(&run1, f)),
        read_resuming(&durl, &key, &mut rng2, |f| {
            if is_done(&run1, f) || is_done(&run2, f) {
                finished.insert(f.data["run_id"].as_str().unwrap().to_owned());
            }
            finished.len() == 2
        }),
    );

    // Thread stream: exactly the thread's log.
    let log1 = env.herm.thread_log(&env.thread).await;
    let got: Vec<&Value> = tframes.iter().map(|f| &f.data["id"]).collect();
    let want: Vec<&Value> = log1.iter().map(|e| &e["id"]).collect();
    assert_eq!(got, want, "thread stream differs from the log (seed {seed})");
    for f in &tframes {
        assert_eq!(f.id.as_deref().unwrap(), f.data["sequence"].to_string());
    }

    // Deployment stream: both threads' logs, merged in commit order, cursor gap-free.
    let log2 = env.herm.thread_log(&thread2).await;
    let mut all: Vec<&Value> = log1.iter().chain(log2.iter()).collect();
    all.sort_by_key(|e| e["deployment_sequence"].as_i64().unwrap());
    let dseq: Vec<i64> = all.iter().map(|e| e["deployment_sequence"].as_i64().unwrap()).collect();
    assert_eq!(dseq, (1..=all.len() as i64).collect::<Vec<_>>(), "deployment sequence has gaps");
    let got: Vec<&Value> = dframes.iter().map(|f| &f.data["id"]).collect();
    let want: Vec<&Value> = all.iter().map(|e| &e["id"]).collect();
    assert_eq!(got, want, "deployment stream differs from the log (seed {seed})");
    for f in &dframes {
        assert_eq!(f.id.as_deref().unwrap(), f.data["deployment_sequence"].to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_query_and_filters() {
    let env = setup(vec![Reply::text(&["hi"])], Wire::OpenAi, json!({})).await;
    let run = env.send("hello").await["run_id"].as_str().unwrap().to_owned();
    env.herm.wait_run(&env.dep, &run, Duration::from_secs(10)).await;
    // `?after=` behaves like Last-Event-ID.
    let mut r = SseReader::connect(
        &format!("{}/v1/threads/{}/events/stream?after=2", env.herm.url, env.thread),
        &env.herm.admin_key,
        None,
    )
    .await;
    let f = r.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(f.data["sequence"], 3);
    // A run filter on the deployment stream; another thread's run is not shown.
    let other = env
        .herm
        .ok("POST", &format!("/v1/deployments/{}/messages", env.dep), &json!({"content": "x", "thread_id": "new"}), 202)
        .await;
    let url =
        format!("{}/v1/deployments/{}/events?run_id={}", env.herm.url, env.dep, other["run_id"].as_str().unwrap());
    let mut r = SseReader::connect(&url, &env.herm.admin_key, None).await;
    let frames = r.until(Duration::from_secs(5), |f| f.event == "run_status" && f.data["status"] == "completed").await;
    assert!(!frames.is_empty());
    assert!(frames.iter().all(|f| f.data["run_id"] == other["run_id"]));
    // A bad cursor is a 400.
    let (s, v) = env.herm.get(&format!("/v1/threads/{}/events/stream?after=abc", env.thread)).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("validation_error")));
}
