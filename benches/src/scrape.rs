//! Reading the server's `/metrics` around a level, and what group commit did in between.
//!
//! A [`Snapshot`] is taken just before the peers start and again after the last one stopped;
//! [`LevelMetrics::between`] subtracts the two. Counters and histograms only grow, so the
//! difference is exactly what the level caused (setup traffic happens before the first
//! snapshot). A metric the server no longer exports is an error rather than a zero, so a
//! renamed metric cannot silently empty a column.

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use syncline_tests::server::http_get;

/// Every sample of one `/metrics` scrape, keyed by name and labels as written
/// (`syncline_commit_batch_writes_bucket{le="4.0"}`).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    series: HashMap<String, f64>,
}

impl Snapshot {
    /// Scrapes the server at `addr`.
    pub async fn take(addr: SocketAddr) -> Result<Self> {
        let text = http_get(addr, "/metrics")
            .await
            .context("scrape /metrics")?;
        Ok(Self::parse(&text))
    }

    /// Parses the Prometheus text format; comment and malformed lines are skipped.
    pub fn parse(text: &str) -> Self {
        let series = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (key, value) = line.rsplit_once(' ')?;
                Some((key.trim().to_owned(), value.parse().ok()?))
            })
            .collect();
        Self { series }
    }

    /// The value of an unlabelled counter or gauge.
    fn value(&self, name: &str) -> Result<f64> {
        self.series
            .get(name)
            .copied()
            .with_context(|| format!("the server exports no metric {name}"))
    }

    /// The histogram exported as `<name>_bucket`, `<name>_sum` and `<name>_count`.
    pub fn histogram(&self, name: &str) -> Result<Histogram> {
        let prefix = format!("{name}_bucket{{");
        let mut buckets: Vec<(f64, f64)> = self
            .series
            .iter()
            .filter_map(|(key, &count)| {
                let labels = key.strip_prefix(&prefix)?;
                Some((parse_le(labels)?, count))
            })
            .collect();
        if buckets.is_empty() {
            bail!("the server exports no histogram {name}");
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(Histogram {
            buckets,
            sum: self.value(&format!("{name}_sum"))?,
            count: self.value(&format!("{name}_count"))?,
        })
    }
}

/// The upper bound in a bucket's label set, such as `le="4.0"}` or `le="+Inf"}`.
fn parse_le(labels: &str) -> Option<f64> {
    let start = labels.find("le=\"")? + 4;
    let rest = &labels[start..];
    let bound = &rest[..rest.find('"')?];
    match bound {
        "+Inf" => Some(f64::INFINITY),
        _ => bound.parse().ok(),
    }
}

/// A Prometheus histogram: cumulative bucket counts by upper bound, sorted, then sum and count.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

impl Histogram {
    /// What was observed after `earlier` was taken. Both come from the same server, so their
    /// bucket bounds match.
    pub fn since(&self, earlier: &Self) -> Self {
        let buckets = self
            .buckets
            .iter()
            .map(|&(bound, count)| {
                let before = earlier
                    .buckets
                    .iter()
                    .find(|(b, _)| *b == bound)
                    .map_or(0.0, |(_, c)| *c);
                (bound, count - before)
            })
            .collect();
        Self {
            buckets,
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    /// Mean observation, or `None` without observations.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// Upper bound of the bucket holding the `q` quantile: the true value is at most this (and
    /// above the previous bound). Infinite if it lies past the last finite bucket.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        self.buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= rank)
            .map(|(bound, _)| *bound)
    }
}

/// What the server did during one level, from two snapshots.
#[derive(Debug, Clone)]
pub struct LevelMetrics {
    /// Storage transactions committed.
    pub commits: f64,
    /// Changes made durable.
    pub changes_committed: f64,
    /// Messages the server sent to peers.
    pub messages_sent: f64,
    /// Document writes folded into each storage transaction.
    pub batch_writes: Histogram,
    /// Seconds each storage commit took, fsync included.
    pub commit_seconds: Histogram,
}

impl LevelMetrics {
    /// The difference between the snapshot before a level and the one after it.
    pub fn between(before: &Snapshot, after: &Snapshot) -> Result<Self> {
        let delta = |name: &str| -> Result<f64> { Ok(after.value(name)? - before.value(name)?) };
        let histogram = |name: &str| -> Result<Histogram> {
            Ok(after.histogram(name)?.since(&before.histogram(name)?))
        };
        Ok(Self {
            commits: delta("syncline_commits_total")?,
            changes_committed: delta("syncline_changes_committed_total")?,
            messages_sent: delta("syncline_messages_sent_total")?,
            batch_writes: histogram("syncline_commit_batch_writes")?,
            commit_seconds: histogram("syncline_commit_duration_seconds")?,
        })
    }

    /// Mean changes per storage transaction.
    pub fn changes_per_commit(&self) -> Option<f64> {
        (self.commits > 0.0).then(|| self.changes_committed / self.commits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
# TYPE syncline_commits counter
syncline_commits_total 2
syncline_changes_committed_total 2
syncline_messages_sent_total 10
syncline_commit_batch_writes_sum 2.0
syncline_commit_batch_writes_count 2
syncline_commit_batch_writes_bucket{le=\"1.0\"} 2
syncline_commit_batch_writes_bucket{le=\"2.0\"} 2
syncline_commit_batch_writes_bucket{le=\"4.0\"} 2
syncline_commit_batch_writes_bucket{le=\"+Inf\"} 2
syncline_commit_duration_seconds_sum 0.001
syncline_commit_duration_seconds_count 2
syncline_commit_duration_seconds_bucket{le=\"0.001\"} 2
syncline_commit_duration_seconds_bucket{le=\"+Inf\"} 2
";

    const AFTER: &str = "\
syncline_commits_total 12
syncline_changes_committed_total 32
syncline_messages_sent_total 50
syncline_commit_batch_writes_sum 32.0
syncline_commit_batch_writes_count 12
syncline_commit_batch_writes_bucket{le=\"1.0\"} 3
syncline_commit_batch_writes_bucket{le=\"2.0\"} 4
syncline_commit_batch_writes_bucket{le=\"4.0\"} 12
syncline_commit_batch_writes_bucket{le=\"+Inf\"} 12
syncline_commit_duration_seconds_sum 0.003
syncline_commit_duration_seconds_count 12
syncline_commit_duration_seconds_bucket{le=\"0.001\"} 12
syncline_commit_duration_seconds_bucket{le=\"+Inf\"} 12
";

    /// The difference of two scrapes counts only what happened between them.
    #[test]
    fn level_metrics_subtract_the_earlier_scrape() -> Result<()> {
        let level = LevelMetrics::between(&Snapshot::parse(BEFORE), &Snapshot::parse(AFTER))?;

        assert_eq!(level.commits, 10.0);
        assert_eq!(level.changes_per_commit(), Some(3.0));
        assert_eq!(level.batch_writes.count, 10.0);
        assert_eq!(level.batch_writes.mean(), Some(3.0));
        // One batch of 1, one of 2, eight of 3 or 4 writes.
        assert_eq!(level.batch_writes.quantile_bound(0.1), Some(1.0));
        assert_eq!(level.batch_writes.quantile_bound(0.5), Some(4.0));
        assert_eq!(level.batch_writes.quantile_bound(0.99), Some(4.0));
        Ok(())
    }

    /// A metric the server does not export is reported, not read as zero.
    #[test]
    fn a_missing_metric_is_an_error() {
        let result = LevelMetrics::between(&Snapshot::default(), &Snapshot::parse(AFTER));
        assert!(result.is_err());
    }
}
