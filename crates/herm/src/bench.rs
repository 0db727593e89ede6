//! `herm bench`: runtime overhead per agent step, in process, with an instant model, on
//! SQLite with `synchronous=FULL` or (`--store postgres`, `--nodes N`) on PostgreSQL shared
//! by N engines. Each step's tool call is measured two ways: one the runtime answers inline
//! (a tool that does not exist: its call and result commit with the model's record, one
//! commit per step), and an HTTP tool on a loopback endpoint that answers at once (written
//! ahead, then its result: two commits per step). A baseline measured in the same run (one
//! durable commit of the same database) puts the figures in proportion on a noisy machine.

use crate::config::Config;
use async_trait::async_trait;
use herm_engine::Engine;
use herm_llm::{DeltaSink, Message, ModelClient, ModelRequest, ModelResponse, TokenUsage};
use herm_types::config::{DeploymentSpec, ProviderKind, ProviderSpec};
use herm_types::event::RequestedToolCall;
use herm_types::*;
use parking_lot::Mutex;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Concurrency levels (threads running at once).
    #[arg(long, default_value = "1,100,1000", value_delimiter = ',')]
    pub(crate) threads: Vec<usize>,
    /// Model calls per run (each but the last is followed by one tool call).
    #[arg(long, default_value_t = 10)]
    pub(crate) steps_per_run: u32,
    /// Runs per thread at concurrency 1 (for stable percentiles).
    #[arg(long, default_value_t = 50)]
    pub(crate) single_runs: u32,
    /// Instead: park this many threads waiting on an approval and report memory and the
    /// latency from confirmation to the tool call starting.
    #[arg(long)]
    waiting: Option<usize>,
    /// Instead: the MCP tool-call overhead herm adds over a bare SDK client (needs
    /// scripts/mcp-peers.sh), with this many calls per side and transport.
    #[arg(long)]
    mcp: Option<usize>,
    /// Instead: the scheduler — the trigger jitter of this many automations due in the same
    /// minute, then its idle cost with `--idle-automations` enabled automations.
    #[arg(long)]
    schedules: Option<usize>,
    /// Instead: tracing overhead — steps with spans exported over OTLP to a local receiver
    /// against steps with tracing off, alternating, this many runs per setting and round.
    #[arg(long)]
    tracing: Option<u32>,
    /// Instead: the Claude Managed Agents facade — time to first event and per-step time on
    /// its session stream against herm's own API, this many alternating runs per side.
    #[arg(long)]
    cma: Option<u32>,
    /// The store measured: `sqlite` (the embedded default) or `postgres`.
    #[arg(long, default_value = "sqlite")]
    pub(crate) store: String,
    /// With `--store postgres`: the server (a fresh database is made there and dropped after);
    /// default `HERM_BENCH_DATABASE_URL`, else the one `scripts/postgres.sh` sets up.
    #[arg(long)]
    pub(crate) database_url: Option<String>,
    /// With `--store postgres`: engines (nodes, each with its own pool, node id and workers)
    /// sharing the database; runs are started round-robin across them.
    #[arg(long, default_value_t = 1)]
    pub(crate) nodes: usize,
    /// With `--schedules`: enabled automations (not due) for the idle-cost measurement.
    #[arg(long, default_value_t = 100_000)]
    idle_automations: usize,
    /// Instead: memory — the run start with this many memories (in turn) against a run start
    /// with memory off, then the compaction overhead without the model call.
    #[arg(long, value_delimiter = ',')]
    memories: Option<Vec<usize>>,
}

/// The HTTP tool of the write-ahead measurement; a run offered no tool of this name calls
/// `noop`, which does not exist.
const HTTP_TOOL: &str = "bench_http";

/// A model that answers instantly: a tool call ([`HTTP_TOOL`] if offered, else `noop`) until
/// the run has `steps - 1` results, then a final answer. It records when each thread's
/// calls arrive.
pub(crate) struct Instant0 {
    steps: u32,
    calls: Mutex<HashMap<String, Vec<Instant>>>,
    /// Final answers given so far.
    finals: std::sync::atomic::AtomicUsize,
    /// Told of each final answer (a round waits on it instead of polling, which took CPU
    /// from the runs it measured).
    final_said: tokio::sync::Notify,
}

impl Instant0 {
    /// A model whose runs take `steps` model calls.
    pub(crate) fn new(steps: u32) -> Self {
        Self { steps, calls: Mutex::new(HashMap::new()), finals: Default::default(), final_said: Default::default() }
    }

