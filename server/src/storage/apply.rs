//! Applying a batch of document writes inside one write transaction.
//!
//! Each write is first checked against what is stored, without changing anything, so a write
//! that would lose logged data is refused on its own while the rest of its batch goes ahead.
//! Any database error, by contrast, aborts the whole transaction.

use std::borrow::Cow;
use std::collections::HashSet;

use redb::{ReadableTable, Table, WriteTransaction};
use tracing::warn;

use super::records::{
    ChangeMetaRecord, DocumentMeta, ImportsRecord, Record, SnapshotCoverage, SnapshotRecord,
};
use super::tables::{self, DocKey, HashKey};
use super::types::{DocumentWrite, Lifecycle, NewChange, Snapshot};
use super::{StorageError, outbox};

/// What became of one write in a committed transaction.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Applied; `new_changes` of its changes were not logged before.
    Applied { new_changes: usize, compacted: bool },
    /// Left out of the transaction, with the reason (a `StorageError::WriteRefused`).
    Refused(StorageError),
}

/// Applies every write in one durable transaction and commits it.
pub(crate) fn apply_batch(
    db: &redb::Database,
    writes: &[DocumentWrite],
    now_ms: u64,
) -> Result<Vec<Outcome>, StorageError> {
    // `begin_write` defaults to `Durability::Immediate`: `commit` returns after the fsync.
    let txn = db.begin_write()?;
    let outcomes = {
        let mut tables = BatchTables::open(&txn)?;
        let mut outcomes = Vec::with_capacity(writes.len());
        for write in writes {
            outcomes.push(tables.write(write, now_ms)?);
        }
        outcomes
    };
    txn.commit()?;
    Ok(outcomes)
}

/// The tables a batch touches, opened once per transaction.
struct BatchTables<'txn> {
    changes: Table<'txn, (&'static DocKey, u64), &'static [u8]>,
    change_meta: Table<'txn, (&'static DocKey, u64), &'static [u8]>,
    change_index: Table<'txn, (&'static DocKey, &'static HashKey), u64>,
    snapshots: Table<'txn, &'static DocKey, &'static [u8]>,
    documents: Table<'txn, &'static DocKey, &'static [u8]>,
    sync_states: Table<'txn, (&'static DocKey, &'static str), &'static [u8]>,
    outbox: Table<'txn, (&'static str, &'static DocKey, u64), &'static [u8]>,
    imports: Table<'txn, &'static DocKey, &'static [u8]>,
}

