//! `--bridge state|events`: the same load, with a webhook bridge delivering every document to a
//! fast receiver on loopback, to measure deliveries per second and commit-to-delivery latency.
//!
//! After each level the benchmark waits until the bridge's queue is empty (the admin API's
//! `queued` is 0), then reports how many requests the receiver accepted, how fast, and the
//! server's own commit-to-delivery histogram for the level.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use syncline_tests::receiver::{Receiver, Reply};
use syncline_tests::server::http_get;
use tokio::time::Instant;

use crate::scrape::{Histogram, Snapshot};

/// How long the queue may take to drain after a level.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

/// A receiver that accepts everything, and the bridge table that points at it.
pub struct Bridge {
    receiver: Receiver,
    mode: String,
}

impl Bridge {
    /// Starts the receiver.
    pub async fn start(mode: &str) -> Result<Self> {
        if mode != "state" && mode != "events" {
            bail!("--bridge takes state or events, not {mode:?}");
        }
        Ok(Self {
            receiver: Receiver::start(|_| Reply::Status(200)).await?,
            mode: mode.to_owned(),
        })
    }

    /// The `[[bridge]]` table for the server's config.
    pub fn config(&self) -> String {
        format!(
            "[[bridge]]\nname = \"bench\"\nkind = \"webhook\"\nurl = \"{}\"\ndocuments = \"*\"\n\
             secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\nmode = \"{}\"\nconcurrency = 32\n",
            self.receiver.url(),
            self.mode
        )
    }

    /// Requests the receiver has accepted so far.
    pub fn accepted(&self) -> usize {
        self.receiver.deliveries().len()
    }

    /// Waits until the bridge's queue is empty; returns when it was.
    pub async fn drained(&self, server: SocketAddr) -> Result<Instant> {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        loop {
            let report: serde_json::Value =
                serde_json::from_str(&http_get(server, "/admin/bridges").await?)?;
            let queued = report["bridges"][0]["queued"].as_u64().context("queued")?;
            if queued == 0 {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                bail!("{queued} deliveries still queued after {DRAIN_TIMEOUT:?}");
            }
            // Polling the admin API, bounded by the deadline above.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One line for a level.
    pub fn line(
        &self,
        peers: usize,
        accepted: usize,
        elapsed: Duration,
        before: &Snapshot,
        after: &Snapshot,
    ) -> Result<String> {
        let name = "syncline_bridge_delivery_seconds";
        let latency = after.histogram(name)?.since(&before.histogram(name)?);
        let ms = |h: &Histogram, q| {
            h.quantile_bound(q)
                .map_or("-".to_owned(), |s| format!("<={:.0}", s * 1000.0))
        };
        Ok(format!(
            "{peers:>5} {accepted:>9} {:>10.0} {:>10} {:>10} {:>9.1}",
            accepted as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
            ms(&latency, 0.50),
            ms(&latency, 0.99),
            latency.mean().map_or(0.0, |s| s * 1000.0),
        ))
    }
}

/// Column headings for [`Bridge::line`].
pub fn heading(mode: &str) -> String {
    format!(
        "\nwebhook bridge ({mode} mode) to a receiver on loopback, until its queue is empty:\n\
         {:>5} {:>9} {:>10} {:>10} {:>10} {:>9}",
        "peers", "delivered", "deliver/s", "p50_ms", "p99_ms", "mean_ms"
    )
}
