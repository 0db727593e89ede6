//! The two in-sandbox exec helpers (the static binary from `helper/main.rs` and
//! `helper.py`) speak one protocol; this suite runs the same requests through each, inside a
//! real container of herm's image (hardened as herm makes them), and checks the same
//! answers: `bash -c` behaviour on the warm path, standard input, working directories, exit
//! codes, the time limit killing a whole group, kill requests, text that needs escaping, and
//! many commands in a row (each taking the bash warmed after the last).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "herm-sandbox:default";
const BINARY: &str = concat!(env!("OUT_DIR"), "/herm-helper");
const PYTHON: &str = include_str!("../src/helper.py");

struct Helper {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

/// What one request produced.
#[derive(Debug, Default)]
struct Reply {
    stdout: String,
    stderr: String,
    status: Option<i64>,
    error: Option<String>,
    took: Duration,
}

impl Helper {
    fn start(binary: bool) -> Helper {
        let mut cmd = Command::new("docker");
        cmd.args(["run", "--rm", "-i", "--read-only", "--cap-drop", "ALL", "--network", "none", "--init"])
            .args(["--pids-limit", "128", "--memory", "256m", "--tmpfs", "/tmp:rw,nosuid,nodev,size=64m"])
            .args(["--tmpfs", "/workspace:rw,size=64m", "-w", "/workspace"]);
        if binary {
            cmd.args(["-v", &format!("{BINARY}:/run/herm/helper:ro"), IMAGE, "/run/herm/helper"]);
        } else {
            cmd.args([IMAGE, "python3", "-u", "-c", PYTHON]);
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("docker");
        let input = child.stdin.take().unwrap();
        let mut output = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        output.read_line(&mut line).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), json!({"ready": true}), "{line}");
        Helper { child, input, output }
    }

    fn send(&mut self, v: Value) {
        writeln!(self.input, "{v}").unwrap();
        self.input.flush().unwrap();
    }

    /// Reads frames until request `id` ends.
    fn wait(&mut self, id: u64) -> Reply {
        let started = Instant::now();
        let mut r = Reply::default();
        loop {
            let mut line = String::new();
            assert!(self.output.read_line(&mut line).unwrap() > 0, "the helper ended");
            let v: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["id"], id, "{v}");
            if let Some(x) = v["x"].as_i64() {
                r.status = Some(x);
            } else if let Some(e) = v["err"].as_str() {
                r.error = Some(e.to_owned());
            } else {
                let d = base64::engine::general_purpose::STANDARD.decode(v["d"].as_str().unwrap()).unwrap();
                let d = String::from_utf8(d).unwrap();
                if v["s"] == "o" {
                    r.stdout.push_str(&d)
                } else {
                    r.stderr.push_str(&d)
                }
                continue;
            }
            r.took = started.elapsed();
            return r;
        }
    }

    fn run(&mut self, id: u64, req: Value) -> Reply {
        let mut req = req;
        req["id"] = json!(id);
        if req.get("t").is_none() {
            req["t"] = json!(30);
        }
        self.send(req);
        self.wait(id)
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn conformance(binary: bool) {
    let mut h = Helper::start(binary);
    // Let the first warm bash start, so the next command takes the warm path.
    std::thread::sleep(Duration::from_millis(300));
    let r = h.run(1, json!({"c": "echo $0; pwd; ls /proc/self/fd | wc -l; return 2; echo after"}));
    assert_eq!(r.stdout, "bash\n/workspace\n4\nafter\n", "{r:?}");
    assert!(r.stderr.contains("can only `return'"), "{r:?}");
    assert_eq!(r.status, Some(0));

    let data = "x".repeat(300_000);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
    let r = h.run(2, json!({"c": "wc -c", "in": b64}));
    assert_eq!((r.stdout.trim(), r.status), ("300000", Some(0)), "{r:?}");

    let r = h.run(3, json!({"c": "pwd", "cwd": "/tmp"}));
    assert_eq!(r.stdout, "/tmp\n");
    let r = h.run(4, json!({"c": "pwd", "cwd": "/nope"}));
    assert!(r.error.is_some() && r.status.is_none(), "{r:?}");

    let r = h.run(5, json!({"c": "echo out; echo err >&2; exit 7"}));
    assert_eq!((r.stdout.as_str(), r.stderr.as_str(), r.status), ("out\n", "err\n", Some(7)));

    // The time limit kills the command and its children; the group is gone afterwards.
    let r = h.run(6, json!({"c": "sleep 300 & sleep 300 & wait", "t": 1}));
    assert!(r.status.is_some_and(|s| s < 0), "killed: {r:?}");
    assert!(r.took < Duration::from_secs(4), "{r:?}");
    let r = h.run(7, json!({"c": "ps -eo args= | grep -c '^sleep 300' || true"}));
    assert_eq!(r.stdout.trim(), "0", "{r:?}");

    // A kill request ends a running command at once.
    h.send(json!({"id": 8, "c": "sleep 50; echo never", "t": 60}));
    std::thread::sleep(Duration::from_millis(300));
    h.send(json!({"kill": 8}));
    let r = h.wait(8);
    assert!(r.status.is_some_and(|s| s < 0) && r.stdout.is_empty(), "{r:?}");
    assert!(r.took < Duration::from_secs(3), "{r:?}");

    // Text that needs escaping both ways.
    let text = "é \"quoted\" back\\slash\ttab ✓";
    let r = h.run(9, json!({"c": format!("printf '%s\\n' '{text}'")}));
    assert_eq!(r.stdout, format!("{text}\n"));

    // Many in a row, each on the bash warmed after the one before or on a new one.
    for i in 10..60u64 {
        let r = h.run(i, json!({"c": format!("echo $(( {i} * 2 ))")}));
        assert_eq!((r.stdout.trim(), r.status), ((i * 2).to_string().as_str(), Some(0)), "{i}: {r:?}");
    }
}

fn docker_answers() -> bool {
    Command::new("docker").args(["image", "inspect", IMAGE]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn the_binary_helper_speaks_the_protocol() {
    assert!(docker_answers(), "needs the Docker engine and {IMAGE} (scripts/test.sh makes both)");
    assert!(std::fs::metadata(BINARY).unwrap().len() > 0, "the static helper was built");
    conformance(true);
}

#[test]
fn the_python_helper_speaks_the_protocol() {
    assert!(docker_answers(), "needs the Docker engine and {IMAGE} (scripts/test.sh makes both)");
    conformance(false);
}
