//! The few host commands herm's operator CLI runs, kept here because only this crate starts
//! processes: the sandbox image build script, `docker` CLI calls of the sandbox benchmark,
//! the plain spawn the namespaces benchmark compares against, and plain children for
//! benchmark peers.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use zeroize::Zeroizing;

/// Runs `script` with bash as `name args…`, inheriting the terminal; true if it succeeded.
pub fn run_script(script: &str, name: &str, args: &[&str]) -> std::io::Result<bool> {
    Ok(Command::new("bash").arg("-c").arg(script).arg(name).args(args).status()?.success())
}

/// Runs `docker args…`; the error carries its stderr.
pub fn docker_cli(args: &[&str]) -> Result<(), String> {
    let out = Command::new("docker").args(args).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("docker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// Spawns `bash -c true` and waits: the cost of a bare process, a benchmark's baseline.
pub fn spawn_true() -> std::io::Result<bool> {
    Ok(Command::new("bash").args(["-c", "true"]).status()?.success())
}

/// A plain child `program args` with a cleared environment plus `env`, its home and working
/// directory `home`, output discarded, killed when dropped: a benchmark's peer or baseline.
pub fn plain_child(
    home: &Path,
    program: &str,
    args: &[String],
    env: &BTreeMap<String, Zeroizing<String>>,
) -> Result<tokio::process::Command, String> {
    let jail = crate::jail::StdioSandbox { mode: crate::jail::Mode::Plain, ..Default::default() };
    let mut cmd = jail.command(home, program, args, env)?;
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    Ok(cmd)
}
