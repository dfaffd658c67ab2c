//! What a scenario measures, and how it is printed and recorded: latency percentiles, the
//! server's CPU time and memory from `/proc`, and one JSON record per run.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::cpu::cpu_time;

/// Latencies of one kind, in the order they were taken.
#[derive(Debug, Default, Clone)]
pub struct Latencies(pub Vec<Duration>);

impl Latencies {
    /// Nearest-rank percentiles in milliseconds: p50, p95, p99 and the maximum.
    pub fn summary(&self) -> Value {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let at = |q: f64| -> Value {
            if sorted.is_empty() {
                return Value::Null;
            }
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            json!(round(sorted[rank - 1].as_secs_f64() * 1000.0))
        };
        json!({
            "count": sorted.len(),
            "p50_ms": at(0.50),
            "p95_ms": at(0.95),
            "p99_ms": at(0.99),
            "max_ms": at(1.0),
        })
    }
}

/// `value` to two decimals, as the records carry figures.
pub fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// A duration in seconds, to two decimals.
pub fn seconds(d: Duration) -> f64 {
    round(d.as_secs_f64())
}

/// The server's CPU time and memory now, if its pid was given.
pub fn reading(server: Option<ServerProc>) -> Result<Option<Reading>> {
    server.map(|s| s.read()).transpose()
}

/// The server process as `/proc` shows it.
#[derive(Debug, Clone, Copy)]
pub struct ServerProc {
    pid: u32,
}

/// One reading of the server process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    /// User plus system CPU time so far.
    pub cpu: Duration,
    /// Resident memory now, KiB.
    pub rss_kib: u64,
    /// Peak resident memory so far, KiB.
    pub peak_kib: u64,
}

impl ServerProc {
    /// The server with process id `pid`, if one was given.
    pub fn new(pid: Option<u32>) -> Option<Self> {
        pid.map(|pid| Self { pid })
    }

    /// Reads CPU time and memory now.
    pub fn read(&self) -> Result<Reading> {
        let pid = self.pid.to_string();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("read /proc/{pid}/status (is the server running?)"))?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse().ok())
                .unwrap_or(0)
        };
        Ok(Reading {
            cpu: cpu_time(&pid)?,
            rss_kib: field("VmRSS:"),
            peak_kib: field("VmHWM:"),
        })
    }
}

/// Readings before and after a measured phase, as JSON (nulls without a pid).
pub fn server_figures(before: Option<Reading>, after: Option<Reading>, wall: Duration) -> Value {
    match (before, after) {
        (Some(before), Some(after)) => {
            let cpu = after.cpu.saturating_sub(before.cpu).as_secs_f64();
            json!({
                "cpu_s": round(cpu),
                "cpu_percent": round(100.0 * cpu / wall.as_secs_f64().max(1e-9)),
                "rss_before_kib": before.rss_kib,
                "rss_after_kib": after.rss_kib,
                "peak_kib": after.peak_kib,
            })
        }
        _ => Value::Null,
    }
}

/// The outcome of one scenario run.
#[derive(Debug)]
pub struct RunResult {
    /// Everything measured, as recorded.
    pub record: Value,
}

impl RunResult {
    /// One line for people.
    pub fn line(&self) -> String {
        let r = &self.record;
        let server = &r["server"];
        let mut parts = vec![format!(
            "{} {}",
            r["label"].as_str().unwrap_or("?"),
            r["scenario"].as_str().unwrap_or("?")
        )];
        if let Some(rate) = r["acked_per_s"].as_f64() {
            parts.push(format!("acked/s {rate:.0}"));
        }
        for (name, key) in [("ack", "ack"), ("propagation", "propagation")] {
            if r[key]["count"].as_u64().is_some_and(|c| c > 0) {
                parts.push(format!(
                    "{name} p50/p95/p99/max ms {}/{}/{}/{}",
                    r[key]["p50_ms"], r[key]["p95_ms"], r[key]["p99_ms"], r[key]["max_ms"]
                ));
            }
        }
        if let Some(per) = r["kib_per_connection"].as_f64() {
            parts.push(format!("{per:.1} KiB/connection"));
        }
        if let Some(missed) = r["missed"].as_u64().filter(|m| *m > 0) {
            parts.push(format!("missed {missed}"));
        }
        if let Some(errors) = r["errors"].as_u64().filter(|e| *e > 0) {
            parts.push(format!("errors {errors} (first: {})", r["first_error"]));
        }
        if !server.is_null() {
            parts.push(format!(
                "server cpu {}% peak {} MiB",
                server["cpu_percent"],
                server["peak_kib"].as_u64().unwrap_or(0) / 1024
            ));
        }
        if let Some(cpu) = r["generator_cpu_percent"].as_f64() {
            parts.push(format!("loadgen cpu {cpu}%"));
        }
        parts.join("; ")
    }

    /// Appends the record as one JSON line.
    pub fn append_json(&self, path: &Path) -> Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
        writeln!(file, "{}", self.record).with_context(|| format!("write {}", path.display()))
    }
}
