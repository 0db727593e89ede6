//! `herm sandbox …`: building the default image, and the sandbox benchmark.

use herm_sandbox::docker::{DockerOptions, DockerSandbox};
use herm_sandbox::{ExecRequest, Sandbox, SandboxConfig};
use herm_types::DeploymentId;
use std::time::{Duration, Instant};

use crate::bench::{ms, pct};

/// The image build, shared with `scripts/build-image.sh` (one source of truth).
const BUILD_SCRIPT: &str = include_str!("../../../scripts/build-image.sh");

/// Builds the default sandbox image from the machine's Debian package sources.
pub fn build_image(image: &str, force: bool) -> anyhow::Result<()> {
    let args: Vec<&str> = if force { vec!["--force", image] } else { vec![image] };
    anyhow::ensure!(
        herm_sandbox::host::run_script(BUILD_SCRIPT, "build-image", &args)?,
        "building the sandbox image failed"
    );
    Ok(())
}

fn timed(n: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Vec<Duration>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed());
    }
    v.sort();
    Ok(v)
}

/// The command every round trip runs.
fn truth() -> ExecRequest {
    ExecRequest { command: "true".into(), timeout: Duration::from_secs(30), ..Default::default() }
}

/// Creates `rounds` sandboxes, timing each from creation to its first command done.
async fn cold_starts(
    sb: &dyn Sandbox,
    cfg: &SandboxConfig,
    rounds: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<DeploymentId>)> {
    let (mut cold, mut deps) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        let d = DeploymentId::new();
        let t = Instant::now();
        sb.ensure(&d, cfg).await?;
        sb.exec(&d, truth(), &mut |_, _| {}).await?;
        cold.push(t.elapsed());
        deps.push(d);
    }
    cold.sort();
    Ok((cold, deps))
}

/// Times `n` round trips of `true` in a running sandbox, `gap` apart (an agent's commands
/// are a model call apart; zero measures them back to back).
async fn exec_round_trips(
    sb: &dyn Sandbox,
    dep: &DeploymentId,
    n: usize,
    gap: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        tokio::time::sleep(gap).await;
        let t = Instant::now();
        sb.exec(dep, truth(), &mut |_, _| {}).await?;
        v.push(t.elapsed());
    }
    v.sort();
    Ok(v)
}

fn docker_cli(args: &[&str]) -> anyhow::Result<()> {
    herm_sandbox::host::docker_cli(args).map_err(anyhow::Error::msg)
}

fn line(name: &str, v: &[Duration], base: Option<&[Duration]>) {
    let ratio = base
        .map(|b| format!(" ({:.2}x the baseline)", pct(v, 0.5).as_secs_f64() / pct(b, 0.5).as_secs_f64().max(1e-9)));
    println!("{name:<42} p50 {:>10} p99 {:>10}{}", ms(pct(v, 0.5)), ms(pct(v, 0.99)), ratio.unwrap_or_default());
}

/// Cold start and exec round trip of the namespaces backend, beside a plain `bash -c true`
/// spawned the same way without namespaces, in the same run.
pub async fn bench_namespaces(rounds: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("herm-ns-bench-{}", herm_types::EventId::new()));
    let sb = herm_sandbox::namespaces::NamespacesSandbox::new(&dir)?;
    let cfg = SandboxConfig { image: String::new(), network: false, memory_mb: 512, cpus: 1.0, pids_limit: 256 };
    println!("herm sandbox bench — namespaces backend, {rounds} rounds");
    let spawn = timed(rounds * 3, || {
        anyhow::ensure!(herm_sandbox::host::spawn_true()?, "bash failed");
        Ok(())
    })?;
    let (cold, mut deps) = cold_starts(&sb, &cfg, rounds).await?;
    let warm = exec_round_trips(&sb, &deps[0], rounds * 3, Duration::ZERO).await?;
    // With `network` on: the deployment's namespace and slirp4netns start on first use.
    let net = SandboxConfig { network: true, ..cfg.clone() };
    let (cold_net, net_deps) = cold_starts(&sb, &net, rounds).await?;
    let warm_net = exec_round_trips(&sb, &net_deps[0], rounds * 3, Duration::ZERO).await?;
    deps.extend(net_deps);
    line("baseline: spawn bash -c true", &spawn, None);
    line("cold start (create → first command)", &cold, Some(&spawn));
    line("exec round trip of `true`", &warm, Some(&spawn));
    line("cold start, network on", &cold_net, Some(&spawn));
    line("exec round trip, network on", &warm_net, Some(&spawn));
    for d in deps {
        sb.destroy(&d, false).await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Times `rounds` cold starts from a pool that has one container ready at each.
async fn pool_cold_starts(
    sb: &DockerSandbox,
    cfg: &SandboxConfig,
    rounds: usize,
    deps: &mut Vec<DeploymentId>,
) -> anyhow::Result<Vec<Duration>> {
    let mut v = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        anyhow::ensure!(sb.pool_ready(1, Duration::from_secs(60)).await, "the pool did not fill");
        let (t, d) = cold_starts(sb, cfg, 1).await?;
        v.extend(t);
        deps.extend(d);
    }
    v.sort();
    Ok(v)
}

