//! `syncline-load`: a load benchmark that drives the real `syncline-server` binary with protocol
//! peers and reports throughput, acknowledgement latency and what group commit made of it.
//!
//! Data flow: [`main`] makes sure the server binary can be found, then [`run`] starts it on a
//! fresh data directory ([`Scratch`]) and runs one level per `--peers` value, one after another,
//! against that one server. In a level ([`load`]) every peer is its own WebSocket connection and
//! tokio task, looping "make one change, wait for its durable acknowledgement". Around each level
//! the server's `/metrics` ([`scrape`]) and the CPU time of both processes ([`cpu`]) are read,
//! and the level's row of the table ([`report`]) is printed as soon as it ends. At the end the
//! server is stopped with SIGTERM and must exit 0.
//!
//! With `--http` the peers are HTTP API clients instead ([`http`]): each POSTs a change and waits
//! for the answer, which comes once the change is durable.
//!
//! The exit status is non-zero if any peer failed, a level acknowledged no change, or the server
//! did not stop cleanly; `--smoke` is the short run the test script uses to check exactly that.

#![allow(
    clippy::print_stdout,
    reason = "the table on stdout is this benchmark's output"
)]

mod bridge;
mod cpu;
mod http;
mod load;
mod report;
mod scrape;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use syncline_tests::server::{ServerOptions, ServerProcess, server_binary};

use crate::cpu::cpu_time;
use crate::load::Level;
use crate::report::Row;
use crate::scrape::{LevelMetrics, Snapshot};

/// The variable through which `ServerProcess` is told where the server binary is.
const SERVER_BIN_ENV: &str = "SYNCLINE_SERVER_BIN";

/// How long the server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(
    name = "syncline-load",
    about = "Load benchmark: peers change documents and wait for durable acknowledgement"
)]
struct Args {
    /// Concurrency levels, run one after another against the same server.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    peers: Vec<usize>,
    /// Seconds each level runs.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// A peer stops after this many acknowledged changes even if time remains.
    #[arg(long, default_value_t = 1_000_000)]
    max_changes: u64,
    /// All peers of a level edit one document, to show the cost of fan-out.
    #[arg(long)]
    shared_doc: bool,
    /// Also deliver every document through a webhook bridge (`state` or `events` mode) to a
    /// receiver on loopback, and report deliveries per second and commit-to-delivery latency.
    #[arg(long)]
    bridge: Option<String>,
    /// Run the server with access control: every peer presents a token (in the URL, as a
    /// browser does), so the figures include verifying it and checking grants.
    #[arg(long)]
    auth: bool,
    /// Drive the HTTP API instead of sync: each peer POSTs changes to its document and waits
    /// for the answer (given once the change is durable).
    #[arg(long)]
    http: bool,
    /// A short run that proves the benchmark works: peers 1,4 for 1 second each.
    #[arg(long, conflicts_with_all = ["peers", "seconds"])]
    smoke: bool,
}

impl Args {
    /// The levels to run, with `--smoke` applied.
    fn levels(&self) -> Result<Vec<Level>> {
        let (peers, seconds) = if self.smoke {
            (vec![1, 4], 1)
        } else {
            (self.peers.clone(), self.seconds)
        };
        ensure!(seconds > 0, "--seconds must be at least 1");
        ensure!(self.max_changes > 0, "--max-changes must be at least 1");
        ensure!(
            peers.iter().all(|&n| n > 0),
            "every --peers level needs at least one peer"
        );
        let level = |peers| Level {
            peers,
            shared_doc: self.shared_doc,
            duration: Duration::from_secs(seconds),
            max_changes: self.max_changes,
        };
        Ok(peers.into_iter().map(level).collect())
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = if std::env::var_os(SERVER_BIN_ENV).is_none() {
        rerun_with_server_bin()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("start the tokio runtime")
            .and_then(|runtime| runtime.block_on(run(&args)))
            .map(|()| ExitCode::SUCCESS)
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("syncline-load: {error:#}");
        ExitCode::FAILURE
    })
}

