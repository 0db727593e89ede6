//! One `docker exec` per command: the fallback for images that cannot run the exec helper
//! (no python3). `timeout` leads a new process group holding the command and all its
//! children, so both the time limit and a cancellation kill the whole tree.

use super::engine;
use crate::*;
use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

pub(super) async fn once(
    docker: &Docker,
    container: &str,
    req: ExecRequest,
    out: &mut OutputSink<'_>,
) -> Result<ExecOutput> {
    let id = format!(
        "{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()
    );
    let pidfile = format!("/tmp/.herm-exec-{id}");
    let secs = req.timeout.as_secs().max(1);
    let script = format!("echo $$ > {pidfile}; exec timeout -s KILL {secs} bash -c \"$1\"");
    let opts = CreateExecOptions {
        cmd: Some(vec!["sh".to_owned(), "-c".to_owned(), script, "sh".to_owned(), req.command.clone()]),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        attach_stdin: Some(req.stdin.is_some()),
        working_dir: Some(req.cwd.clone().unwrap_or_else(|| WORKSPACE.into())),
        ..Default::default()
    };
    let x = docker.create_exec(container, opts).await.map_err(engine)?;
    let started = std::time::Instant::now();
    let mut guard =
        KillOnDrop { docker: docker.clone(), container: container.to_owned(), pidfile: pidfile.clone(), armed: true };
    let mut result = ExecOutput::default();
    match docker.start_exec(&x.id, None).await.map_err(engine)? {
        StartExecResults::Attached { mut output, mut input } => {
            if let Some(data) = req.stdin {
                input.write_all(&data).await.map_err(|e| Error::Failed(e.to_string()))?;
                input.shutdown().await.map_err(|e| Error::Failed(e.to_string()))?;
            }
            drop(input);
            while let Some(chunk) = output.next().await {
                match chunk.map_err(engine)? {
                    bollard::container::LogOutput::StdOut { message } => {
                        out(Stream::Stdout, &message);
                        result.stdout.extend_from_slice(&message);
                    }
                    bollard::container::LogOutput::StdErr { message } => {
                        out(Stream::Stderr, &message);
                        result.stderr.extend_from_slice(&message);
                    }
                    _ => {}
                }
            }
        }
        StartExecResults::Detached => {}
    }
    guard.armed = false;
    let info = docker.inspect_exec(&x.id).await.map_err(engine)?;
    // 137 = killed by SIGKILL: at the deadline that is the timeout; earlier it is the
    // memory limit (the kernel's OOM killer) or a signal.
    let killed = info.exit_code == Some(137);
    result.exit_code = info.exit_code.filter(|_| !killed);
    result.timed_out = killed && started.elapsed() + Duration::from_millis(200) >= Duration::from_secs(secs);
    Ok(result)
}

/// Kills the process group whose leader wrote its pid to `pidfile` (a cancelled command).
async fn kill_group(docker: &Docker, container: &str, pidfile: &str) {
    let cmd = format!("kill -KILL -- -$(cat {pidfile}) 2>/dev/null; rm -f {pidfile}");
    // bash, not sh: dash's `kill` does not take `--` or a negative process-group id.
    let opts = CreateExecOptions { cmd: Some(vec!["bash".to_owned(), "-c".to_owned(), cmd]), ..Default::default() };
    let started = match docker.create_exec(container, opts).await {
        Ok(x) => {
            docker.start_exec(&x.id, Some(StartExecOptions { detach: true, ..Default::default() })).await.map(|_| ())
        }
        Err(e) => Err(e),
    };
    if let Err(e) = started {
        tracing::warn!(container, error = %e, "could not kill a cancelled command's processes");
    }
}

/// Kills a command's process group if its future is dropped before it finished.
struct KillOnDrop {
    docker: Docker,
    container: String,
    pidfile: String,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (docker, container, pidfile) = (self.docker.clone(), self.container.clone(), self.pidfile.clone());
        tokio::spawn(async move { kill_group(&docker, &container, &pidfile).await });
    }
}
