//! Purging deleted documents once their retention period is over.
//!
//! Deleting a document keeps its changes for `documents.purge_deleted_after_ms`, so a mistaken
//! delete can still be recovered from the database file by an operator; after that one write
//! through the storage writer removes them. The tombstone row stays for ever, so the id keeps
//! being refused to peers that still hold a copy.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::storage::{DocumentWrite, Lifecycle, Storage, Writer};

/// Starts the task that purges deleted documents `retention` after their deletion. It looks
/// for due documents every quarter of the retention period (between 50 ms and a minute).
pub fn start(
    storage: Storage,
    writer: Writer,
    metrics: Arc<Metrics>,
    retention: Duration,
    stop: CancellationToken,
) {
    let interval = (retention / 4).clamp(Duration::from_millis(50), Duration::from_secs(60));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = stop.cancelled() => return,
            }
            purge_due(&storage, &writer, &metrics, retention).await;
        }
    });
}

async fn purge_due(storage: &Storage, writer: &Writer, metrics: &Metrics, retention: Duration) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let before = now_ms.saturating_sub(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX));
    let storage = storage.clone();
    let due = match tokio::task::spawn_blocking(move || storage.purge_due(before)).await {
        Ok(Ok(due)) => due,
        Ok(Err(err)) => return warn!(error = %err, "cannot list deleted documents to purge"),
        Err(err) => return warn!(error = %err, "purge listing task failed"),
    };
    for id in due {
        let mut write = DocumentWrite::new(id);
        write.lifecycle = Some(Lifecycle::Purge);
        match writer.write(write).await {
            Ok(_) => {
                metrics.documents_purged.inc();
                info!(doc = %id, "deleted document purged; its tombstone stays");
            }
            Err(err) => warn!(doc = %id, error = %err, "cannot purge a deleted document"),
        }
    }
}
