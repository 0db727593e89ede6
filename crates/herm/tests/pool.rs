//! The Docker backend's pool of ready containers, against the real engine: a new deployment
//! takes a pre-started container (its limits and network set to the deployment's), the pool
//! refills, leftovers of a killed herm are removed at the next start while claimed
//! workspaces survive, a second herm on the same engine never touches the first one's
//! containers, a graceful stop removes the pool, and deleting a deployment removes the
//! claimed workspace.
// Black-box tests run the real binary and look at the host as an operator would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;
use common::*;
use std::process::Command;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker CLI");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn owner(env: &Env) -> String {
    std::fs::read_to_string(env.dir.path().join("data/docker/owner")).unwrap().trim().to_owned()
}

/// Running pool containers of one herm: `(id, name)`.
fn pool_of(owner: &str) -> Vec<(String, String)> {
    let out = docker(&[
        "ps",
        "--filter",
        "label=herm.pool",
        "--filter",
        &format!("label=herm.owner={owner}"),
        "--format",
        "{{.ID}} {{.Names}}",
    ]);
    out.lines()
        .filter(|l| l.contains("herm-pool-"))
        .map(|l| {
            let (id, name) = l.split_once(' ').unwrap();
            (id.to_owned(), name.to_owned())
        })
        .collect()
}

/// Waits until the herm of `owner` has `n` running pool containers.
async fn pool_filled(owner: &str, n: usize) -> Vec<(String, String)> {
    for _ in 0..600 {
        let p = pool_of(owner);
        if p.len() == n {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the pool of {owner} never held {n}: {:?}", pool_of(owner));
}

fn inspect(name: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, name])
}