impl<'txn> BatchTables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StorageError> {
        Ok(Self {
            changes: txn.open_table(tables::CHANGES)?,
            change_meta: txn.open_table(tables::CHANGE_META)?,
            change_index: txn.open_table(tables::CHANGE_INDEX)?,
            snapshots: txn.open_table(tables::SNAPSHOTS)?,
            documents: txn.open_table(tables::DOCUMENTS)?,
            sync_states: txn.open_table(tables::SYNC_STATES)?,
            outbox: txn.open_table(tables::OUTBOX)?,
            imports: txn.open_table(tables::IMPORTS)?,
        })
    }

    /// Checks one write and, unless it is refused, applies it.
    fn write(&mut self, write: &DocumentWrite, now_ms: u64) -> Result<Outcome, StorageError> {
        let doc = write.document.as_bytes();
        let new = match self.new_changes(doc, write)? {
            Ok(new) => new,
            Err(reason) => {
                let document = write.document.to_string();
                warn!(%document, %reason, "storage write refused; the rest of its batch proceeds");
                return Ok(Outcome::Refused(StorageError::WriteRefused {
                    document,
                    reason,
                }));
            }
        };

        self.log(doc, write, &new, now_ms)?;
        outbox::add_rows(&mut self.outbox, doc, &write.outbox, &new, now_ms)?;
        outbox::update_rows(&mut self.outbox, doc, &write.outbox_updates, now_ms)?;
        match &write.imports {
            Some(feeds) if feeds.is_empty() => {
                self.imports.remove(doc)?;
            }
            Some(feeds) => {
                let record = ImportsRecord {
                    feeds: feeds.clone(),
                };
                self.imports.insert(doc, record.encode()?.as_slice())?;
            }
            None => {}
        }
        for (peer, state) in &write.sync_states {
            self.sync_states
                .insert((doc, peer.as_str()), state.as_slice())?;
        }
        if let Some(snapshot) = &write.snapshot {
            self.compact(doc, snapshot)?;
        }
        match write.lifecycle {
            Some(Lifecycle::Delete) => self.delete(doc, now_ms)?,
            Some(Lifecycle::Purge) => self.purge(doc)?,
            None => {}
        }
        Ok(Outcome::Applied {
            new_changes: new.len(),
            compacted: write.snapshot.is_some(),
        })
    }

    /// The changes of `write` not logged yet, or why the write must be refused. Reads only.
    fn new_changes<'w>(
        &self,
        doc: &DocKey,
        write: &'w DocumentWrite,
    ) -> Result<Result<Vec<&'w NewChange>, String>, StorageError> {
        let deleted = self
            .document_meta(doc)?
            .is_some_and(|meta| meta.deleted_at_ms.is_some());
        if deleted && (!write.changes.is_empty() || write.snapshot.is_some()) {
            return Ok(Err("the document is deleted".to_owned()));
        }
        if write.lifecycle == Some(Lifecycle::Purge) && !deleted {
            return Ok(Err("only a deleted document can be purged".to_owned()));
        }
        let covered = self.covered_seq(doc)?;
        if let (Some(snapshot), Some(stored)) = (&write.snapshot, covered)
            && snapshot.covered_seq < stored
        {
            let seq = snapshot.covered_seq;
            return Ok(Err(format!(
                "snapshot up to seq {seq} is older than the stored one"
            )));
        }

        let mut hashes = HashSet::new();
        let mut seqs = HashSet::new();
        let mut new = Vec::new();
        for change in &write.changes {
            let repeat = !hashes.insert(change.hash) || self.is_logged(doc, &change.hash)?;
            if repeat {
                continue;
            }
            if covered.is_some_and(|covered| change.seq <= covered) {
                return Ok(Err(format!(
                    "seq {} is covered by the stored snapshot",
                    change.seq
                )));
            }
            if !seqs.insert(change.seq) || self.change_meta.get((doc, change.seq))?.is_some() {
                return Ok(Err(format!(
                    "seq {} is already used by another change",
                    change.seq
                )));
            }
            new.push(change);
        }
        Ok(Ok(new))
    }

    fn covered_seq(&self, doc: &DocKey) -> Result<Option<u64>, StorageError> {
        let row = self.snapshots.get(doc)?;
        let coverage = row
            .map(|row| SnapshotCoverage::decode(row.value()))
            .transpose()?;
        Ok(coverage.map(|coverage| coverage.covered_seq))
    }

    fn is_logged(&self, doc: &DocKey, hash: &HashKey) -> Result<bool, StorageError> {
        Ok(self.change_index.get((doc, hash))?.is_some())
    }

    /// Appends the new changes and updates (or creates) the document's row.
    fn log(
        &mut self,
        doc: &DocKey,
        write: &DocumentWrite,
        new: &[&NewChange],
        now_ms: u64,
    ) -> Result<(), StorageError> {
        let stored = self.document_meta(doc)?;
        let exists = stored.is_some();
        let mut meta = stored.unwrap_or_else(|| DocumentMeta {
            created_at_ms: created_at_ms(write, now_ms),
            created_by: write.created_by.clone(),
            ..DocumentMeta::default()
        });

        for change in new {
            self.log_change(doc, change)?;
            meta.change_count += 1;
            meta.bytes_logged += change.bytes.len() as u64;
        }

        if !exists || !new.is_empty() {
            self.documents.insert(doc, meta.encode()?.as_slice())?;
        }
        Ok(())
    }

    fn document_meta(&self, doc: &DocKey) -> Result<Option<DocumentMeta>, StorageError> {
        let row = self.documents.get(doc)?;
        row.map(|row| DocumentMeta::decode(row.value())).transpose()
    }

    fn log_change(&mut self, doc: &DocKey, change: &NewChange) -> Result<(), StorageError> {
        let record = ChangeMetaRecord {
            hash: change.hash,
            received_at_ms: change.received_at_ms,
            author: Cow::Borrowed(&change.author),
        };
        self.change_index.insert((doc, &change.hash), change.seq)?;
        self.change_meta
            .insert((doc, change.seq), record.encode()?.as_slice())?;
        self.changes
            .insert((doc, change.seq), change.bytes.as_slice())?;
        Ok(())
    }

    /// Stores the snapshot and deletes the change bytes it covers; their metadata stays.
    fn compact(&mut self, doc: &DocKey, snapshot: &Snapshot) -> Result<(), StorageError> {
        let record = SnapshotRecord::of(snapshot);
        self.snapshots.insert(doc, record.encode()?.as_slice())?;
        let covered = (doc, 0)..=(doc, snapshot.covered_seq);
        self.changes.retain_in(covered, |_, _| false)?;
        Ok(())
    }
}

