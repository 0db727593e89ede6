//! The `herm` binary: the server (`herm serve`), the operator CLI, and the benchmark.

mod bench;
mod bench_cma;
mod bench_mcp;
mod bench_memory;
mod bench_postgres;
mod bench_schedule;
mod bench_tracing;
mod bench_waiting;
mod client;
mod config;
mod render;
mod sandbox_cmd;
mod serve;
mod telemetry;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// mimalloc rather than the C library's allocator: a step allocates and frees many small
/// values (events, JSON, requests) across worker threads, where glibc's malloc spent about a
/// third of the workers' time (measured with `perf` under `herm bench --threads 1000`). Built
/// without transparent huge pages (`no_thp`): the kernel zeroing each 2 MiB page mimalloc
/// asked for took about a tenth of the process's time at one thread.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "herm", version, about = "Self-hostable runtime for production AI agents")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded SQLite; no other service needed).
    Serve {
        /// Address to listen on (port 0 picks one).
        #[arg(long, env = "HERM_ADDR")]
        addr: Option<String>,
        /// Data directory (database, master key).
        #[arg(long, env = "HERM_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// TOML configuration file.
        #[arg(long, short, env = "HERM_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Manage secrets in the vault.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
        #[command(flatten)]
        conn: Conn,
    },
    /// Create a deployment from a YAML or JSON file.
    Deploy {
        #[arg(short = 'f', long)]
        file: PathBuf,
        #[command(flatten)]
        conn: Conn,
    },
    /// Chat with a deployment; each line of input is a message.
    Chat {
        deployment: String,
        #[arg(long)]
        thread: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Answer pending approvals and questions of a deployment's thread.
    Approve {
        deployment: String,
        #[arg(long)]
        thread: Option<String>,
        /// Print the pending requests as JSON instead of prompting.
        #[arg(long)]
        list: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Inspect runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
        #[command(flatten)]
        conn: Conn,
    },
    /// Tokens and cost per day (the last 7 days unless `--from`) or per model.
    Usage {
        #[arg(long)]
        deployment: String,
        /// RFC 3339 start (inclusive).
        #[arg(long)]
        from: Option<String>,
        /// RFC 3339 end (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// `day` or `model`.
        #[arg(long, default_value = "day")]
        by: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Follow events.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
        #[command(flatten)]
        conn: Conn,
    },
    /// Measure runtime overhead per agent step (in-process, instant model, no-op tool).
    Bench(bench::BenchArgs),
    /// Sandbox tools: build the default image, benchmark the backend.
    Sandbox {
        #[command(subcommand)]
        command: SandboxCommand,
    },
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// Build the default sandbox image locally from Debian packages (no registry).
    BuildImage {
        #[arg(long, default_value = "herm-sandbox:default")]
        image: String,
        /// Rebuild even if the image exists.
        #[arg(long)]
        force: bool,
    },
    /// Cold start, warm start and exec round trip, beside docker run/exec baselines.
    Bench {
        #[arg(long, default_value = "herm-sandbox:default")]
        image: String,
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// `docker` or `namespaces`.
        #[arg(long, default_value = "docker")]
        backend: String,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Store a secret; its value is read from standard input.
    Set {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
}

#[derive(Subcommand)]
enum RunsCommand {
    /// A run's timeline: each event with its offset, model calls with tokens and cost, tool
    /// calls with their outcome and duration, and the totals.
    Show {
        run: String,
        #[arg(long)]
        deployment: String,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Stream a deployment's events as JSON lines.
    Tail {
        deployment: String,
        #[arg(long)]
        after: Option<String>,
    },
}

#[derive(clap::Args)]
struct Conn {
    /// herm's base URL.
    #[arg(long, env = "HERM_URL", default_value = "http://127.0.0.1:8080", global = true)]
    url: String,
    /// File holding the API key (otherwise `HERM_API_KEY`).
    #[arg(long, global = true)]
    api_key_file: Option<PathBuf>,
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HERM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("HERM_LOG_FORMAT").is_ok_and(|v| v == "json");
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { addr, data_dir, config } => {
            init_logging();
            let mut cfg = config::Config::load(config.as_ref())?;
            if let Some(a) = addr {
                cfg.server.addr = a;
            }
            if let Some(d) = data_dir {
                cfg.storage.data_dir = d;
            }
            serve::run(cfg).await
        }
        Command::Secrets { command: SecretsCommand::Set { name, description }, conn } => {
            client::secrets_set(&client::Client::new(&conn.url, conn.api_key_file.as_ref())?, &name, description).await
        }
        Command::Deploy { file, conn } => {
            client::deploy(&client::Client::new(&conn.url, conn.api_key_file.as_ref())?, &file).await
        }
        Command::Chat { deployment, thread, conn } => {
            client::chat(&client::Client::new(&conn.url, conn.api_key_file.as_ref())?, &deployment, thread).await
        }
        Command::Approve { deployment, thread, list, conn } => {
            client::approve(&client::Client::new(&conn.url, conn.api_key_file.as_ref())?, &deployment, thread, list)
                .await
        }
        Command::Runs { command: RunsCommand::Show { run, deployment }, conn } => {
            client::runs_show(&client::Client::new(&conn.url, conn.api_key_file.as_ref())?, &deployment, &run).await
        }
        Command::Usage { deployment, from, to, by, conn } => {
            client::usage(&client::Client::new(&conn.url, conn.api_key_file.as_ref())?, &deployment, from, to, &by)
                .await
        }
        Command::Events { command: EventsCommand::Tail { deployment, after }, conn } => {
            client::events_tail(&client::Client::new(&conn.url, conn.api_key_file.as_ref())?, &deployment, after).await
        }
        Command::Bench(args) => bench::run(args).await,
        Command::Sandbox { command: SandboxCommand::BuildImage { image, force } } => {
            sandbox_cmd::build_image(&image, force)
        }
        Command::Sandbox { command: SandboxCommand::Bench { image, rounds, backend } } => match backend.as_str() {
            "namespaces" => sandbox_cmd::bench_namespaces(rounds).await,
            _ => sandbox_cmd::bench(&image, rounds).await,
        },
    }
}
