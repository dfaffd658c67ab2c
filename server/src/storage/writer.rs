//! The single storage writer: group commit on its own OS thread.
//!
//! Document workers queue writes on a bounded channel and wait for their answer. The writer
//! blocks for the first queued write, takes whatever else is already queued (up to a batch
//! limit) without waiting, applies the lot in one durable transaction, and answers every waiter
//! once the commit has returned. There is no timer: the next batch starts as soon as the
//! previous commit ends, so batches grow exactly as fast as writes arrive during a commit, and
//! one fsync covers them all. The thread is a plain OS thread because redb commits block.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info};

use super::StorageError;
use super::apply::{Outcome, apply_batch};
use super::types::DocumentWrite;
use crate::metrics::Metrics;

/// Tuning of the storage writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterConfig {
    /// Writes that may wait in the queue; past it `Writer::write` waits for room, so a flood of
    /// writers slows down instead of growing memory.
    pub queue_capacity: usize,
    /// Most writes folded into one transaction, which bounds its size and commit time.
    pub max_batch_writes: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 4096,
            max_batch_writes: 1024,
        }
    }
}

/// The answer to a committed write: how large a transaction it rode in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitReceipt {
    /// Writes applied in the same transaction, this one included.
    pub batch_writes: usize,
    /// Changes newly logged by the whole transaction.
    pub batch_changes: usize,
    /// Changes of this write that were new; the others were already logged and skipped.
    pub new_changes: usize,
}

type Reply = oneshot::Sender<Result<CommitReceipt, StorageError>>;

enum Command {
    /// Boxed: a write is large, and the queue holds many commands.
    Write(Box<DocumentWrite>, Reply),
    /// Close the queue: everything queued before this is still committed.
    Shutdown,
}

/// A cloneable handle for queueing writes to the storage writer.
///
/// The writer thread ends after `shutdown`, or once every clone is dropped; either way it
/// commits and answers every write it had accepted first.
#[derive(Debug, Clone)]
pub struct Writer {
    commands: mpsc::Sender<Command>,
    /// Closed (its sender dropped) when the writer thread ends.
    stopped: watch::Receiver<()>,
}

impl Writer {
    /// Starts the writer thread. If the OS refuses a thread, the failure is logged and every
    /// write fails with `StorageError::WriterStopped`.
    pub(super) fn start(
        db: Arc<redb::Database>,
        metrics: Arc<Metrics>,
        config: WriterConfig,
    ) -> Self {
        let (commands, queue) = mpsc::channel(config.queue_capacity.max(1));
        let (stopped_sender, stopped) = watch::channel(());
        let max_batch = config.max_batch_writes.max(1);
        let spawned = std::thread::Builder::new()
            .name("storage-writer".into())
            .spawn(move || {
                // Dropped last, after `run` has released the database, even on a panic: this is
                // what `closed` waits for.
                let _stopped = stopped_sender;
                run(db, metrics, queue, max_batch);
            });
        if let Err(error) = spawned {
            error!(
                %error,
                "cannot start the storage writer; every write will fail"
            );
        }
        Self { commands, stopped }
    }

    /// Queues the write and resolves once the transaction that holds it is durably committed.
    ///
    /// Waits for room while the queue is full. Dropping the future does not withdraw a write
    /// that was already queued; it may still be committed. On a failed commit every write of
    /// the batch gets the same error, and the writer carries on with later writes.
    pub async fn write(&self, write: DocumentWrite) -> Result<CommitReceipt, StorageError> {
        self.queue(write).await?.await
    }

    /// Queues the write and returns once it is in the queue, so the caller can carry on and
    /// await the commit later. Waits for room while the queue is full.
    pub async fn queue(&self, write: DocumentWrite) -> Result<PendingCommit, StorageError> {
        let (reply, answer) = oneshot::channel();
        let queued = self
            .commands
            .send(Command::Write(Box::new(write), reply))
            .await;
        queued.map_err(|_| StorageError::WriterStopped)?;
        Ok(PendingCommit(answer))
    }

