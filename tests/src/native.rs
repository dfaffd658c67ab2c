//! Helpers for suites that drive the native client library against the real server.

use std::time::Duration;

use anyhow::{Context, Result};
use automerge::ChangeHash;
use syncline_client::{BackoffConfig, ClientConfig, Document};
use syncline_shared::json::{JsonError, JsonPath, set_path};
use tokio::time::Instant;

/// A client configuration that reconnects within a fraction of a second, so restarts in tests
/// cost little. Also routes the client's logs to the test output (`RUST_LOG` filters them).
pub fn fast_config() -> ClientConfig {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("syncline_client=info")),
        )
        .try_init();
    ClientConfig {
        backoff: BackoffConfig {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(500),
        },
        ..ClientConfig::default()
    }
}

/// A change that sets `path` (dotted or JSON Pointer) to `value`, for `Document::change`.
pub fn set(
    path: &str,
    value: serde_json::Value,
) -> impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), JsonError> {
    move |tx| set_path(tx, &path.parse::<JsonPath>()?, &value)
}

/// Heads in a stable order, for comparing replicas.
pub fn sorted(mut heads: Vec<ChangeHash>) -> Vec<ChangeHash> {
    heads.sort();
    heads
}

/// Waits, at most `timeout`, until every replica is in step with a server, all hold the same
/// heads, and `done` holds; re-checks whenever any of them changes.
pub async fn settle(docs: &[&Document], timeout: Duration, done: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut events: Vec<_> = docs.iter().map(|doc| doc.subscribe()).collect();
    let report = || {
        docs.iter()
            .map(|doc| format!("{:?}: {}", doc.status(), doc.to_json()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    loop {
        for doc in docs {
            let left = deadline.saturating_duration_since(Instant::now());
            doc.wait_synced(left).await.with_context(report)?;
        }
        let first = sorted(docs[0].heads());
        if docs.iter().all(|doc| sorted(doc.heads()) == first) && done() {
            return Ok(());
        }
        let next = futures_util::future::select_all(events.iter_mut().map(|e| Box::pin(e.next())));
        tokio::time::timeout_at(deadline, next)
            .await
            .with_context(|| format!("the replicas did not settle:\n{}", report()))?;
    }
}