    /// The steps measured so far (the intervals between consecutive model calls of a run),
    /// sorted; the record is cleared.
    pub(crate) fn take_steps(&self) -> Vec<Duration> {
        let mut steps: Vec<Duration> = self
            .calls
            .lock()
            .drain()
            .flat_map(|(_, v)| v.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>())
            .collect();
        steps.sort();
        steps
    }

    /// When the first call of the run whose message is `key` arrived.
    pub(crate) fn first_call(&self, key: &str) -> Option<Instant> {
        self.calls.lock().get(key).and_then(|v| v.first().copied())
    }
}

#[async_trait]
impl ModelClient for Instant0 {
    async fn stream(
        &self,
        req: &ModelRequest,
        _: Option<&str>,
        on_delta: &mut DeltaSink<'_>,
    ) -> Result<ModelResponse, herm_llm::Error> {
        let at = Instant::now();
        // The last user message names the run; tool results after it count the steps.
        let pos = req.messages.iter().rposition(|m| matches!(**m, Message::User { .. })).unwrap_or(0);
        let key = match req.messages.get(pos).map(|m| &**m) {
            Some(Message::User { text, .. }) => text.clone(),
            _ => String::new(),
        };
        let done = req.messages[pos..].iter().filter(|m| matches!(***m, Message::ToolResults(_))).count() as u32;
        self.calls.lock().entry(key).or_default().push(at);
        let usage = TokenUsage { input_tokens: 10, output_tokens: 5 };
        if done + 1 >= self.steps {
            self.finals.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.final_said.notify_waiters();
            on_delta("done");
            return Ok(ModelResponse {
                text: "done".into(),
                tool_calls: vec![],
                usage,
                stop_reason: Some("end_turn".into()),
            });
        }
        let tool = if req.tools.iter().any(|t| t.name == HTTP_TOOL) { HTTP_TOOL } else { "noop" };
        let call = RequestedToolCall { tool_use_id: format!("t{done}"), tool: tool.into(), arguments: json!({}) };
        Ok(ModelResponse { text: String::new(), tool_calls: vec![call], usage, stop_reason: Some("tool_use".into()) })
    }
}

/// A model for benchmarks that never call one.
pub(crate) struct NoModel;

#[async_trait]
impl ModelClient for NoModel {
    async fn stream(
        &self,
        _: &ModelRequest,
        _: Option<&str>,
        _: &mut DeltaSink<'_>,
    ) -> Result<ModelResponse, herm_llm::Error> {
        Err(herm_llm::Error::new(herm_llm::ErrorKind::Rejected, "this benchmark makes no model calls"))
    }
}

pub(crate) fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// User and system CPU time of this process so far (getrusage: microsecond resolution).
pub(crate) fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the zeroed struct it is given and reads nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Baseline: one durable commit of a small row, as the store makes it.
pub(crate) fn baseline(dir: &std::path::Path, n: usize) -> anyhow::Result<Vec<Duration>> {
    let c = rusqlite::Connection::open(dir.join("baseline.db"))?;
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);",
    )?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        c.execute_batch("BEGIN IMMEDIATE")?;
        c.execute("INSERT INTO t (id, v) VALUES (?1, 'x')", [i as i64])?;
        c.execute_batch("COMMIT")?;
        out.push(t.elapsed());
    }
    out.sort();
    Ok(out)
}

/// Starts one run on each thread at once and waits until all are finished: every final
/// answer given and every worker gone idle (cheap in-memory checks, so waiting does not
/// load the store being measured). The runs' statuses are verified afterwards, untimed.
pub(crate) async fn round(
    engine: &Engine,
    dep: &DeploymentId,
    model: &Instant0,
    threads: &[ThreadId],
    tag: &str,
) -> anyhow::Result<Duration> {
    round_on(std::slice::from_ref(engine), dep, model, threads, tag).await
}

