//! The local store: every document this client holds, durably, in one redb file.
//!
//! A document is a snapshot (an `Automerge::save`) plus the change chunks written after it, the
//! same shape the server keeps. Every local edit and every change received from a server is
//! appended before anyone is told about it, so an edit survives a crash the moment
//! [`Document::change`](crate::Document::change) returns. Beside the changes the store keeps,
//! per document, the local heads and the heads each server (by storage id) has acknowledged as
//! durable: what `status` shows and what tells a fresh process which documents still have
//! edits to upload.
//!
//! Reads run in their own read transactions. Writes go through the [`writer`] thread, which
//! folds everything queued into one transaction.

pub(crate) mod writer;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use automerge::ChangeHash;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use syncline_shared::ids::{DocumentId, StorageId};

/// The database file's name inside the store directory.
pub const STORE_FILE: &str = "syncline-client.redb";

type DocKey = [u8; 16];

/// A key range over one document's rows.
type DocRange<'a, T> = (Bound<(&'a DocKey, T)>, Bound<(&'a DocKey, T)>);

/// `(doc, seq)` → raw change chunk, appended after the document's snapshot.
const CHANGES: TableDefinition<(&DocKey, u64), &[u8]> = TableDefinition::new("changes");

/// `doc` → `Automerge::save` bytes covering every change row up to the stored seq (8 bytes,
/// little-endian, in front of the saved document).
const SNAPSHOTS: TableDefinition<&DocKey, &[u8]> = TableDefinition::new("snapshots");

/// `doc` → local heads, 32 bytes each. Its presence is what makes a document exist locally.
const DOCUMENTS: TableDefinition<&DocKey, &[u8]> = TableDefinition::new("documents");

/// `(doc, server storage id)` → heads that server advertised, so has made durable.
const ACKNOWLEDGED: TableDefinition<(&DocKey, &str), &[u8]> = TableDefinition::new("acknowledged");

/// Name → bytes: facts about the store itself.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// `META` key of this store's storage id, announced to servers in `join`.
const META_STORAGE_ID: &str = "storage_id";

/// Why the local store failed.
///
/// `Clone` so one failed commit can be reported to every write that rode in it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store directory could not be created.
    #[error("cannot create the store directory {path}: {source}")]
    CreateDir {
        /// The directory asked for.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Another process has the store open; redb allows one.
    #[error("the store {0} is in use by another process")]
    InUse(PathBuf),
    /// redb failed.
    #[error("local store: {0}")]
    Database(#[source] Arc<redb::Error>),
    /// A stored value does not have the shape this build writes.
    #[error("local store is corrupt: {0}")]
    Corrupt(String),
    /// The writer thread is gone, so the write was not made.
    #[error("the local store's writer has stopped")]
    WriterStopped,
}

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(error: E) -> Self {
        StoreError::Database(Arc::new(error.into()))
    }
}

/// A document as read back from the store.
#[derive(Debug, Default)]
pub(crate) struct StoredDocument {
    /// The snapshot, if one was written.
    pub snapshot: Option<Vec<u8>>,
    /// Change chunks after the snapshot, in the order they were written.
    pub changes: Vec<Vec<u8>>,
    /// The highest change seq read (covered by a snapshot made from this load).
    pub last_seq: Option<u64>,
    /// Acknowledged heads per server storage id.
    pub acknowledged: BTreeMap<StorageId, Vec<ChangeHash>>,
}

/// The open store. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    db: Arc<Database>,
    storage_id: StorageId,
}

