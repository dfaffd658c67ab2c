//! The printed table: one row per level, written as soon as the level ends.

use std::time::Duration;

use crate::scrape::LevelMetrics;

/// Everything one row shows.
#[derive(Debug)]
pub struct Row {
    /// Concurrent peers.
    pub peers: usize,
    /// Documents they edited.
    pub documents: usize,
    /// Acknowledged changes' latencies.
    pub latencies: Vec<Duration>,
    /// From the start to the last acknowledgement.
    pub elapsed: Duration,
    /// What the server's metrics say happened.
    pub metrics: LevelMetrics,
    /// CPU time the server used during the level.
    pub server_cpu: Duration,
    /// CPU time this load generator used during the level.
    pub generator_cpu: Duration,
}

/// Column headings, matching [`Row::line`].
pub fn heading() -> String {
    format!(
        "{:>5} {:>5} {:>7} {:>8} {:>7} {:>7} {:>7} {:>7} {:>10} {:>27} {:>9} {:>8} {:>7} {:>7}",
        "peers",
        "docs",
        "acked",
        "acked/s",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "commits",
        "chg/commit",
        "writes/commit(mean,p50,p99)",
        "commit_ms",
        "sent/chg",
        "srv_cpu",
        "gen_cpu",
    )
}

impl Row {
    /// The row, aligned under [`heading`].
    pub fn line(&self) -> String {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let acked = sorted.len();
        let seconds = self.elapsed.as_secs_f64();
        let m = &self.metrics;
        let writes = format!(
            "{},<={},<={}",
            fixed(m.batch_writes.mean(), 1),
            fixed(m.batch_writes.quantile_bound(0.50), 0),
            fixed(m.batch_writes.quantile_bound(0.99), 0),
        );
        let commit_ms = m.commit_seconds.mean().map(|s| s * 1000.0);
        let sent_per_change = (acked > 0).then(|| m.messages_sent / acked as f64);
        format!(
            "{:>5} {:>5} {:>7} {:>8} {:>7} {:>7} {:>7} {:>7} {:>10} {:>27} {:>9} {:>8} {:>7} {:>7}",
            self.peers,
            self.documents,
            acked,
            fixed((seconds > 0.0).then(|| acked as f64 / seconds), 0),
            millis(percentile(&sorted, 0.50)),
            millis(percentile(&sorted, 0.99)),
            millis(sorted.last().copied()),
            m.commits,
            fixed(m.changes_per_commit(), 1),
            writes,
            fixed(commit_ms, 2),
            fixed(sent_per_change, 1),
            share(self.server_cpu, self.elapsed),
            share(self.generator_cpu, self.elapsed),
        )
    }
}

/// Notes under the table explaining the columns that are not self-evident.
pub const LEGEND: &str = "\
acked/s: acknowledged changes per second over all peers, start to last acknowledgement.
p50/p99/max_ms: time from making a change to the server advertising it as durable.
commits, chg/commit: storage transactions in the level and mean changes made durable in each.
writes/commit: document writes per transaction, mean, and the upper bounds of
  the histogram buckets holding p50 and p99.
commit_ms: mean storage commit time, fsync included. sent/chg: server messages per change.
srv_cpu, gen_cpu: CPU used by the server and by this generator, in % of one core.";

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied()
}

fn millis(value: Option<Duration>) -> String {
    fixed(value.map(|d| d.as_secs_f64() * 1000.0), 2)
}

fn fixed(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_infinite() => "inf".to_owned(),
        Some(v) => format!("{v:.decimals$}"),
        None => "-".to_owned(),
    }
}

fn share(cpu: Duration, wall: Duration) -> String {
    let percent = (!wall.is_zero()).then(|| 100.0 * cpu.as_secs_f64() / wall.as_secs_f64());
    format!("{}%", fixed(percent, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nearest rank: p50 of four values is the second, p99 the fourth.
    #[test]
    fn percentile_uses_the_nearest_rank() {
        let ms = |n| Duration::from_millis(n);
        let sorted = [ms(1), ms(2), ms(3), ms(4)];

        assert_eq!(percentile(&sorted, 0.5), Some(ms(2)));
        assert_eq!(percentile(&sorted, 0.99), Some(ms(4)));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