/// [`round`] with runs started round-robin on several engines (nodes of one database).
pub(crate) async fn round_on(
    engines: &[Engine],
    dep: &DeploymentId,
    model: &Instant0,
    threads: &[ThreadId],
    tag: &str,
) -> anyhow::Result<Duration> {
    use std::sync::atomic::Ordering;
    let engine = &engines[0];
    let target = model.finals.load(Ordering::SeqCst) + threads.len();
    let started = Instant::now();
    let mut handles = Vec::new();
    for (i, t) in threads.iter().enumerate() {
        let (e, t, msg) = (engines[i % engines.len()].clone(), t.clone(), format!("{tag} {i}"));
        handles.push(tokio::spawn(async move { e.submit_text(&t, Default::default(), msg).await }));
    }
    let mut runs = Vec::with_capacity(threads.len());
    for h in handles {
        runs.push(h.await??.run_id);
    }
    let deadline = started + Duration::from_secs(300);
    let stalled = || anyhow::anyhow!("benchmark runs stalled");
    loop {
        // Registered before the count is read, so no final answer in between is missed.
        let said = model.final_said.notified();
        if model.finals.load(Ordering::SeqCst) >= target {
            break;
        }
        tokio::time::timeout_at(deadline.into(), said).await.map_err(|_| stalled())?;
    }
    // The runs' last records commit after their final answers: a short wait.
    while engines.iter().any(|e| e.active_workers() > 0) {
        anyhow::ensure!(Instant::now() < deadline, stalled());
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let elapsed = started.elapsed();
    for r in runs {
        let run = engine.run(dep, &r).await?;
        anyhow::ensure!(run.status == RunStatus::Completed, "a benchmark run did not complete: {run:?}");
    }
    Ok(elapsed)
}

/// An in-process engine on a fresh temporary SQLite database whose `bench` provider is
/// `model`, with one ready deployment of `spec` (a JSON deployment body). Started.
pub(crate) struct BenchEngine {
    pub opened: crate::serve::Opened,
    pub dep: herm_store::DeploymentRecord,
    pub dir: std::path::PathBuf,
}

pub(crate) async fn bench_engine(
    tag: &str,
    model: Arc<dyn ModelClient>,
    spec: serde_json::Value,
) -> anyhow::Result<BenchEngine> {
    let (opened, dir) = open_node(tag, model, |_| {}).await?;
    let dep = ready_deployment(&opened.engine, spec).await?;
    Ok(BenchEngine { opened, dep, dir })
}

/// A deployment of `spec` (a JSON deployment body), once provisioned.
async fn ready_deployment(engine: &Engine, spec: serde_json::Value) -> anyhow::Result<herm_store::DeploymentRecord> {
    let spec: DeploymentSpec = serde_json::from_value(spec)?;
    let mut dep = engine.create_deployment(spec).await?;
    // Without a sandbox, provisioning is immediate; wait for it all the same.
    while dep.status == DeploymentStatus::Provisioning {
        tokio::time::sleep(Duration::from_millis(2)).await;
        dep = engine.deployment(&dep.id).await?;
    }
    Ok(dep)
}

/// The step benchmark's deployment: runs of `steps` model calls, with [`HTTP_TOOL`] calling
/// the loopback endpoint on `http_port` if given.
fn step_spec(steps: u32, http_port: Option<u16>) -> serde_json::Value {
    let mut spec = json!({
        "customer_id": "bench", "name": "bench", "system_prompt": "benchmark", "model": "bench/instant",
        "limits": {"max_run_steps": steps + 1}
    });
    if let Some(port) = http_port {
        spec["http_tools"] = json!([{
            "name": HTTP_TOOL, "description": "answers at once", "input_schema": {"type": "object"},
            "method": "POST", "url": format!("http://127.0.0.1:{port}/")
        }]);
    }
    spec
}

/// An in-process engine (started) in a fresh temporary data directory whose `bench` provider
/// is `model`; `storage` adjusts the configuration (a database URL, a node id) first.
pub(crate) async fn open_node(
    tag: &str,
    model: Arc<dyn ModelClient>,
    storage: impl FnOnce(&mut Config),
) -> anyhow::Result<(crate::serve::Opened, std::path::PathBuf)> {
    let dir = std::env::temp_dir().join(format!("herm-{tag}-{}", EventId::new()));
    std::fs::create_dir_all(&dir)?;
    let mut cfg = Config::default();
    cfg.storage.data_dir = dir.clone();
    cfg.sandbox.backend = "none".into();
    // Runs arm the memory observer as by default, but it fires after the benchmark: each
    // thread a round leaves idle would otherwise start an observer run two minutes later,
    // all of them one after another in the deployment's memory thread, which a later round
    // (slow rounds on PostgreSQL) measured with its own and waited for.
    cfg.memory.observe_after_secs = 86_400;
    storage(&mut cfg);
    let provider = ProviderSpec {
        kind: ProviderKind::OpenaiCompatible,
        base_url: None,
        api_key_secret: None,
        api_key_env: None,
        models: Default::default(),
        forward_urls: false,
    };
    cfg.providers.insert("bench".into(), provider);
    let opened =
        crate::serve::open(&cfg, cfg.engine_options(), move |p| p.with_factory(Arc::new(move |_| Some(model.clone()))))
            .await?;
    opened.engine.start().await?;
    Ok((opened, dir))
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(n) = args.waiting {
        return crate::bench_waiting::run(n).await;
    }
    if let Some(n) = args.mcp {
        return crate::bench_mcp::run(n.max(10)).await;
    }
    if let Some(counts) = &args.memories {
        return crate::bench_memory::run(counts).await;
    }
    if let Some(n) = args.tracing {
        return crate::bench_tracing::run(n.max(5), args.steps_per_run).await;
    }
    if let Some(n) = args.cma {
        return crate::bench_cma::run(n.max(5), args.steps_per_run).await;
    }
    if let Some(n) = args.schedules {
        return crate::bench_schedule::run(n.max(1), args.idle_automations).await;
    }
    if args.store == "postgres" {
        return crate::bench_postgres::run(&args).await;
    }
    anyhow::ensure!(args.store == "sqlite", "--store is `sqlite` or `postgres`");
    anyhow::ensure!(args.nodes == 1, "--nodes needs --store postgres (SQLite serves one node)");
    let model = Arc::new(Instant0::new(args.steps_per_run));
    let (opened, dir) = open_node("bench", model.clone(), |_| {}).await?;
    let engine = opened.engine.clone();

    let base = baseline(&dir, 300)?;
    println!(
        "herm bench — steps of {} model calls per run, SQLite synchronous=FULL, data in {}",
        args.steps_per_run,
        dir.display()
    );
    println!("baseline: one durable SQLite commit p50 {} p99 {}", ms(pct(&base, 0.5)), ms(pct(&base, 0.99)));

    measure(std::slice::from_ref(&engine), &model, &args, &base).await?;
    engine.shutdown().await;
    drop(opened);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Steps at each concurrency of `args.threads`, for each kind of tool call (answered inline,
/// then an HTTP tool written ahead): runs started round-robin on `engines`, with p50/p99 per
/// step against the baseline commit's p50, and steps per second.
pub(crate) async fn measure(
    engines: &[Engine],
    model: &Instant0,
    args: &BenchArgs,
    base: &[Duration],
) -> anyhow::Result<()> {
    let (sink, port) = crate::bench_tracing::Sink::start().await?;
    for (label, http) in [("inline tool", None), ("http tool  ", Some(port))] {
        let dep = ready_deployment(&engines[0], step_spec(args.steps_per_run, http)).await?;
        measure_kind(engines, &dep.id, model, args, base, label).await?;
    }
    // Runs of one model call call no tool.
    anyhow::ensure!(args.steps_per_run < 2 || sink.requests() > 0, "the HTTP tool was never called");
    Ok(())
}

/// [`measure`] for one deployment, its lines starting with `label`.
async fn measure_kind(
    engines: &[Engine],
    dep: &DeploymentId,
    model: &Instant0,
    args: &BenchArgs,
    base: &[Duration],
    label: &str,
) -> anyhow::Result<()> {
    let engine = &engines[0];
    for &n in &args.threads {
        let mut threads = Vec::with_capacity(n);
        for _ in 0..n {
            threads.push(engine.create_thread(dep, None).await?.id);
        }
        let rounds = if n == 1 { args.single_runs } else { 1 };
        let mut elapsed = Duration::ZERO;
        let cpu = cpu_time();
        for r in 0..rounds {
            elapsed += round_on(engines, dep, model, &threads, &format!("c{n} r{r}")).await?;
        }
        // The process's CPU time (every thread: workers, the writer, telemetry) per step: what
        // the runtime spends, which a busy host's wait does not inflate as it does wall time.
        let cpu = cpu_time().saturating_sub(cpu);
        // A step is the interval between two consecutive model calls of one run: fold, model
        // call, journal, tool call journaled and resolved, result journaled.
        let steps = model.take_steps();
        let total_steps = (n as u64) * (rounds as u64) * (args.steps_per_run as u64);
        let rate = total_steps as f64 / elapsed.as_secs_f64();
        println!(
            "{label} threads {n:>5}: step p50 {} p99 {} ({:.1}x / {:.1}x baseline commit) — {total_steps} steps in {:.2} s = {rate:.0} steps/s, herm cpu {:.0} µs/step",
            ms(pct(&steps, 0.5)),
            ms(pct(&steps, 0.99)),
            pct(&steps, 0.5).as_secs_f64() / pct(base, 0.5).as_secs_f64().max(1e-9),
            pct(&steps, 0.99).as_secs_f64() / pct(base, 0.5).as_secs_f64().max(1e-9),
            elapsed.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / total_steps.max(1) as f64,
        );
    }
    Ok(())
}