impl BatchTables<'_> {
    /// Turns the document's row into a tombstone and drops what only a live document needs.
    fn delete(&mut self, doc: &DocKey, now_ms: u64) -> Result<(), StorageError> {
        let mut meta = self.document_meta(doc)?.unwrap_or_default();
        meta.deleted_at_ms.get_or_insert(now_ms);
        self.documents.insert(doc, meta.encode()?.as_slice())?;
        let mut peers = Vec::new();
        for row in self.sync_states.range((doc, "")..)? {
            let (key, _) = row?;
            let (d, peer) = key.value();
            if d != doc {
                break;
            }
            peers.push(peer.to_owned());
        }
        for peer in peers {
            self.sync_states.remove((doc, peer.as_str()))?;
        }
        // The outbox is keyed by bridge first; deletes are rare enough to scan it.
        let rows: Vec<(String, u64)> = self
            .outbox
            .iter()?
            .filter_map(|row| match row {
                Ok((key, _)) => {
                    let (bridge, d, row) = key.value();
                    (d == doc).then(|| Ok((bridge.to_owned(), row)))
                }
                Err(err) => Some(Err(err)),
            })
            .collect::<Result<_, _>>()?;
        for (bridge, row) in rows {
            self.outbox.remove((bridge.as_str(), doc, row))?;
        }
        self.imports.remove(doc)?;
        Ok(())
    }

    /// Removes a deleted document's changes, snapshot and event log; its tombstone stays.
    fn purge(&mut self, doc: &DocKey) -> Result<(), StorageError> {
        let all = (doc, 0)..=(doc, u64::MAX);
        self.changes.retain_in(all.clone(), |_, _| false)?;
        self.change_meta.retain_in(all, |_, _| false)?;
        let hashes = (doc, &[0u8; 32])..=(doc, &[u8::MAX; 32]);
        self.change_index.retain_in(hashes, |_, _| false)?;
        self.snapshots.remove(doc)?;
        let mut meta = self.document_meta(doc)?.unwrap_or_default();
        meta.purged = true;
        self.documents.insert(doc, meta.encode()?.as_slice())?;
        Ok(())
    }
}

/// When a document first written by `write` was created: as the worker says, else when its first
/// change arrived, else now.
fn created_at_ms(write: &DocumentWrite, now_ms: u64) -> u64 {
    let first_change = write.changes.first().map(|change| change.received_at_ms);
    write.created_at_ms.or(first_change).unwrap_or(now_ms)
}