    /// Stops the writer for every clone and waits for its thread to end.
    ///
    /// Every write queued before this call is committed and answered. Once the writer reaches
    /// the request it closes the queue: from then on `write` and `queue` fail with
    /// `StorageError::WriterStopped` (a write that slipped in just before is still committed).
    pub async fn shutdown(self) {
        // A send error means the writer has stopped already, which is what was asked for.
        let _ = self.commands.send(Command::Shutdown).await;
        self.closed().await;
    }

    /// Resolves once the writer thread has ended and released the database. As this handle
    /// keeps the queue open, that takes a `shutdown` from some clone.
    pub async fn closed(&self) {
        let mut stopped = self.stopped.clone();
        while stopped.changed().await.is_ok() {}
    }
}

/// A queued write's outcome: resolves once the transaction holding it has committed (or failed).
/// Dropping it does not withdraw the write.
#[derive(Debug)]
#[must_use = "a queued write is only known to be durable once this resolves to Ok"]
pub struct PendingCommit(oneshot::Receiver<Result<CommitReceipt, StorageError>>);

impl Future for PendingCommit {
    type Output = Result<CommitReceipt, StorageError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A dropped reply means the writer thread ended without answering (it panicked).
        let answer = ready!(Pin::new(&mut self.0).poll(cx));
        Poll::Ready(answer.unwrap_or(Err(StorageError::WriterStopped)))
    }
}

/// The writer thread: one batch, one transaction, one commit, until the queue is closed and
/// empty. Owns its database handle so that it is released before the thread reports its end.
fn run(
    db: Arc<redb::Database>,
    metrics: Arc<Metrics>,
    mut queue: mpsc::Receiver<Command>,
    max_batch: usize,
) {
    info!(max_batch, "storage writer started");
    while let Some(batch) = next_batch(&mut queue, max_batch) {
        let waiting = batch.len() + queue.len();
        metrics.storage_queue_depth.observe(waiting as f64);
        commit(&db, &metrics, batch);
    }
    info!("storage writer stopped");
}

/// Blocks for the first write, then takes what else is queued without waiting. `None` once the
/// queue is closed (by `Shutdown` or by every sender dropping) and empty.
fn next_batch(
    queue: &mut mpsc::Receiver<Command>,
    max_batch: usize,
) -> Option<Vec<(DocumentWrite, Reply)>> {
    let mut batch = Vec::new();
    while batch.is_empty() {
        let command = queue.blocking_recv()?;
        accept(queue, command, &mut batch);
    }
    while batch.len() < max_batch {
        let Ok(command) = queue.try_recv() else {
            break;
        };
        accept(queue, command, &mut batch);
    }
    Some(batch)
}

fn accept(
    queue: &mut mpsc::Receiver<Command>,
    command: Command,
    batch: &mut Vec<(DocumentWrite, Reply)>,
) {
    match command {
        Command::Write(write, reply) => batch.push((*write, reply)),
        // Refuses new sends; what is already queued is still received, then `None`.
        Command::Shutdown => queue.close(),
    }
}

