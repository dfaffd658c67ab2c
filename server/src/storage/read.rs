//! Reads. Each runs in its own read transaction: redb gives it a consistent snapshot of the last
//! commit and never makes the writer wait for it.

use std::ops::Bound;

use redb::{ReadTransaction, ReadableDatabase, ReadableTable};

use super::records::{ChangeMetaRecord, DocumentMeta, Record, SnapshotRecord};
use super::tables::{self, DocKey};
use super::types::{ChangeMeta, Snapshot, StoredChange, StoredDocument};
use super::{DocumentId, Storage, StorageError};

/// One page of [`Storage::list_documents`].
#[derive(Debug, Default)]
pub struct Listing {
    /// The documents on the page, in id order.
    pub documents: Vec<(DocumentId, DocumentMeta)>,
    /// The last id read, listed or not: where the next page starts.
    pub last: Option<DocumentId>,
    /// No document sorts after this page.
    pub complete: bool,
}

/// The feeds one document imports, as `(url, channel)`.
pub type ImportList = Vec<(String, String)>;

impl Storage {
    /// Reads a document's newest snapshot plus the change rows after it, or `None` if the
    /// document was never written. A deleted document comes back as its tombstone: the row,
    /// with no snapshot and no changes. Blocking: call it from `spawn_blocking`.
    pub fn load_document(&self, id: &DocumentId) -> Result<Option<StoredDocument>, StorageError> {
        let txn = self.db.begin_read()?;
        let doc = id.as_bytes();
        let Some(meta) = document_meta(&txn, doc)? else {
            return Ok(None);
        };
        if meta.deleted_at_ms.is_some() {
            return Ok(Some(StoredDocument {
                snapshot: None,
                changes: Vec::new(),
                next_seq: 0,
                meta,
            }));
        }

        let snapshot = snapshot(&txn, doc)?;
        let changes = changes_after(&txn, doc, snapshot.as_ref().map(|s| s.covered_seq))?;
        let next_seq = next_seq(&txn, doc)?;
        Ok(Some(StoredDocument {
            snapshot,
            changes,
            next_seq,
            meta,
        }))
    }

    /// A document's bookkeeping row, or `None` if it was never written. Blocking.
    pub fn document_meta(&self, id: &DocumentId) -> Result<Option<DocumentMeta>, StorageError> {
        let txn = self.db.begin_read()?;
        document_meta(&txn, id.as_bytes())
    }

    /// The change rows from `from_seq` on, to bring a copy loaded earlier up to date; `None` if
    /// a compaction has folded some of them into the snapshot since (load the document anew).
    /// Blocking.
    pub fn changes_from(
        &self,
        id: &DocumentId,
        from_seq: u64,
    ) -> Result<Option<Vec<StoredChange>>, StorageError> {
        let txn = self.db.begin_read()?;
        let doc = id.as_bytes();
        let covered = snapshot(&txn, doc)?.map(|s| s.covered_seq);
        if covered.is_some_and(|covered| covered >= from_seq) {
            return Ok(None);
        }
        let after = from_seq.checked_sub(1);
        changes_after(&txn, doc, after).map(Some)
    }

    /// Every document that imports feeds, with its `(url, channel)` list. Blocking.
    pub fn imports(&self) -> Result<Vec<(DocumentId, ImportList)>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(tables::IMPORTS)?;
        let mut all = Vec::new();
        for row in table.iter()? {
            let (key, value) = row?;
            let record = super::records::ImportsRecord::decode(value.value())?;
            all.push((DocumentId::from_bytes(*key.value()), record.feeds));
        }
        Ok(all)
    }

    /// Reads the persisted sync state of a peer that has a storage id. Blocking.
    pub fn load_sync_state(
        &self,
        id: &DocumentId,
        peer_storage_id: &str,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(tables::SYNC_STATES)?;
        let state = table.get((id.as_bytes(), peer_storage_id))?;
        Ok(state.map(|state| state.value().to_vec()))
    }

    /// Lists every change ever logged for a document, in seq order. The metadata outlives
    /// compaction, so this is the full event log even when the change bytes are gone. Blocking.
    pub fn change_log(&self, id: &DocumentId) -> Result<Vec<ChangeMeta>, StorageError> {
        self.change_log_page(id, None, usize::MAX)
    }

    /// At most `limit` entries of a document's event log with a seq above `after`. Blocking.
    pub fn change_log_page(
        &self,
        id: &DocumentId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ChangeMeta>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(tables::CHANGE_META)?;
        let mut log = Vec::new();
        let rows = table.range(tables::seq_range(id.as_bytes(), after))?;
        for row in rows.take(limit) {
            let (key, value) = row?;
            let record = ChangeMetaRecord::decode(value.value())?;
            log.push(ChangeMeta {
                seq: key.value().1,
                hash: record.hash,
                received_at_ms: record.received_at_ms,
                author: record.author.into_owned(),
            });
        }
        Ok(log)
    }
}