/// Runs this binary again with `SYNCLINE_SERVER_BIN` pointing at `syncline-server` beside it,
/// and passes on its exit status.
///
/// `ServerProcess` looks for the server next to a test executable, which lives one directory
/// deeper (`target/<profile>/deps/`) than this binary (`target/<profile>/`), unless the variable
/// is set. Setting it in this process is `unsafe` in edition 2024, which the workspace forbids,
/// so the variable is given to a child instead.
fn rerun_with_server_bin() -> Result<ExitCode> {
    let exe = std::env::current_exe().context("find this executable")?;
    let server = exe.with_file_name("syncline-server");
    ensure!(
        server.is_file(),
        "no server binary at {}: build it with the same profile \
         (`cargo build [--release] -p syncline-server`) or set {SERVER_BIN_ENV}",
        server.display()
    );
    let status = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .env(SERVER_BIN_ENV, &server)
        .status()
        .with_context(|| format!("run {}", exe.display()))?;
    let code = status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(1);
    Ok(ExitCode::from(code))
}

/// Starts the server, runs every level, and stops the server: with SIGTERM when all went well
/// (it must then exit 0), with SIGKILL after a failure.
async fn run(args: &Args) -> Result<()> {
    let levels = args.levels()?;
    let scratch = Scratch::create()?;
    print_header(args, &levels, &scratch);

    let bridge = match &args.bridge {
        Some(mode) => Some(bridge::Bridge::start(mode).await?),
        None => None,
    };
    let mut config = bridge
        .as_ref()
        .map(bridge::Bridge::config)
        .unwrap_or_default();
    if args.auth {
        config.push_str(syncline_tests::tokens::AUTH_CONFIG);
    }
    let options = ServerOptions {
        config,
        log_filter: "warn".to_owned(),
        ..ServerOptions::default()
    };
    let server = ServerProcess::start(&scratch.data_dir(), &options).await?;
    let log = server.log.clone();
    let token = match args.auth {
        true => {
            let grant = syncline_tests::tokens::Grant::write(&["*"]);
            Some(syncline_tests::tokens::mint(
                &server.config_path(),
                "load",
                &grant,
            )?)
        }
        false => None,
    };
    let target = match (args.http, &token) {
        (true, token) => {
            let api = syncline_tests::api::ApiClient::new(&server.http_url());
            Target::Http(token.as_deref().map_or(api.clone(), |t| api.with_token(t)))
        }
        (false, Some(token)) => {
            Target::Sync(syncline_tests::tokens::with_token(&server.ws_url(), token))
        }
        (false, None) => Target::Sync(server.ws_url()),
    };
    let result = run_levels(
        &server,
        &target,
        &levels,
        bridge.as_ref(),
        args.bridge.as_deref(),
    )
    .await;
    match result {
        Ok(()) => stop(server).await?,
        Err(error) => {
            // Best effort: the failure is what the operator needs to see.
            let _ = server.kill().await;
            return Err(error);
        }
    }

    let mut lines = log.lines();
    // The start-up notice of a server without access control, which the benchmark runs.
    lines.retain(|line| !line.contains("access control is off"));
    if !lines.is_empty() {
        println!("\nserver logged {} warning or error lines:", lines.len());
        lines.iter().take(20).for_each(|line| println!("  {line}"));
    }
    Ok(())
}

fn print_header(args: &Args, levels: &[Level], scratch: &Scratch) {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let mode = match (args.shared_doc, args.auth) {
        (true, false) => "all peers edit one shared document",
        (false, false) => "each peer edits its own document",
        (true, true) => "all peers edit one shared document, each with an access token",
        (false, true) => "each peer edits its own document, each with an access token",
    };
    let mode = match args.http {
        true => format!("{mode}, over the HTTP API"),
        false => mode.to_owned(),
    };
    let seconds = levels.first().map_or(0, |l| l.duration.as_secs());
    println!(
        "syncline-load ({profile} build), server {}",
        server_binary().display()
    );
    println!(
        "{cpus} CPUs available (available_parallelism); the server and this load generator share \
         them, so figures include contention between the two."
    );
    println!("mode: {mode}; {seconds} s per level; one change in flight per peer");
    println!("data dir: {}\n", scratch.data_dir().display());
    println!("{}", report::heading());
}

/// What the peers of a level talk to.
#[derive(Debug)]
enum Target {
    /// WebSocket sync at this URL (with its token, if any).
    Sync(String),
    /// The HTTP API.
    Http(syncline_tests::api::ApiClient),
}

/// A level set up and waiting for its start.
#[derive(Debug)]
enum Prepared {
    Sync(load::Prepared),
    Http(http::Prepared),
}

