//! Every redb table, in one place.
//!
//! Keys start with the document's raw 16 bytes, so all rows of one document sit together and a
//! document's rows are one range scan. Sequence numbers are `u64` keys, which redb orders
//! numerically. Values are MessagePack records (see `records`) unless they are raw bytes that
//! only a peer or Automerge interprets.

use std::ops::Bound;

use redb::TableDefinition;

/// Raw document id bytes, the first part of every document's keys.
pub(crate) type DocKey = [u8; 16];

/// Raw change hash bytes.
pub(crate) type HashKey = [u8; 32];

/// The key of a row in a document's log: `(doc, seq)`.
pub(crate) type SeqKey<'a> = (&'a DocKey, u64);

/// `(doc, seq)` → raw Automerge change bytes. Compaction deletes the rows a snapshot covers.
pub(crate) const CHANGES: TableDefinition<(&DocKey, u64), &[u8]> = TableDefinition::new("changes");

/// `(doc, seq)` → `ChangeMetaRecord`. Kept for ever, so the event log survives compaction.
pub(crate) const CHANGE_META: TableDefinition<(&DocKey, u64), &[u8]> =
    TableDefinition::new("change_meta");

/// `(doc, change hash)` → seq. Makes applying a known change a no-op.
pub(crate) const CHANGE_INDEX: TableDefinition<(&DocKey, &HashKey), u64> =
    TableDefinition::new("change_index");

/// `doc` → `SnapshotRecord`, the newest compaction of the document.
pub(crate) const SNAPSHOTS: TableDefinition<&DocKey, &[u8]> = TableDefinition::new("snapshots");

/// `doc` → `DocumentMeta`. Its presence is what makes a document exist.
pub(crate) const DOCUMENTS: TableDefinition<&DocKey, &[u8]> = TableDefinition::new("documents");

/// `(doc, peer storage id)` → encoded Automerge sync state of a peer that persists its own.
pub(crate) const SYNC_STATES: TableDefinition<(&DocKey, &str), &[u8]> =
    TableDefinition::new("sync_states");

/// `(bridge name, doc, row)` → `OutboxRecord`: deliveries not made yet, oldest row first.
pub(crate) const OUTBOX: TableDefinition<(&str, &DocKey, u64), &[u8]> =
    TableDefinition::new("outbox");

/// `doc` → `ImportsRecord`: the external iCalendar feeds a calendar document imports, so the
/// importer polls them after a restart without loading every document.
pub(crate) const IMPORTS: TableDefinition<&DocKey, &[u8]> = TableDefinition::new("imports");

/// Name → bytes: facts about the database itself.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// `META` key of this database's storage id, a UUID v4 as UTF-8 text.
pub(crate) const META_STORAGE_ID: &str = "storage_id";

/// `META` key of the random 32 bytes that calendar feed tokens are derived from.
pub(crate) const META_FEED_SECRET: &str = "feed_secret";

/// `META` key of the schema version, a little-endian `u32`.
pub(crate) const META_SCHEMA_VERSION: &str = "schema_version";

/// The layout this build writes. Raise it, with a migration, whenever a table or record changes
/// in a way an older build would misread.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// Creates every table that does not exist yet, so read transactions can always open them.
pub(crate) fn create_all(txn: &redb::WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(CHANGES)?;
    txn.open_table(CHANGE_META)?;
    txn.open_table(CHANGE_INDEX)?;
    txn.open_table(SNAPSHOTS)?;
    txn.open_table(DOCUMENTS)?;
    txn.open_table(SYNC_STATES)?;
    txn.open_table(OUTBOX)?;
    txn.open_table(IMPORTS)?;
    txn.open_table(META)?;
    Ok(())
}

/// The rows of one document keyed by `(doc, seq)` with a seq above `after` (all rows if `None`).
pub(crate) fn seq_range(
    doc: &DocKey,
    after: Option<u64>,
) -> (Bound<SeqKey<'_>>, Bound<SeqKey<'_>>) {
    let start = match after {
        Some(seq) => Bound::Excluded((doc, seq)),
        None => Bound::Included((doc, 0)),
    };
    (start, Bound::Included((doc, u64::MAX)))
}
