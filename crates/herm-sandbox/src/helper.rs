//! A kept-open exec channel to the in-sandbox helper: one `docker exec` per container
//! carries every command as a JSON line and every output chunk back, so a command costs a
//! round trip on an open stream instead of a new exec. Requests are multiplexed by id; a
//! request whose future is dropped (an interrupt) has its process group killed.
//!
//! The helper is `helper.py`, run by the image's python3; in an image without python3 it is
//! the static binary built from `helper/main.rs` (same protocol), copied into the
//! container's `/run/herm` (a small exec-allowed tmpfs; `/tmp` is noexec) when the channel
//! opens. Where neither can run (a container made before `/run/herm` existed, an image
//! without `sh`), the caller runs one `docker exec` per command.

use crate::{Error, ExecOutput, ExecRequest, OutputSink, Result, Stream};
use base64::Engine as _;
use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

const HELPER_PY: &str = include_str!("helper.py");
/// Empty when the build could not link it statically (see build.rs).
const HELPER_BIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/herm-helper"));
/// Where the binary helper is placed in a container (a tmpfs the Docker backend mounts).
pub(crate) const HELPER_DIR: &str = "/run/herm";

enum Frame {
    Out(Stream, Vec<u8>),
    Exit(i64),
    Failed(String),
}

type Pending = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Frame>>>>;

pub(crate) struct Channel {
    input: tokio::sync::Mutex<Pin<Box<dyn AsyncWrite + Send>>>,
    pending: Pending,
    alive: Arc<AtomicBool>,
    next: AtomicU64,
}

fn dispatch(pending: &Pending, line: &[u8], ready: &mut Option<oneshot::Sender<()>>) {
    let Ok(v) = serde_json::from_slice::<Value>(line) else { return };
    if v.get("ready").is_some() {
        if let Some(r) = ready.take() {
            let _ = r.send(());
        }
        return;
    }
    let Some(id) = v.get("id").and_then(Value::as_u64) else { return };
    let frame = if let Some(code) = v.get("x").and_then(Value::as_i64) {
        Frame::Exit(code)
    } else if let Some(e) = v.get("err").and_then(Value::as_str) {
        Frame::Failed(e.to_owned())
    } else {
        let stream = if v["s"] == "e" { Stream::Stderr } else { Stream::Stdout };
        let data =
            base64::engine::general_purpose::STANDARD.decode(v["d"].as_str().unwrap_or_default()).unwrap_or_default();
        Frame::Out(stream, data)
    };
    let mut map = pending.lock().unwrap_or_else(|p| p.into_inner());
    let last = matches!(frame, Frame::Exit(_) | Frame::Failed(_));
    if let Some(tx) = map.get(&id) {
        let _ = tx.send(frame);
    }
    if last {
        map.remove(&id);
    }
}

/// Copies the binary helper into the container; its path there.
async fn install(docker: &Docker, container: &str) -> Result<String> {
    let fail = |e: String| Error::Engine(format!("installing the exec helper: {e}"));
    if HELPER_BIN.is_empty() {
        return Err(fail("not built".into()));
    }
    let path = format!("{HELPER_DIR}/helper");
    let script = format!("cat > {path}.new && chmod 700 {path}.new && mv -f {path}.new {path}");
    let opts = CreateExecOptions {
        cmd: Some(vec!["sh".to_owned(), "-c".to_owned(), script]),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..Default::default()
    };
    let x = docker.create_exec(container, opts).await.map_err(|e| fail(e.to_string()))?;
    let StartExecResults::Attached { mut output, mut input } =
        docker.start_exec(&x.id, None).await.map_err(|e| fail(e.to_string()))?
    else {
        return Err(fail("the copy did not attach".into()));
    };
    input.write_all(HELPER_BIN).await.map_err(|e| fail(e.to_string()))?;
    input.shutdown().await.map_err(|e| fail(e.to_string()))?;
    drop(input);
    while output.next().await.is_some() {}
    let code = docker.inspect_exec(&x.id).await.map_err(|e| fail(e.to_string()))?.exit_code;
    if code != Some(0) {
        return Err(fail(format!("the copy exited with {code:?}")));
    }
    Ok(path)
}

