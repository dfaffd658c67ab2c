//! The values that cross the storage boundary: what a document worker writes and reads back.

use super::DocumentId;
use super::records::DocumentMeta;

/// A document as stored: the newest snapshot, if any, plus every change logged after it.
///
/// Loading the snapshot and then applying `changes` in order rebuilds the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    /// The newest compaction, or `None` if the document was never compacted.
    pub snapshot: Option<Snapshot>,
    /// Raw change bytes with `seq > snapshot.covered_seq`, in seq order.
    pub changes: Vec<StoredChange>,
    /// One past the highest seq ever logged for the document (0 if none), so a worker that loads
    /// the document continues the numbering without reusing a seq.
    pub next_seq: u64,
    /// The document's bookkeeping row.
    pub meta: DocumentMeta,
}

impl StoredDocument {
    /// Rebuilds the Automerge document: the snapshot, then the changes after it, in order.
    pub fn load(&self) -> Result<automerge::Automerge, LoadError> {
        let mut doc = match &self.snapshot {
            Some(snapshot) => {
                syncline_shared::chunks::check(&snapshot.bytes)?;
                automerge::Automerge::load(&snapshot.bytes)?
            }
            None => automerge::Automerge::new(),
        };
        for change in &self.changes {
            apply_stored(&mut doc, &change.bytes)?;
        }
        Ok(doc)
    }
}

/// Applies one stored change row to a document loaded earlier.
pub fn apply_stored(doc: &mut automerge::Automerge, bytes: &[u8]) -> Result<(), LoadError> {
    syncline_shared::chunks::check(bytes)?;
    doc.load_incremental(bytes)?;
    Ok(())
}

/// Why stored bytes do not rebuild a document. Rows are checked like bytes from a peer: a
/// damaged file gives this error, never a panic inside Automerge.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A row holds a chunk type storage never writes.
    #[error("stored row refused: {0}")]
    Chunk(#[from] syncline_shared::chunks::ChunkError),
    /// Automerge could not load the row.
    #[error("stored row does not load: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}

/// A compaction: the document saved whole (`Automerge::save`), covering changes `0..=covered_seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The document's heads at the time of the save.
    pub heads: Vec<[u8; 32]>,
    /// The highest seq whose change is included; rows up to it are no longer needed.
    pub covered_seq: u64,
    /// The `Automerge::save()` output.
    pub bytes: Vec<u8>,
}

/// One logged change that a snapshot does not cover yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChange {
    /// Position in the document's log.
    pub seq: u64,
    /// The change's content hash.
    pub hash: [u8; 32],
    /// The raw Automerge change.
    pub bytes: Vec<u8>,
}

/// The event-log entry of one change. Kept for ever, after compaction too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeMeta {
    /// Position in the document's log.
    pub seq: u64,
    /// The change's content hash.
    pub hash: [u8; 32],
    /// When the server received it, in milliseconds since the Unix epoch.
    pub received_at_ms: u64,
    /// The Automerge actor id of the change's author.
    pub author: Vec<u8>,
}

/// A change to append to a document's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChange {
    /// Assigned by the document worker, counting up from `StoredDocument::next_seq`. Gaps are
    /// harmless (a repeated change is skipped and leaves its seq unused); reuse is refused.
    pub seq: u64,
    /// The change's content hash; a hash already logged for the document makes this a no-op.
    pub hash: [u8; 32],
    /// When the server received it, in milliseconds since the Unix epoch.
    pub received_at_ms: u64,
    /// The Automerge actor id of the change's author.
    pub author: Vec<u8>,
    /// The raw Automerge change.
    pub bytes: Vec<u8>,
}

/// Everything one document worker wants made durable at once. The writer applies it in a single
/// transaction, shared with the writes of other documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentWrite {
    /// The document written to.
    pub document: DocumentId,
    /// Set on the write that creates the document. A write without it for an unknown document
    /// still creates the row, dated by its first change (or by the writer's clock).
    pub created_at_ms: Option<u64>,
    /// The token subject creating the document, stored with `created_at_ms`.
    pub created_by: Option<String>,
    /// Changes to log, in seq order.
    pub changes: Vec<NewChange>,
    /// `(peer storage id, encoded Automerge sync state)` to keep for peers that persist.
    pub sync_states: Vec<(String, Vec<u8>)>,
    /// A compaction. Its rows are written, and the change bytes it covers deleted, in the same
    /// transaction as `changes`, which are applied first. A snapshot older than the stored one
    /// is refused, since the changes between them are already gone.
    pub snapshot: Option<Snapshot>,
    /// Bridges that must hear of this write's new changes; written in the same transaction, so
    /// no change is committed without its deliveries.
    pub outbox: Vec<OutboxRequest>,
    /// What the dispatcher learnt about outbox rows of this document.
    pub outbox_updates: Vec<OutboxUpdate>,
    /// The document's imported feeds changed to these (`(url, channel)`; empty: none).
    pub imports: Option<Vec<(String, String)>>,
    /// What happens to the document as a whole: deleted (a tombstone) or purged.
    pub lifecycle: Option<Lifecycle>,
}

/// A step in a deleted document's life; the `documents` row stays, as its tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Marks the document deleted and drops what only a live document needs (peers' sync
    /// states, pending deliveries, imported feeds). Its changes stay until it is purged.
    Delete,
    /// Removes a deleted document's changes, snapshot and event log. Refused for a document
    /// that is not deleted.
    Purge,
}

impl DocumentWrite {
    /// A write with nothing in it yet, for filling in field by field.
    pub fn new(document: DocumentId) -> Self {
        Self {
            document,
            created_at_ms: None,
            created_by: None,
            changes: Vec::new(),
            sync_states: Vec::new(),
            snapshot: None,
            outbox: Vec::new(),
            outbox_updates: Vec::new(),
            imports: None,
            lifecycle: None,
        }
    }
}

/// A bridge that wants to hear of a write's new changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRequest {
    /// The bridge's name.
    pub bridge: String,
    /// Events mode: a row per change batch. Otherwise (state mode) the changes coalesce into
    /// the newest row if it was not attempted yet.
    pub events: bool,
    /// A booking decision made in this write: its own row, whatever the mode.
    pub booking: Option<super::records::BookingEvent>,
}

/// A change to one outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxUpdate {
    /// The bridge's name.
    pub bridge: String,
    /// The row.
    pub row: u64,
    /// What happened.
    pub action: OutboxAction,
}

/// What the dispatcher records about a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxAction {
    /// An attempt failed and another is due at `next_attempt_ms`; `body` (with the seq its
    /// state covers) is what was sent, kept so retries send exactly the same.
    Attempted {
        attempts: u32,
        next_attempt_ms: u64,
        body: Vec<u8>,
        body_seq: u64,
        last_error: String,
    },
    /// The target took it. A state row that newer changes coalesced into after its body was
    /// made becomes a fresh row (new id) for that newer state; any other row is removed.
    Delivered,
    /// No more attempts: kept for the operator.
    Dead { attempts: u32, last_error: String },
    /// An operator asked for it again: a fresh start at `now_ms`, same id.
    Replay { now_ms: u64 },
}