impl Prepared {
    async fn start(target: &Target, level: &Level, name: &str) -> Result<Self> {
        Ok(match target {
            Target::Sync(url) => Self::Sync(load::prepare(url, level, name).await?),
            Target::Http(api) => Self::Http(http::prepare(api, level).await?),
        })
    }

    async fn run(self) -> Result<load::Outcome> {
        match self {
            Self::Sync(prepared) => prepared.run().await,
            Self::Http(prepared) => prepared.run().await,
        }
    }
}

/// Runs the levels in order, printing each row; fails on the first level with a failed peer or
/// no acknowledged change.
async fn run_levels(
    server: &ServerProcess,
    target: &Target,
    levels: &[Level],
    bridge: Option<&bridge::Bridge>,
    mode: Option<&str>,
) -> Result<()> {
    let mut bridge_lines = Vec::new();
    for (index, level) in levels.iter().enumerate() {
        let before = Snapshot::take(server.addr).await?;
        let (accepted, started) = (bridge.map_or(0, bridge::Bridge::accepted), Instant::now());
        let (row, errors) = run_level(server, target, level, &format!("load{index}")).await?;
        println!("{}", row.line());
        if let Some(bridge) = bridge {
            let drained = bridge.drained(server.addr).await?;
            let after = Snapshot::take(server.addr).await?;
            let delivered = bridge.accepted() - accepted;
            let elapsed = drained - started;
            bridge_lines.push(bridge.line(level.peers, delivered, elapsed, &before, &after)?);
        }

        let failed = errors.len();
        if let Some(first) = errors.into_iter().next() {
            bail!("{failed} of {} peers failed; first: {first:#}", level.peers);
        }
        ensure!(
            !row.latencies.is_empty(),
            "no change was acknowledged with {} peers",
            level.peers
        );
    }
    println!("\n{}", report::LEGEND);
    if let Some(mode) = mode {
        println!("{}", bridge::heading(mode));
        bridge_lines.iter().for_each(|line| println!("{line}"));
        println!(
            "deliver/s: requests accepted by the receiver, from the level's start until the \
             queue was empty.\np50/p99/mean_ms: the server's time from a row's commit to its \
             acceptance (histogram bucket bounds for p50/p99)."
        );
    }
    Ok(())
}

/// One level: prepare the peers, then measure between two metrics scrapes.
async fn run_level(
    server: &ServerProcess,
    target: &Target,
    level: &Level,
    name: &str,
) -> Result<(Row, Vec<anyhow::Error>)> {
    let server_pid = server.pid().to_string();
    let prepared = Prepared::start(target, level, name)
        .await
        .with_context(|| format!("set up {} peers", level.peers))?;

    let before = Snapshot::take(server.addr).await?;
    let cpu_before = (cpu_time(&server_pid)?, cpu_time("self")?);
    let outcome = prepared.run().await?;
    let cpu_after = (cpu_time(&server_pid)?, cpu_time("self")?);
    let after = Snapshot::take(server.addr).await?;

    let row = Row {
        peers: level.peers,
        documents: level.documents(),
        latencies: outcome.latencies,
        elapsed: outcome.elapsed,
        metrics: LevelMetrics::between(&before, &after)?,
        server_cpu: cpu_after.0.saturating_sub(cpu_before.0),
        generator_cpu: cpu_after.1.saturating_sub(cpu_before.1),
    };
    Ok((row, outcome.errors))
}

/// Stops the server with SIGTERM and requires a clean exit.
async fn stop(server: ServerProcess) -> Result<()> {
    let log = server.log.clone();
    let status = server.terminate(STOP_TIMEOUT).await?;
    ensure!(
        status.success(),
        "server exited with {status} after SIGTERM; log:\n{}",
        log.lines().join("\n")
    );
    Ok(())
}

/// A fresh directory under the system temp dir for the server's database and config file,
/// removed when the run ends.
#[derive(Debug)]
struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn create() -> Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("syncline-load-{}-{nanos}", std::process::id());
        let root = std::env::temp_dir().join(name);
        std::fs::create_dir(&root).with_context(|| format!("create {}", root.display()))?;
        Ok(Self { root })
    }

    /// The server's data directory; `ServerProcess` writes its config file beside it.
    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Leftovers in the temp dir are harmless; a failure here must not hide the result.
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
