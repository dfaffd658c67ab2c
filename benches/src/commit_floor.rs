//! `syncline-commit-floor`: the durable commit rate of redb itself on this disk, one small write
//! per transaction, for comparing with the commits a Syncline server makes under load (its group
//! commit folds many changes into each). Writes into a fresh directory under `--dir`.

#![allow(
    clippy::print_stdout,
    reason = "the result line on stdout is this tool's output"
)]

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use redb::TableDefinition;

const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("floor");

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(
    name = "syncline-commit-floor",
    about = "redb's durable single-write commit rate"
)]
struct Args {
    /// Seconds to commit for.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Directory to create the scratch database in (the disk under test).
    #[arg(long, default_value = "target")]
    dir: PathBuf,
    /// Append the result as one JSON line to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir).with_context(|| format!("create {}", args.dir.display()))?;
    let scratch = tempfile::tempdir_in(&args.dir).context("scratch directory")?;
    let db = redb::Database::create(scratch.path().join("floor.redb"))?;
    let value = [7u8; 100];
    let started = Instant::now();
    let end = started + Duration::from_secs(args.seconds.max(1));
    let mut commits: u64 = 0;
    while Instant::now() < end {
        // Durability::Immediate, redb's default: commit returns after the fsync.
        let txn = db.begin_write()?;
        txn.open_table(TABLE)?.insert(commits, value.as_slice())?;
        txn.commit()?;
        commits += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_second = (commits as f64 / elapsed).round();
    let mean_ms = (100_000.0 * elapsed / commits.max(1) as f64).round() / 100.0;
    println!("redb durable single-write commits: {per_second}/s, {mean_ms} ms each");
    if let Some(path) = &args.json {
        let record = serde_json::json!({
            "label": "redb", "scenario": "commit_floor",
            "commits_per_s": per_second, "commit_ms": mean_ms, "seconds": args.seconds,
        });
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(file, "{record}")?;
    }
    Ok(())
}
