//! The namespaces backend (bubblewrap + cgroups): the same persistence, isolation, hardening
//! and confinement checks as the Docker backend, attacked from inside deployment A.
// Black-box tests run the real binary and look at the host as an operator would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;
use common::*;

/// One test at a time: fork bombs and memory hogs skew a 2-core machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config() -> String {
    sandbox_config().replace("backend = \"docker\"", "backend = \"namespaces\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_persists_across_restart() {
    let _serial = SERIAL.lock().await;
    let script = vec![
        shell("mkdir -p notes && echo hello > notes/a.txt && python3 -c 'print(6*7)'"),
        Reply::text(&["done"]),
        Reply::tool("read_file", json!({"path": "notes/a.txt"})),
        Reply::text(&["still there"]),
    ];
    let mut env = setup_with(script, Wire::Anthropic, json!({}), &config()).await;
    run_to_end(&env, "note").await;
    assert!(results(&env, &env.thread).await[0]["result"].as_str().unwrap().starts_with("exit code 0\n42"));
    env.herm.kill9().await;
    env.herm.restart().await;
    run_to_end(&env, "again").await;
    assert_eq!(results(&env, &env.thread).await[1]["result"], "hello\n");
    let (s, l) = env.herm.get(&format!("/v1/deployments/{}/files?path=notes", env.dep)).await;
    assert_eq!((s, l["entries"][0]["name"].as_str()), (200, Some("a.txt")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_a_cannot_reach_b_or_the_host() {
    let _serial = SERIAL.lock().await;
    let b = setup_with(vec![Reply::text(&["idle"])], Wire::OpenAi, json!({}), &config()).await;
    b.put_file("b-private.txt", "b-private-canary").await;
    let data_dir = b.dir.path().display().to_string();
    // herm's own API listens on the host's loopback: a sandbox must not reach it.
    let herm_addr = b.herm.url.trim_start_matches("http://").to_owned();
    // `find` skips /proc, /sys and the host's read-only /usr (nothing of B's can be there, and
    // walking it took longer than the shell timeout on a loaded machine).
    let attack = format!(
        "echo PROCS; ps -eo comm= | sort -u; echo FIND; find / \\( -path /proc -o -path /sys -o -path /usr \\) -prune -o -name 'b-private*' -print 2>/dev/null; echo NET; \
         curl -s -m 3 http://{herm_addr}/healthz || echo unreachable; echo DATA; ls {data_dir} 2>&1; \
         echo SHADOW; cat /etc/shadow 2>&1 | head -c 200; echo; echo ENV; env; echo END"
    );
    let a = setup_with(vec![shell(&attack), Reply::text(&["done"])], Wire::OpenAi, json!({}), &config()).await;
    run_to_end(&a, "look around").await;
    let out = results(&a, &a.thread).await[0]["result"].as_str().unwrap().to_owned();
    let section = |name: &str, next: &str| section(&out, name, next);
    let procs = section("PROCS", "FIND");
    assert!(
        !procs.contains("herm") && !procs.contains("dockerd") && !procs.contains("sshd"),
        "A sees only its own processes: {procs}"
    );
    assert!(section("FIND", "NET").trim().is_empty(), "A cannot find B's file: {out}");
    assert!(section("NET", "DATA").contains("unreachable"), "A cannot reach the host's loopback: {out}");
    assert!(section("DATA", "SHADOW").contains("No such file"), "herm's data directory is not there: {out}");
    assert!(section("SHADOW", "ENV").contains("No such file"), "no /etc/shadow: {out}");
    let env_text = section("ENV", "END");
    assert!(!env_text.contains(TOKEN) && !env_text.contains("HERM_"), "{env_text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_holds_from_inside() {
    let _serial = SERIAL.lock().await;
    let script = vec![
        shell(
            "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; touch /usr/x 2>/dev/null && echo USR-WRITABLE || echo usr-read-only; touch /x 2>/dev/null && echo ROOT-WRITABLE || echo root-read-only; touch /tmp/t && echo tmp-ok; unshare -U true 2>/dev/null && echo UNSHARE-OK || echo unshare-blocked; python3 -c 'import threading; t = threading.Thread(target=print, args=(\"threads-ok\",)); t.start(); t.join()'",
        ),
        Reply::tool("shell", json!({"command": "f(){ f|f; }; f", "timeout_secs": 5})),
        Reply::tool("shell", json!({"command": "python3 -c 'a = bytearray(1024**3); print(len(a))'"})),
        // A duration nothing else on the host sleeps for: the check below looks host-wide.
        Reply::tool("shell", json!({"command": "(sleep 3017 & sleep 3017 & wait)", "timeout_secs": 2})),
        Reply::text(&["done"]),
    ];
    let env = setup_with(script, Wire::Anthropic, json!({}), &config()).await;
    run_to_end(&env, "probe").await;
    let r = results(&env, &env.thread).await;
    let first = r[0]["result"].as_str().unwrap();
    assert!(first.contains("CapEff:\t0000000000000000") && first.contains("NoNewPrivs:\t1"), "{first}");
    assert!(first.contains("usr-read-only") && first.contains("root-read-only") && first.contains("tmp-ok"), "{first}");
    // The seccomp filter refuses new namespaces, and ordinary programs (threads) still run.
    assert!(first.contains("unshare-blocked") && first.contains("threads-ok"), "{first}");
    assert_eq!(env.herm.get("/healthz").await.0, 200);
    assert!(
        r[1]["result"].as_str().unwrap().starts_with("killed"),
        "the fork bomb was contained: {}",
        &r[1]["result"].as_str().unwrap()[..80]
    );
    assert_eq!(r[2]["is_error"], true, "{}", r[2]);
    assert!(r[3]["result"].as_str().unwrap().contains("timed out after 2 s"), "{}", r[3]);
    // No process of the timed-out command survives anywhere on the host (the kernel may
    // take a moment to tear the namespace down; a survivor would be there for 50 minutes).
    let mut left = String::new();
    for _ in 0..40 {
        let out = std::process::Command::new("pgrep").args(["-fa", "^sleep 3017$"]).output().unwrap();
        left = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(left.is_empty(), "a child outlived its timeout: {left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_outside_the_workspace_are_refused() {
    let _serial = SERIAL.lock().await;
    let script = vec![
        shell("ln -s /etc/passwd link; head -c 100 /dev/urandom > blob.bin"),
        Reply::tool("read_file", json!({"path": "link"})),
        Reply::tool("read_file", json!({"path": "../etc/passwd"})),
        Reply::tool("read_file", json!({"path": "blob.bin"})),
        Reply::text(&["done"]),
    ];
    let env = setup_with(script, Wire::OpenAi, json!({}), &config()).await;
    run_to_end(&env, "try").await;
    let r = results(&env, &env.thread).await;
    for (i, want) in [(1, "outside"), (2, "outside"), (3, "binary")] {
        let t = r[i]["result"].as_str().unwrap();
        assert!(r[i]["is_error"] == true && (t.to_lowercase().contains(want) || t.contains("escapes")), "{i}: {t}");
    }
    for bad in ["../etc/passwd", "/etc/passwd", "link"] {
        let (s, v) = env.herm.get(&format!("/v1/deployments/{}/files/content?path={bad}", env.dep)).await;
        assert_eq!((s, v["code"].as_str()), (400, Some("validation_error")), "{bad}: {v}");
    }
}

/// A TCP server on every host address answering any request with `body`.
async fn host_server(body: &'static str) -> u16 {
    let l = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(format!("HTTP/1.0 200 OK\r\n\r\n{body}").as_bytes()).await;
            });
        }
    });
    port
}

/// The host's first non-loopback IPv4 address.
fn host_ip() -> String {
    let out = std::process::Command::new("hostname").arg("-I").output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().find(|a| a.contains('.')).unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_on_reaches_out_but_not_the_hosts_loopback() {
    let _serial = SERIAL.lock().await;
    let port = host_server("hello-from-host").await;
    let ip = host_ip();
    let probe = format!(
        "curl -sS -m 5 http://{ip}:{port}/ || echo no-egress; echo; \
         curl -s -m 3 http://10.0.2.2:{port}/ || echo loopback-unreachable; echo; cat /etc/resolv.conf"
    );
    let script = vec![shell(&probe), Reply::text(&["done"]), shell(&probe), Reply::text(&["done"])];
    let on = setup_with(script.clone(), Wire::OpenAi, json!({}), &config()).await;
    run_to_end(&on, "net").await;
    let out = results(&on, &on.thread).await[0]["result"].as_str().unwrap().to_owned();
    assert!(out.contains("hello-from-host"), "egress works: {out}");
    assert!(out.contains("loopback-unreachable") && !out.contains("hello-from-host\nhello"), "{out}");
    assert!(out.contains("nameserver 10.0.2.3"), "{out}");
    // The sandbox's network was made in its own namespace: the host's routes are untouched.
    let host_routes = std::fs::read_to_string("/proc/net/route").unwrap();
    assert!(!host_routes.contains("tap0"), "the host's namespace was configured: {host_routes}");
    // The namespace survives a herm restart and is reused.
    let mut on = on;
    on.herm.kill9().await;
    on.herm.restart().await;
    run_to_end(&on, "again").await;
    let again = results(&on, &on.thread).await[1]["result"].as_str().unwrap().to_owned();
    assert!(again.contains("hello-from-host"), "{again}");
    let off = setup_with(script, Wire::OpenAi, json!({"sandbox": {"network": "off"}}), &config()).await;
    run_to_end(&off, "net").await;
    let out = results(&off, &off.thread).await[0]["result"].as_str().unwrap().to_owned();
    assert!(out.contains("no-egress") && !out.contains("hello-from-host"), "network off: {out}");
    for env in [&on, &off] {
        let (s, _) = env
            .herm
            .request("DELETE", &format!("/v1/deployments/{}", env.dep), Some(&env.herm.admin_key.clone()), None)
            .await;
        assert_eq!(s, 200);
    }
}