impl Store {
    /// Opens `<dir>/syncline-client.redb`, creating the directory and the file as needed; a new
    /// store gets a fresh storage id. Blocking.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source: Arc::new(source),
        })?;
        let path = dir.join(STORE_FILE);
        let db = match Database::create(&path) {
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(StoreError::InUse(path)),
            other => other?,
        };

        let txn = db.begin_write()?;
        txn.open_table(CHANGES)?;
        txn.open_table(SNAPSHOTS)?;
        txn.open_table(DOCUMENTS)?;
        txn.open_table(ACKNOWLEDGED)?;
        let storage_id = storage_id(&txn)?;
        txn.commit()?;

        Ok(Store {
            db: Arc::new(db),
            storage_id,
        })
    }

    /// The storage id this store announces to servers.
    pub fn storage_id(&self) -> &StorageId {
        &self.storage_id
    }

    pub(crate) fn database(&self) -> Arc<Database> {
        Arc::clone(&self.db)
    }

    /// Every document held locally.
    pub fn list(&self) -> Result<Vec<DocumentId>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DOCUMENTS)?;
        let mut ids = Vec::new();
        for row in table.iter()? {
            ids.push(DocumentId::from_bytes(*row?.0.value()));
        }
        Ok(ids)
    }

    /// Reads a document, or `None` if it is not held locally.
    pub fn load(&self, id: DocumentId) -> Result<Option<StoredDocument>, StoreError> {
        let key = id.as_bytes();
        let txn = self.db.begin_read()?;
        if txn.open_table(DOCUMENTS)?.get(key)?.is_none() {
            return Ok(None);
        }

        let mut stored = StoredDocument::default();
        if let Some(snapshot) = txn.open_table(SNAPSHOTS)?.get(key)? {
            let (seq, bytes) = split_snapshot(snapshot.value())?;
            stored.last_seq = Some(seq);
            stored.snapshot = Some(bytes.to_vec());
        }
        let changes = txn.open_table(CHANGES)?;
        for row in changes.range(seq_range(key, stored.last_seq))? {
            let (seq, bytes) = row?;
            stored.last_seq = Some(seq.value().1);
            stored.changes.push(bytes.value().to_vec());
        }
        stored.acknowledged = read_acknowledged(&txn, key)?;
        Ok(Some(stored))
    }

    /// Documents whose local heads differ from what `server` acknowledged: edits to upload, or
    /// a document that server has never seen.
    pub fn pending_for(&self, server: &StorageId) -> Result<Vec<DocumentId>, StoreError> {
        let txn = self.db.begin_read()?;
        let documents = txn.open_table(DOCUMENTS)?;
        let acknowledged = txn.open_table(ACKNOWLEDGED)?;
        let mut pending = Vec::new();
        for row in documents.iter()? {
            let (key, local) = row?;
            let acked = acknowledged.get((key.value(), server.as_str()))?;
            if acked.is_none_or(|acked| acked.value() != local.value()) {
                pending.push(DocumentId::from_bytes(*key.value()));
            }
        }
        Ok(pending)
    }
}

/// Reads the storage id, writing a fresh one if the store has none yet.
fn storage_id(txn: &redb::WriteTransaction) -> Result<StorageId, StoreError> {
    let mut meta = txn.open_table(META)?;
    if let Some(stored) = meta.get(META_STORAGE_ID)? {
        let text = std::str::from_utf8(stored.value())
            .map_err(|_| StoreError::Corrupt("storage id is not UTF-8".to_owned()))?;
        return Ok(StorageId(text.to_owned()));
    }
    let fresh = uuid::Uuid::new_v4().to_string();
    meta.insert(META_STORAGE_ID, fresh.as_bytes())?;
    Ok(StorageId(fresh))
}

fn read_acknowledged(
    txn: &redb::ReadTransaction,
    key: &DocKey,
) -> Result<BTreeMap<StorageId, Vec<ChangeHash>>, StoreError> {
    let table = txn.open_table(ACKNOWLEDGED)?;
    let mut acknowledged = BTreeMap::new();
    let range: DocRange<'_, &str> = (Bound::Included((key, "")), Bound::Unbounded);
    for row in table.range(range)? {
        let (row_key, heads) = row?;
        let (doc, server) = row_key.value();
        if doc != key {
            break;
        }
        acknowledged.insert(StorageId(server.to_owned()), decode_heads(heads.value())?);
    }
    Ok(acknowledged)
}

/// The change rows of `doc` with a seq above `after` (all if `None`).
pub(crate) fn seq_range(doc: &DocKey, after: Option<u64>) -> DocRange<'_, u64> {
    let start = match after {
        Some(seq) => Bound::Excluded((doc, seq)),
        None => Bound::Included((doc, 0)),
    };
    (start, Bound::Included((doc, u64::MAX)))
}

pub(crate) fn split_snapshot(value: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let (seq, bytes) = value
        .split_first_chunk::<8>()
        .ok_or_else(|| StoreError::Corrupt("snapshot shorter than its seq".to_owned()))?;
    Ok((u64::from_le_bytes(*seq), bytes))
}

/// Heads as stored: their 32-byte hashes back to back.
pub(crate) fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|head| head.0).collect()
}

pub(crate) fn decode_heads(bytes: &[u8]) -> Result<Vec<ChangeHash>, StoreError> {
    let (chunks, rest) = bytes.as_chunks::<32>();
    if !rest.is_empty() {
        return Err(StoreError::Corrupt(format!(
            "stored heads are {} bytes, not a multiple of 32",
            bytes.len()
        )));
    }
    Ok(chunks.iter().map(|chunk| ChangeHash(*chunk)).collect())
}