/// Commits one batch and answers each of its writers.
fn commit(db: &redb::Database, metrics: &Metrics, batch: Vec<(DocumentWrite, Reply)>) {
    let started = Instant::now();
    let (writes, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();

    match apply_batch(db, &writes, now_ms()) {
        Ok(outcomes) => {
            let totals = Totals::of(&outcomes);
            totals.record(metrics, started.elapsed());
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                // A writer that stopped waiting has nobody to tell.
                let _ = reply.send(totals.answer(outcome));
            }
        }
        Err(error) => {
            error!(
                writes = replies.len(),
                %error,
                "storage commit failed; every write in the batch fails and the writer carries on"
            );
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

/// The size of one committed transaction.
struct Totals {
    writes: usize,
    changes: usize,
    compactions: u64,
}

impl Totals {
    fn of(outcomes: &[Outcome]) -> Self {
        let mut totals = Self {
            writes: 0,
            changes: 0,
            compactions: 0,
        };
        for outcome in outcomes {
            if let Outcome::Applied {
                new_changes,
                compacted,
            } = outcome
            {
                totals.writes += 1;
                totals.changes += new_changes;
                totals.compactions += u64::from(*compacted);
            }
        }
        totals
    }

    fn record(&self, metrics: &Metrics, elapsed: Duration) {
        metrics.commits.inc();
        metrics.commit_batch_writes.observe(self.writes as f64);
        metrics.commit_batch_changes.observe(self.changes as f64);
        metrics.commit_seconds.observe(elapsed.as_secs_f64());
        metrics.changes_committed.inc_by(self.changes as u64);
        metrics.compactions.inc_by(self.compactions);
        let elapsed_us = elapsed.as_micros();
        debug!(
            writes = self.writes,
            changes = self.changes,
            elapsed_us,
            "storage batch committed"
        );
    }

    fn answer(&self, outcome: Outcome) -> Result<CommitReceipt, StorageError> {
        match outcome {
            Outcome::Applied { new_changes, .. } => Ok(CommitReceipt {
                batch_writes: self.writes,
                batch_changes: self.changes,
                new_changes,
            }),
            Outcome::Refused(error) => Err(error),
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch; 0 if the clock is before it.
fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use redb::backends::InMemoryBackend;
    use redb::{BackendError, StorageBackend};
    use syncline_shared::ids::DocumentId;

    use super::*;
    use crate::storage::tables;
    use crate::storage::types::NewChange;

    /// An in-memory database file whose fsync fails while `failing` is set.
    #[derive(Debug, Default)]
    struct FlakyDisk {
        inner: InMemoryBackend,
        failing: Arc<AtomicBool>,
    }

    impl StorageBackend for FlakyDisk {
        fn len(&self) -> Result<u64, BackendError> {
            self.inner.len()
        }

        fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendError> {
            self.inner.read(offset, out)
        }

        fn set_len(&self, len: u64) -> Result<(), BackendError> {
            self.inner.set_len(len)
        }

        fn sync_data(&self) -> Result<(), BackendError> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("injected fsync failure").into());
            }
            self.inner.sync_data()
        }

        fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
            self.inner.write(offset, data)
        }
    }

    fn one_change(n: u8) -> DocumentWrite {
        let change = NewChange {
            seq: 0,
            hash: [n; 32],
            received_at_ms: 1,
            author: vec![1],
            bytes: vec![n],
        };
        DocumentWrite {
            changes: vec![change],
            ..DocumentWrite::new(DocumentId::from_bytes([n; 16]))
        }
    }

    /// A failed commit fails every write of its batch, and the writer goes on answering.
    #[tokio::test]
    async fn failed_commit_fails_its_whole_batch() -> Result<(), Box<dyn std::error::Error>> {
        // 1. A working database with its tables.
        let disk = FlakyDisk::default();
        let failing = disk.failing.clone();
        let db = redb::Builder::new().create_with_backend(disk)?;
        let txn = db.begin_write()?;
        tables::create_all(&txn)?;
        txn.commit()?;
        let metrics = Arc::new(Metrics::new());
        let writer = Writer::start(Arc::new(db), metrics.clone(), WriterConfig::default());
        writer.write(one_change(1)).await?;

        // 2. The disk fails: every queued write gets the commit's error, none is counted.
        failing.store(true, Ordering::SeqCst);
        let mut pending = Vec::new();
        for n in 2..6 {
            pending.push(writer.queue(one_change(n)).await?);
        }
        for commit in pending {
            let failed = commit.await;
            assert!(failed.is_err() && !matches!(failed, Err(StorageError::WriterStopped)));
        }
        assert_eq!(metrics.commits.get(), 1);

        // 3. The writer still answers: redb refuses a database after an IO error until it is
        //    reopened, so the answer is an error too, but nobody hangs.
        failing.store(false, Ordering::SeqCst);
        let after = writer.write(one_change(7)).await;
        assert!(after.is_err() && !matches!(after, Err(StorageError::WriterStopped)));
        writer.shutdown().await;
        Ok(())
    }
}
