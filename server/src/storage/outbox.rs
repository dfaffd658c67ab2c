//! The outbox: deliveries to bridges, written in the same transaction as the changes.
//!
//! Rows are keyed `(bridge, document, row)` so that one bridge's rows for one document are one
//! ordered range: the dispatcher delivers the oldest live row, and only that one, per
//! `(bridge, document)`. A state-mode bridge needs only the newest state, so new changes
//! coalesce into the newest row as long as nobody attempted it; an attempted row keeps its id
//! and body for its retries and the newer state waits in a row behind it. An events-mode bridge
//! gets a row per change batch. Dead-lettered rows stay (for the operator) but no longer hold up
//! the rows behind them.

use std::ops::RangeInclusive;

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, Table};

use super::records::{OutboxRecord, Record};
use super::tables::{self, DocKey};
use super::types::{NewChange, OutboxAction, OutboxRequest, OutboxUpdate};
use super::{DocumentId, Storage, StorageError};

type OutboxTable<'txn> = Table<'txn, (&'static str, &'static DocKey, u64), &'static [u8]>;

/// One outbox row, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// The document it is about.
    pub document: DocumentId,
    /// Its position among the bridge's rows for the document.
    pub row: u64,
    /// The row itself.
    pub record: OutboxRecord,
}

fn rows_of<'a>(bridge: &'a str, doc: &'a DocKey) -> RangeInclusive<(&'a str, &'a DocKey, u64)> {
    (bridge, doc, 0)..=(bridge, doc, u64::MAX)
}

/// Adds or coalesces the rows a write's new changes call for (a booking row needs no new
/// changes of its own: the decision rides in the same write as the server's change).
pub(crate) fn add_rows(
    table: &mut OutboxTable<'_>,
    doc: &DocKey,
    requests: &[OutboxRequest],
    new: &[&NewChange],
    now_ms: u64,
) -> Result<(), StorageError> {
    let Some(upto_seq) = new.iter().map(|change| change.seq).max() else {
        return Ok(());
    };
    for request in requests {
        let bridge = request.bridge.as_str();
        let newest = match table.range(rows_of(bridge, doc))?.next_back() {
            Some(row) => {
                let (key, value) = row?;
                Some((key.value().2, OutboxRecord::decode(value.value())?))
            }
            None => None,
        };
        let is_state = !request.events && request.booking.is_none();
        if is_state
            && let Some((row, mut record)) = newest.clone()
            && is_state_row(&record)
            && record.attempts == 0
            && !record.dead
        {
            record.upto_seq = record.upto_seq.max(upto_seq);
            table.insert((bridge, doc, row), record.encode()?.as_slice())?;
            continue;
        }
        let row = newest.map_or(0, |(row, _)| row + 1);
        let hashes = match request.events {
            true => new.iter().map(|change| change.hash).collect(),
            false => Vec::new(),
        };
        let mut record = fresh_record(upto_seq, hashes, now_ms);
        record.booking.clone_from(&request.booking);
        table.insert((bridge, doc, row), record.encode()?.as_slice())?;
    }
    Ok(())
}

/// Whether a row stands for the document's state (not a change batch, not a booking event).
fn is_state_row(record: &OutboxRecord) -> bool {
    record.hashes.is_empty() && record.booking.is_none()
}

fn fresh_record(upto_seq: u64, hashes: Vec<[u8; 32]>, now_ms: u64) -> OutboxRecord {
    OutboxRecord {
        id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
        created_at_ms: now_ms,
        upto_seq,
        hashes,
        attempts: 0,
        next_attempt_ms: 0,
        body: Vec::new(),
        body_seq: 0,
        dead: false,
        last_error: String::new(),
        booking: None,
    }
}