impl Channel {
    /// Starts the helper in the container: the Python one where the image has python3 (one
    /// exec; copying the binary in first costs a second), else the binary one; fails if
    /// neither answers.
    pub(crate) async fn open(docker: &Docker, container: &str) -> Result<Arc<Channel>> {
        let python = ["python3", "-u", "-c", HELPER_PY].map(str::to_owned).to_vec();
        match Self::start(docker, container, python).await {
            Ok(c) => Ok(c),
            Err(e) => {
                tracing::debug!(container, error = %e, "no Python exec helper; installing the binary one");
                let path = install(docker, container).await?;
                Self::start(docker, container, vec![path]).await
            }
        }
    }

    /// Runs `cmd` as the helper and waits for it to say it is ready.
    async fn start(docker: &Docker, container: &str, cmd: Vec<String>) -> Result<Arc<Channel>> {
        let opts = CreateExecOptions {
            cmd: Some(cmd),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let x = docker.create_exec(container, opts).await.map_err(|e| Error::Engine(e.to_string()))?;
        let StartExecResults::Attached { mut output, input } =
            docker.start_exec(&x.id, None).await.map_err(|e| Error::Engine(e.to_string()))?
        else {
            return Err(Error::Engine("the helper did not attach".into()));
        };
        let pending: Pending = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let (ready_tx, ready_rx) = oneshot::channel();
        let (p, a) = (pending.clone(), alive.clone());
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut buf: Vec<u8> = Vec::new();
            while let Some(Ok(chunk)) = output.next().await {
                match chunk {
                    bollard::container::LogOutput::StdOut { message } => {
                        buf.extend_from_slice(&message);
                        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = buf.drain(..=pos).collect();
                            dispatch(&p, &line, &mut ready);
                        }
                    }
                    bollard::container::LogOutput::StdErr { message } => {
                        tracing::debug!(helper = %String::from_utf8_lossy(&message), "sandbox helper stderr");
                    }
                    _ => {}
                }
            }
            // The helper is gone (container stopped): every waiting request learns it.
            a.store(false, Ordering::SeqCst);
            p.lock().unwrap_or_else(|e| e.into_inner()).clear();
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .map_err(|_| Error::Engine("the sandbox helper did not start".into()))?
            .map_err(|_| Error::Engine("the sandbox helper exited".into()))?;
        Ok(Arc::new(Channel { input: tokio::sync::Mutex::new(input), pending, alive, next: AtomicU64::new(1) }))
    }

    pub(crate) fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    async fn send(&self, v: &Value) -> Result<()> {
        let mut line = serde_json::to_vec(v).map_err(|e| Error::Failed(e.to_string()))?;
        line.push(b'\n');
        let mut input = self.input.lock().await;
        input.write_all(&line).await.map_err(|e| Error::Engine(format!("sandbox helper: {e}")))?;
        input.flush().await.map_err(|e| Error::Engine(format!("sandbox helper: {e}")))
    }

    pub(crate) async fn run(self: &Arc<Self>, req: ExecRequest, out: &mut OutputSink<'_>) -> Result<ExecOutput> {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        let secs = req.timeout.as_secs().max(1);
        let stdin = req.stdin.as_ref().map(|d| base64::engine::general_purpose::STANDARD.encode(d));
        let started = Instant::now();
        self.send(&json!({"id": id, "c": req.command, "t": secs, "cwd": req.cwd, "in": stdin})).await?;
        let mut guard = KillOnDrop { channel: self.clone(), id, armed: true };
        let mut result = ExecOutput::default();
        let code = loop {
            match rx.recv().await {
                Some(Frame::Out(s, data)) => {
                    out(s, &data);
                    match s {
                        Stream::Stdout => result.stdout.extend_from_slice(&data),
                        Stream::Stderr => result.stderr.extend_from_slice(&data),
                    }
                }
                Some(Frame::Exit(code)) => break code,
                Some(Frame::Failed(e)) => {
                    guard.armed = false;
                    return Err(Error::Failed(e));
                }
                None => {
                    guard.armed = false;
                    return Err(Error::Engine("the sandbox stopped while the command ran".into()));
                }
            }
        };
        guard.armed = false;
        let killed = code == 137 || code < 0;
        result.exit_code = (!killed).then_some(code);
        result.timed_out = killed && started.elapsed() + Duration::from_millis(200) >= Duration::from_secs(secs);
        Ok(result)
    }
}

/// Kills a request's process group if its future is dropped before the command ended.
struct KillOnDrop {
    channel: Arc<Channel>,
    id: u64,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (channel, id) = (self.channel.clone(), self.id);
        tokio::spawn(async move {
            if let Err(e) = channel.send(&json!({"kill": id})).await {
                tracing::warn!(error = %e, "could not kill a cancelled command's processes");
            }
        });
    }
}