impl Storage {
    /// At most `limit` documents whose id sorts after `after`, in id order, with their rows,
    /// that `keep` accepts; deleted documents are left out. At most `scan` rows are read, so a
    /// caller who may see few documents among many still gets a quick answer; the page then
    /// ends early, and `Listing::last` says where to go on. Blocking.
    pub fn list_documents(
        &self,
        after: Option<&DocumentId>,
        limit: usize,
        scan: usize,
        mut keep: impl FnMut(&DocumentId, &DocumentMeta) -> bool,
    ) -> Result<Listing, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(tables::DOCUMENTS)?;
        let start: Bound<&DocKey> = match after {
            Some(after) => Bound::Excluded(after.as_bytes()),
            None => Bound::Unbounded,
        };
        let rows = table.range((start, Bound::<&DocKey>::Unbounded))?;
        let mut listing = Listing::default();
        for (scanned, row) in rows.enumerate() {
            if listing.documents.len() >= limit || scanned >= scan {
                return Ok(listing);
            }
            let (key, value) = row?;
            let meta = DocumentMeta::decode(value.value())?;
            let id = DocumentId::from_bytes(*key.value());
            listing.last = Some(id);
            if meta.deleted_at_ms.is_none() && keep(&id, &meta) {
                listing.documents.push((id, meta));
            }
        }
        listing.complete = true;
        Ok(listing)
    }

    /// Deleted documents not purged yet that were deleted at or before `deleted_before_ms`.
    /// Blocking; reads every document row, so it runs seldom.
    pub fn purge_due(&self, deleted_before_ms: u64) -> Result<Vec<DocumentId>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(tables::DOCUMENTS)?;
        let mut due = Vec::new();
        for row in table.iter()? {
            let (key, value) = row?;
            let meta = DocumentMeta::decode(value.value())?;
            if !meta.purged && meta.deleted_at_ms.is_some_and(|at| at <= deleted_before_ms) {
                due.push(DocumentId::from_bytes(*key.value()));
            }
        }
        Ok(due)
    }
}

fn document_meta(
    txn: &ReadTransaction,
    doc: &DocKey,
) -> Result<Option<DocumentMeta>, StorageError> {
    let table = txn.open_table(tables::DOCUMENTS)?;
    let row = table.get(doc)?;
    row.map(|row| DocumentMeta::decode(row.value())).transpose()
}

fn snapshot(txn: &ReadTransaction, doc: &DocKey) -> Result<Option<Snapshot>, StorageError> {
    let table = txn.open_table(tables::SNAPSHOTS)?;
    let row = table.get(doc)?;
    let record = row
        .map(|row| SnapshotRecord::decode(row.value()))
        .transpose()?;
    Ok(record.map(SnapshotRecord::into_snapshot))
}

/// The change rows with a seq above `after`, each with its hash from `change_meta`.
fn changes_after(
    txn: &ReadTransaction,
    doc: &DocKey,
    after: Option<u64>,
) -> Result<Vec<StoredChange>, StorageError> {
    let changes = txn.open_table(tables::CHANGES)?;
    let meta = txn.open_table(tables::CHANGE_META)?;
    let mut stored = Vec::new();
    for row in changes.range(tables::seq_range(doc, after))? {
        let (key, bytes) = row?;
        let seq = key.value().1;
        let Some(meta_row) = meta.get((doc, seq))? else {
            return Err(StorageError::Corrupt(format!(
                "change {seq} of document {} has no change_meta row",
                DocumentId::from_bytes(*doc)
            )));
        };
        let hash = ChangeMetaRecord::decode(meta_row.value())?.hash;
        stored.push(StoredChange {
            seq,
            hash,
            bytes: bytes.value().to_vec(),
        });
    }
    Ok(stored)
}

/// One past the highest seq in the document's event log, which compaction never shortens.
fn next_seq(txn: &ReadTransaction, doc: &DocKey) -> Result<u64, StorageError> {
    let table = txn.open_table(tables::CHANGE_META)?;
    let last = table
        .range(tables::seq_range(doc, None))?
        .next_back()
        .transpose()?;
    Ok(last.map_or(0, |(key, _)| key.value().1.saturating_add(1)))
}