/// Records what the dispatcher learnt about rows. An update for a row that no longer exists
/// (a replay raced a delivery) is ignored.
pub(crate) fn update_rows(
    table: &mut OutboxTable<'_>,
    doc: &DocKey,
    updates: &[OutboxUpdate],
    now_ms: u64,
) -> Result<(), StorageError> {
    for update in updates {
        let key = (update.bridge.as_str(), doc, update.row);
        let Some(stored) = table.get(key)?.map(|v| OutboxRecord::decode(v.value())) else {
            continue;
        };
        let mut record = stored?;
        match &update.action {
            OutboxAction::Attempted {
                attempts,
                next_attempt_ms,
                body,
                body_seq,
                last_error,
            } => {
                record.attempts = *attempts;
                record.next_attempt_ms = *next_attempt_ms;
                record.body.clone_from(body);
                record.body_seq = *body_seq;
                record.last_error.clone_from(last_error);
            }
            OutboxAction::Delivered => {
                table.remove(key)?;
                if is_state_row(&record) {
                    settle_state_rows(table, &update.bridge, doc, update.row, &record, now_ms)?;
                }
                continue;
            }
            OutboxAction::Dead {
                attempts,
                last_error,
            } => {
                record.attempts = *attempts;
                record.dead = true;
                record.last_error.clone_from(last_error);
            }
            OutboxAction::Replay { now_ms } => {
                record.dead = false;
                record.attempts = 0;
                record.next_attempt_ms = *now_ms;
                record.body.clear();
            }
        }
        table.insert(key, record.encode()?.as_slice())?;
    }
    Ok(())
}

/// After a state row was delivered with a body reflecting `body_seq`: later rows the body
/// already covers are done too (they would send the same state under another id), and if
/// changes coalesced into the delivered row after its body was made and no later row stands
/// for them, the row comes back fresh (new id) to send that newer state.
fn settle_state_rows(
    table: &mut OutboxTable<'_>,
    bridge: &str,
    doc: &DocKey,
    row: u64,
    delivered: &OutboxRecord,
    now_ms: u64,
) -> Result<(), StorageError> {
    let mut covered = Vec::new();
    let mut newer_behind = false;
    for later in table.range((bridge, doc, row + 1)..=(bridge, doc, u64::MAX))? {
        let (key, value) = later?;
        let record = OutboxRecord::decode(value.value())?;
        if record.dead || !is_state_row(&record) {
            continue;
        }
        if record.attempts == 0 && record.upto_seq <= delivered.body_seq {
            covered.push(key.value().2);
        } else {
            newer_behind = true;
        }
    }
    for later in covered {
        table.remove((bridge, doc, later))?;
    }
    if delivered.upto_seq > delivered.body_seq && !newer_behind {
        let fresh = fresh_record(delivered.upto_seq, Vec::new(), now_ms);
        table.insert((bridge, doc, row), fresh.encode()?.as_slice())?;
    }
    Ok(())
}

impl Storage {
    /// The documents with live (not dead-lettered) rows for `bridge`. Blocking.
    pub fn outbox_documents(&self, bridge: &str) -> Result<Vec<DocumentId>, StorageError> {
        let mut documents: Vec<DocumentId> = Vec::new();
        for row in self.outbox_rows(bridge)? {
            if !row.record.dead && documents.last() != Some(&row.document) {
                documents.push(row.document);
            }
        }
        Ok(documents)
    }

    /// The oldest live row of `bridge` for `document`: the next to deliver. Blocking.
    pub fn outbox_head(
        &self,
        bridge: &str,
        document: &DocumentId,
    ) -> Result<Option<OutboxRow>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(tables::OUTBOX)?;
        for row in table.range(rows_of(bridge, document.as_bytes()))? {
            let (key, value) = row?;
            let record = OutboxRecord::decode(value.value())?;
            if !record.dead {
                return Ok(Some(OutboxRow {
                    document: *document,
                    row: key.value().2,
                    record,
                }));
            }
        }
        Ok(None)
    }

    /// Every row of `bridge`, dead ones included, by document and row. Blocking.
    pub fn outbox_rows(&self, bridge: &str) -> Result<Vec<OutboxRow>, StorageError> {
        let txn = self.db.begin_read()?;
        read_rows(&txn, bridge)
    }
}

fn read_rows(txn: &ReadTransaction, bridge: &str) -> Result<Vec<OutboxRow>, StorageError> {
    let table = txn.open_table(tables::OUTBOX)?;
    let (low, high) = ([0u8; 16], [0xffu8; 16]);
    let mut rows = Vec::new();
    for row in table.range((bridge, &low, 0)..=(bridge, &high, u64::MAX))? {
        let (key, value) = row?;
        let (_, doc, row) = key.value();
        rows.push(OutboxRow {
            document: DocumentId::from_bytes(*doc),
            row,
            record: OutboxRecord::decode(value.value())?,
        });
    }
    Ok(rows)
}
