//! `syncline-loadgen`: drives any automerge-repo WebSocket sync server with protocol peers and
//! measures it, so Syncline and the servers people would otherwise use are compared on one
//! machine with one tool.
//!
//! It starts no server: the server under test runs in its own process (see
//! `benches/compare.sh`), and this one is given its URL and, for CPU time and memory, its pid.
//! Each scenario ([`scenario`]) prints one line for people and, with `--json FILE`, appends one
//! JSON record for the report script.
//!
//! Scenarios:
//! - `collab`: `--docs` documents with `--editors` editors each, every editor writing (closed
//!   loop, or `--rate` changes per second each); acknowledged changes per second, and
//!   propagation latency from an editor's change to each other editor of its document.
//! - `fanout`: one document, one writer, `--subscribers` readers; propagation latency to each.
//! - `idle`: `--connections` joined WebSockets that do nothing; server memory per connection.
//! - `documents`: `--docs` documents created, then each read back once by a fresh peer; server
//!   memory sampled every second throughout and for `--seconds` after.
//! - `cold-seed`, then `cold`: a document with a `--history-ops` text editing history is
//!   generated and uploaded; after the caller restarts the server, a fresh peer asks for it, and
//!   the time until it arrives is set beside loading it in-process (the floor).
//! - `collab-floor`: the `collab` workload through the `automerge` crate alone, in this process
//!   (no server, no `--url`).

#![allow(
    clippy::print_stdout,
    reason = "the result lines on stdout are this tool's output"
)]

mod cold;
#[path = "../cpu.rs"]
mod cpu;
mod floor;
mod history;
mod measure;
mod scenario;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use clap::{Parser, ValueEnum};

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(
    name = "syncline-loadgen",
    // A flag given twice takes its last value, so a script can override a size it shares.
    args_override_self = true,
    about = "Load generator for automerge-repo sync servers: collaboration, fan-out, idle \
             connections, many documents"
)]
pub struct Args {
    /// The server's WebSocket URL, such as ws://127.0.0.1:3030/ (every scenario but
    /// collab-floor).
    #[arg(long, default_value = "")]
    pub url: String,
    /// The server's process id, for its CPU time and memory (from /proc).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// What to run.
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// A name for the server in the output (syncline, reference, samod, ...).
    #[arg(long, default_value = "server")]
    pub label: String,
    /// Documents (collab, documents).
    #[arg(long, default_value_t = 100)]
    pub docs: usize,
    /// Editors per document (collab).
    #[arg(long, default_value_t = 10)]
    pub editors: usize,
    /// Readers of the one document (fanout).
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Open connections (idle).
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Changes per second per writer; 0 is closed loop (the next change once the last is
    /// acknowledged).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Seconds of measured load (collab, fanout), or of watching memory afterwards (documents,
    /// idle).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Bytes of filler text in each change, for a mix of small and large edits (0: a number).
    #[arg(long, default_value_t = 0)]
    pub change_bytes: usize,
    /// Documents of the collab scenario (the first ones) that start large, for a mix of small
    /// edits to small and to large documents.
    #[arg(long, default_value_t = 0)]
    pub large_docs: usize,
    /// Characters of text each large document starts with.
    #[arg(long, default_value_t = 65_536)]
    pub doc_bytes: usize,
    /// The saved history of the cold scenarios (written by cold-seed, read by cold); its id and
    /// heads go to the same path with a .json extension.
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Text operations in the cold-load history.
    #[arg(long, default_value_t = 260_000)]
    pub history_ops: usize,
    /// Operations per change in the cold-load history (keystrokes an editor commits at once).
    #[arg(long, default_value_t = 8)]
    pub ops_per_change: usize,
    /// Connections set up at once.
    #[arg(long, default_value_t = 64)]
    pub setup_parallelism: usize,
    /// Record the run under this scenario name instead of its own (a second size of a scenario).
    #[arg(long)]
    pub record_as: Option<String>,
    /// Append the result as one JSON line to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The server is Syncline: also read its storage commits from `/metrics` on the same
    /// address (collab, fanout).
    #[arg(long)]
    pub syncline_metrics: bool,
}

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Many documents, several editors each, all writing.
    Collab,
    /// One document, one writer, many readers.
    Fanout,
    /// Many connections doing nothing.
    Idle,
    /// Many documents created and read back once.
    Documents,
    /// Upload a long editing history, for `cold` after a restart.
    ColdSeed,
    /// Read the uploaded history back from a freshly started server.
    Cold,
    /// The collab workload in-process, through the automerge crate alone.
    CollabFloor,
}

impl Scenario {
    /// The name the command line and the records use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Collab => "collab",
            Self::Fanout => "fanout",
            Self::Idle => "idle",
            Self::Documents => "documents",
            Self::ColdSeed => "cold-seed",
            Self::Cold => "cold",
            Self::CollabFloor => "collab-floor",
        }
    }
}

impl Args {
    fn check(&self) -> Result<()> {
        ensure!(self.seconds > 0, "--seconds must be at least 1");
        ensure!(
            self.rate >= 0.0 && self.rate.is_finite(),
            "--rate must be 0 or more"
        );
        ensure!(
            self.setup_parallelism > 0,
            "--setup-parallelism must be at least 1"
        );
        ensure!(
            self.scenario == Scenario::CollabFloor || !self.url.is_empty(),
            "{} needs the server's --url",
            self.scenario.name()
        );
        match self.scenario {
            Scenario::Collab | Scenario::CollabFloor => ensure!(
                self.docs > 0 && self.editors > 1,
                "collab needs --docs >= 1 and --editors >= 2"
            ),
            Scenario::ColdSeed | Scenario::Cold => ensure!(
                self.history.is_some() && self.history_ops > 0 && self.ops_per_change > 0,
                "the cold scenarios need --history FILE, --history-ops >= 1 and \
                 --ops-per-change >= 1"
            ),
            Scenario::Fanout => ensure!(self.subscribers > 0, "fanout needs --subscribers >= 1"),
            Scenario::Idle => ensure!(self.connections > 0, "idle needs --connections >= 1"),
            Scenario::Documents => ensure!(self.docs > 0, "documents needs --docs >= 1"),
        }
        Ok(())
    }

    /// The measured run's length.
    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = args.check().and_then(|()| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("start the tokio runtime")?
            .block_on(scenario::run(&args))
    });
    match outcome {
        Ok(result) => {
            println!("{}", result.line());
            match &args.json {
                Some(path) => match result.append_json(path) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(error) => {
                        eprintln!("syncline-loadgen: {error:#}");
                        ExitCode::FAILURE
                    }
                },
                None => ExitCode::SUCCESS,
            }
        }
        Err(error) => {
            eprintln!("syncline-loadgen: {error:#}");
            ExitCode::FAILURE
        }
    }
}
