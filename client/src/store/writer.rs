//! The store's single writer: every queued write in one redb transaction, on its own thread.
//!
//! Callers queue a [`DocumentWrite`] while they hold the document's lock, so the writes of one
//! document reach the disk in the order its replica made them, and wait for the answer after
//! letting go of the lock. The thread takes the first write, then whatever else is already
//! queued, commits once (redb's default durability: the commit returns after fsync) and answers
//! them all. The queue is unbounded, but each write belongs to a caller awaiting its answer, so it
//! never holds more than one write per concurrent caller.

use std::sync::Arc;

use automerge::ChangeHash;
use redb::{Database, ReadableTable};
use syncline_shared::ids::{DocumentId, StorageId};
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use super::{
    ACKNOWLEDGED, CHANGES, DOCUMENTS, DocKey, SNAPSHOTS, StoreError, encode_heads, seq_range,
    split_snapshot,
};

/// Most writes folded into one transaction.
const MAX_BATCH: usize = 256;

/// Everything one document needs written.
#[derive(Debug)]
pub(crate) struct DocumentWrite {
    /// The document.
    pub doc: DocumentId,
    /// Change chunks to append, in order.
    pub changes: Vec<Vec<u8>>,
    /// New local heads; the document exists locally once any are written.
    pub local_heads: Option<Vec<ChangeHash>>,
    /// Heads a server advertised, by its storage id.
    pub acknowledged: Option<(StorageId, Vec<ChangeHash>)>,
    /// An `Automerge::save` of the replica that replaces every change row written so far.
    /// Writes are applied in queue order, so the rows present when this one is applied are
    /// exactly those queued before the replica was saved: all of them are in the snapshot.
    pub snapshot: Option<Vec<u8>>,
}

impl DocumentWrite {
    /// A write for `doc` that writes nothing yet.
    pub fn new(doc: DocumentId) -> Self {
        Self {
            doc,
            changes: Vec::new(),
            local_heads: None,
            acknowledged: None,
            snapshot: None,
        }
    }
}

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// A cloneable handle to the writer thread; the thread ends when every handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    queue: mpsc::UnboundedSender<(DocumentWrite, Reply)>,
}

/// The answer to one queued write.
pub(crate) type Pending = oneshot::Receiver<Result<(), StoreError>>;

impl Writer {
    /// Starts the writer thread.
    pub fn start(db: Arc<Database>) -> Result<Writer, StoreError> {
        let (queue, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("syncline-store".to_owned())
            .spawn(move || run(&db, rx))
            .map_err(|error| StoreError::Corrupt(format!("cannot start writer thread: {error}")))?;
        Ok(Writer { queue })
    }

    /// Queues a write without waiting; await the returned answer outside any lock.
    pub fn queue(&self, write: DocumentWrite) -> Pending {
        let (reply, answer) = oneshot::channel();
        // A send error drops `reply`, so the answer reads as a stopped writer.
        let _ = self.queue.send((write, reply));
        answer
    }
}

/// Waits for a queued write to be durable.
pub(crate) async fn durable(pending: Pending) -> Result<(), StoreError> {
    pending.await.unwrap_or(Err(StoreError::WriterStopped))
}

fn run(db: &Database, mut rx: mpsc::UnboundedReceiver<(DocumentWrite, Reply)>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (writes, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let result = commit(db, &writes);
        if let Err(error) = &result {
            error!(
                %error,
                writes = writes.len(),
                "local store commit failed; the edits were not saved",
            );
        }
        for reply in replies {
            let _ = reply.send(result.clone());
        }
    }
}

/// The highest seq the document has used, in its change rows or its snapshot; numbering goes on
/// from there, so a row written after compaction never reuses a covered seq.
fn last_seq(
    changes: &redb::Table<(&DocKey, u64), &[u8]>,
    snapshots: &redb::Table<&DocKey, &[u8]>,
    key: &DocKey,
) -> Result<u64, StoreError> {
    if let Some(row) = changes.range(seq_range(key, None))?.next_back() {
        return Ok(row?.0.value().1);
    }
    match snapshots.get(key)? {
        Some(snapshot) => Ok(split_snapshot(snapshot.value())?.0),
        None => Ok(0),
    }
}

fn commit(db: &Database, writes: &[DocumentWrite]) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut changes = txn.open_table(CHANGES)?;
        let mut snapshots = txn.open_table(SNAPSHOTS)?;
        let mut documents = txn.open_table(DOCUMENTS)?;
        let mut acknowledged = txn.open_table(ACKNOWLEDGED)?;
        for write in writes {
            let key = write.doc.as_bytes();

            let mut seq = last_seq(&changes, &snapshots, key)?;
            for chunk in &write.changes {
                seq += 1;
                changes.insert((key, seq), chunk.as_slice())?;
            }
            if let Some(heads) = &write.local_heads {
                documents.insert(key, encode_heads(heads).as_slice())?;
            }
            if let Some((server, heads)) = &write.acknowledged {
                acknowledged.insert((key, server.as_str()), encode_heads(heads).as_slice())?;
            }
            if let Some(saved) = &write.snapshot {
                let mut value = seq.to_le_bytes().to_vec();
                value.extend_from_slice(saved);
                snapshots.insert(key, value.as_slice())?;
                changes.retain_in(seq_range(key, None), |_, _| false)?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}