async fn delete(env: &Env, dep: &str) -> u16 {
    env.herm.request("DELETE", &format!("/v1/deployments/{dep}"), Some(&env.herm.admin_key.clone()), None).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_take_ready_containers_and_the_pool_is_kept_tidy() {
    let script = vec![
        shell(
            "echo kept > note.txt; cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; ls /sys/class/net",
        ),
        Reply::text(&["ok"]),
        Reply::tool("read_file", json!({"path": "note.txt"})),
        Reply::text(&["still there"]),
    ];
    // Start herm with nothing deployed yet, and let its pool fill.
    let model = FakeModel::start(script).await;
    let (herm, dir) = start_herm_with(&sandbox_config()).await;
    let mut env =
        Env { herm, model, connector: Connector::start().await, dep: String::new(), thread: String::new(), dir };
    let me = owner(&env);
    let before = pool_filled(&me, 1).await;
    assert_eq!(inspect(&before[0].1, "{{.HostConfig.Memory}}"), (256 * 1024 * 1024).to_string());

    // A deployment asking for other limits and no network takes that very container.
    let pk = env.herm.ok("POST", "/v1/secrets", &json!({"name": "K", "value": PROVIDER_KEY}), 201).await;
    env.herm
        .ok(
            "PUT",
            "/v1/providers/fake",
            &json!({"kind": "anthropic", "base_url": env.model.anthropic_url(), "api_key_secret": pk["secret_id"], "models": {"m1": {}}}),
            200,
        )
        .await;
    let d = env
        .herm
        .deploy(&json!({"customer_id": "c", "name": "pooled", "system_prompt": "p", "model": "fake/m1",
                        "sandbox": {"memory_mb": 300, "network": "off"}}))
        .await;
    env.dep = d["deployment_id"].as_str().unwrap().to_owned();
    env.thread = d["thread_id"].as_str().unwrap().to_owned();
    let name = format!("herm-{}", env.dep);
    assert!(inspect(&name, "{{.Id}}").starts_with(&before[0].0), "the deployment took the ready container");
    assert_eq!(inspect(&name, "{{.HostConfig.Memory}}"), (300 * 1024 * 1024).to_string());
    run_to_end(&env, "write").await;
    let out = results(&env, &env.thread).await[0]["result"].as_str().unwrap().to_owned();
    assert!(out.contains(&(300 * 1024 * 1024).to_string()), "the new memory limit holds inside: {out}");
    assert!(out.ends_with("\nlo\n") && !out.contains("eth"), "network off: only the loopback is left: {out}");

    // Off stays off when the container stops and starts again (it was disconnected, not
    // created without a network).
    docker(&["stop", "-t", "1", &name]);
    docker(&["start", &name]);
    assert_eq!(docker(&["exec", &name, "ls", "/sys/class/net"]), "lo");

    // The pool refills with a new container.
    let refilled = pool_filled(&me, 1).await;
    assert_ne!(refilled[0].0, before[0].0);

    // kill -9: the unclaimed pool container is left behind; the next start removes it and
    // builds another, and the claimed workspace is still the deployment's.
    env.herm.kill9().await;
    assert_eq!(pool_of(&me), refilled, "a killed herm leaves its pool");
    env.herm.restart().await;
    let after = pool_filled(&me, 1).await;
    assert_ne!(after[0].0, refilled[0].0, "the leftover was replaced");
    assert_eq!(docker(&["ps", "-aq", "--filter", &format!("name={}", refilled[0].1)]), "", "the leftover is gone");
    assert_eq!(env.file("note.txt").await, (200, b"kept\n".to_vec()));

    // The container removed behind herm's back is recreated on the claimed volume.
    env.herm.kill9().await;
    docker(&["rm", "-f", &name]);
    env.herm.restart().await;
    run_to_end(&env, "still there?").await;
    assert_eq!(results(&env, &env.thread).await[1]["result"], "kept\n");

    // A second herm on the same engine leaves this one's containers alone.
    let (mut other, other_dir) = start_herm_with(&sandbox_config()).await;
    let other_owner = std::fs::read_to_string(other_dir.path().join("data/docker/owner")).unwrap();
    pool_filled(other_owner.trim(), 1).await;
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true", "the other herm did not take it for an orphan");
    assert_eq!(pool_of(&me).len(), 1, "nor removed this herm's pool");
    assert!(other.terminate(Duration::from_secs(30)).await);

    // Another image than the pool's: a container of its own, on a volume of its own.
    docker(&["tag", "herm-sandbox:default", "herm-sandbox:pool-test"]);
    let own = env
        .herm
        .deploy(&json!({"customer_id": "c", "name": "own", "system_prompt": "p", "model": "fake/m1",
                        "sandbox": {"image": "herm-sandbox:pool-test"}}))
        .await;
    let own_dep = own["deployment_id"].as_str().unwrap().to_owned();
    let own_name = format!("herm-{own_dep}");
    assert_eq!(inspect(&own_name, "{{.Config.Image}}"), "herm-sandbox:pool-test");
    assert!(inspect(&own_name, "{{range .Mounts}}{{.Name}}{{end}}").starts_with(&format!("herm-ws-{own_dep}")));
    assert_eq!(pool_of(&me).len(), 1, "the pool was not used for it");

    // Deleting the pooled deployment removes its claimed workspace.
    let volume = inspect(&name, "{{range .Mounts}}{{.Name}}{{end}}");
    assert!(volume.starts_with("herm-ws-pool-"), "{volume}");
    assert_eq!(delete(&env, &env.dep).await, 200);
    assert_eq!(docker(&["volume", "ls", "-q", "--filter", &format!("name={volume}")]), "");
    assert!(!env.dir.path().join(format!("data/docker/claims/{}", env.dep)).exists());

    // A graceful stop removes the pool and nothing else.
    assert!(env.herm.terminate(Duration::from_secs(30)).await, "herm stopped cleanly");
    assert!(pool_of(&me).is_empty(), "SIGTERM removed the pool: {:?}", pool_of(&me));
    assert_eq!(inspect(&own_name, "{{.State.Running}}"), "true");
    env.herm.restart().await;
    assert_eq!(delete(&env, &own_dep).await, 200);
    docker(&["rmi", "herm-sandbox:pool-test"]);
}