/// Cold start (from a ready pool container and from nothing), warm start and warm exec of
/// the Docker backend, beside `docker run --rm` and `docker exec` measured in the same run.
pub async fn bench(image: &str, rounds: usize) -> anyhow::Result<()> {
    let cfg = SandboxConfig { image: image.into(), network: false, memory_mb: 512, cpus: 1.0, pids_limit: 256 };
    let state = std::env::temp_dir().join(format!("herm-docker-bench-{}", herm_types::EventId::new()));
    // Pool containers are built as serve builds them: network on.
    let on = SandboxConfig { network: true, ..cfg.clone() };
    let opts = |pool_size| DockerOptions { state_dir: state.clone(), pool_size, pool_config: on.clone() };
    let fresh = DockerSandbox::connect(opts(0)).await?;
    println!("herm sandbox bench — docker backend, image {image}, {rounds} rounds");

    let run_rm = timed(rounds, || docker_cli(&["run", "--rm", "--network", "none", image, "true"]))?;
    let (cold, mut deps) = cold_starts(&fresh, &cfg, rounds).await?;
    // From the pool: each round starts with one container ready, as a deployment created
    // after a quiet moment finds it.
    let pooled = DockerSandbox::connect(opts(1)).await?;
    let cold_pool = pool_cold_starts(&pooled, &on, rounds, &mut deps).await?;
    // A deployment with other limits and the network off: taking a pool container then
    // also updates its limits and disconnects it.
    let other = SandboxConfig { memory_mb: 1024, ..cfg.clone() };
    let cold_adjusted = pool_cold_starts(&pooled, &other, rounds, &mut deps).await?;
    let d = deps[0].clone();
    let mut warm_start = Vec::new();
    for _ in 0..rounds {
        fresh.stop(&d).await?;
        let t = Instant::now();
        fresh.ensure(&d, &cfg).await?;
        fresh.exec(&d, truth(), &mut |_, _| {}).await?;
        warm_start.push(t.elapsed());
    }
    warm_start.sort();
    let name = format!("herm-{d}");
    let exec_cli = timed(rounds * 3, || docker_cli(&["exec", &name, "true"]))?;
    let warm_exec = exec_round_trips(&fresh, &d, rounds * 3, Duration::from_millis(20)).await?;
    let back_to_back = exec_round_trips(&fresh, &d, rounds * 3, Duration::ZERO).await?;
    line("baseline: docker run --rm … true", &run_rm, None);
    line("cold start, from the pool (network on)", &cold_pool, Some(&run_rm));
    line("  … network off, other limits", &cold_adjusted, Some(&run_rm));
    line("cold start, new container (network off)", &cold, Some(&run_rm));
    line("warm start (stopped → first command)", &warm_start, Some(&run_rm));
    line("baseline: docker exec … true", &exec_cli, None);
    line("warm exec round trip of `true`", &warm_exec, Some(&exec_cli));
    line("  … back to back (no gap)", &back_to_back, Some(&exec_cli));
    for d in deps {
        fresh.destroy(&d, false).await?;
    }
    pooled.shutdown().await;
    let _ = std::fs::remove_dir_all(&state);
    Ok(())
}
