//! Durable storage: the change log in redb, and the group-commit writer in front of it.
//!
//! Storage sits between the document workers and the disk. A worker that receives changes sends
//! one [`DocumentWrite`] to the [`Writer`]; the single writer thread folds every write queued at
//! that moment, from every document, into one redb transaction and answers each worker only
//! after the commit is durable. Only then does the worker advertise the new heads to peers, so
//! an acknowledged change is never lost. Reads ([`Storage::load_document`] and friends) run in
//! their own read transactions and never wait for the writer.
//!
//! The log is the truth: each change gets a row of raw bytes and a row of metadata (hash,
//! receipt time, author). Compaction replaces old change bytes by a snapshot in the same
//! transaction, and keeps the metadata, so the event log can still be listed. Changes are
//! content-addressed, so writing a known change again is a no-op.
//!
//! Files: `tables` (table definitions), `records` (the MessagePack records), `types` (values
//! crossing this boundary), `read`, `apply` (one transaction's work), `writer` (the thread).

mod apply;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod outbox;
mod read;
mod records;
mod tables;
mod types;
mod writer;

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, WriteTransaction};
use syncline_shared::ids::DocumentId;
use tracing::info;

use crate::metrics::Metrics;

pub use error::StorageError;
pub use outbox::OutboxRow;
pub use read::Listing;
pub use records::{BookingEvent, DocumentMeta, OutboxRecord};
pub use types::{
    ChangeMeta, DocumentWrite, Lifecycle, LoadError, NewChange, OutboxAction, OutboxRequest,
    OutboxUpdate, Snapshot, StoredChange, StoredDocument, apply_stored,
};
pub use writer::{CommitReceipt, PendingCommit, Writer, WriterConfig};

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "syncline.redb";

/// An open database. Cheap to clone: clones share one redb handle.
#[derive(Debug, Clone)]
pub struct Storage {
    db: Arc<Database>,
    storage_id: Arc<str>,
    /// The key behind per-document feed tokens; random, made once, kept for ever.
    feed_secret: Arc<[u8; 32]>,
}

impl Storage {
    /// Opens `<data_dir>/syncline.redb`, creating the directory (with its parents), the file and
    /// every table as needed. A new database gets a fresh storage id and this build's schema
    /// version; an existing one keeps its id, and one written by a newer build is refused with
    /// `StorageError::SchemaTooNew` rather than misread. Blocking.
    pub fn open(data_dir: &Path) -> Result<Storage, StorageError> {
        Self::open_with_cache(data_dir, crate::config::DEFAULT_STORAGE_CACHE_BYTES)
    }

    /// [`open`](Self::open), with a page cache of `cache_bytes` (`[storage] cache_bytes`).
    pub fn open_with_cache(data_dir: &Path, cache_bytes: usize) -> Result<Storage, StorageError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StorageError::CreateDir {
            path: data_dir.to_path_buf(),
            source: source.into(),
        })?;
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(data_dir.join(DATABASE_FILE))?;

        let txn = db.begin_write()?;
        check_schema(&txn)?;
        tables::create_all(&txn)?;
        let storage_id = storage_id(&txn)?;
        let feed_secret = feed_secret(&txn)?;
        txn.commit()?;

        info!(%storage_id, path = %data_dir.display(), "storage open");
        Ok(Storage {
            db: Arc::new(db),
            storage_id: storage_id.into(),
            feed_secret: Arc::new(feed_secret),
        })
    }

    /// This database's storage id, which peers use to tell servers apart. Stable across
    /// restarts for as long as the database file lives.
    pub fn storage_id(&self) -> &str {
        &self.storage_id
    }

    /// The secret that calendar feed tokens are derived from. Stable for the database's life,
    /// so a feed URL handed to a booking site keeps working across restarts.
    pub fn feed_secret(&self) -> &[u8; 32] {
        &self.feed_secret
    }

    /// Starts the single storage writer on its own OS thread and returns a cloneable handle.
    /// Start one writer per database: two would each commit their own batches, halving the
    /// benefit of group commit (redb serialises them anyway).
    pub fn start_writer(&self, metrics: Arc<Metrics>, config: WriterConfig) -> Writer {
        Writer::start(Arc::clone(&self.db), metrics, config)
    }
}

/// Records this build's schema version in a new database; refuses one written by a newer build.
fn check_schema(txn: &WriteTransaction) -> Result<(), StorageError> {
    let mut meta = txn.open_table(tables::META)?;
    let found = match meta.get(tables::META_SCHEMA_VERSION)? {
        Some(stored) => Some(decode_schema_version(stored.value())?),
        None => None,
    };
    match found {
        Some(found) if found > tables::SCHEMA_VERSION => Err(StorageError::SchemaTooNew {
            found,
            supported: tables::SCHEMA_VERSION,
        }),
        // Version 1 is the only one so far: nothing older to migrate.
        Some(_) => Ok(()),
        None => {
            let version = tables::SCHEMA_VERSION.to_le_bytes();
            meta.insert(tables::META_SCHEMA_VERSION, version.as_slice())?;
            Ok(())
        }
    }
}

fn decode_schema_version(bytes: &[u8]) -> Result<u32, StorageError> {
    let bytes = <[u8; 4]>::try_from(bytes).map_err(|_| {
        StorageError::Corrupt(format!("schema version is {} bytes, not 4", bytes.len()))
    })?;
    Ok(u32::from_le_bytes(bytes))
}

/// Reads the storage id, writing a fresh one if the database has none yet.
fn storage_id(txn: &WriteTransaction) -> Result<String, StorageError> {
    let mut meta = txn.open_table(tables::META)?;
    if let Some(stored) = meta.get(tables::META_STORAGE_ID)? {
        return String::from_utf8(stored.value().to_vec())
            .map_err(|_| StorageError::Corrupt("storage id is not UTF-8".into()));
    }

    let fresh = uuid::Uuid::new_v4().to_string();
    meta.insert(tables::META_STORAGE_ID, fresh.as_bytes())?;
    Ok(fresh)
}

/// Reads the feed secret, writing a fresh random one if the database has none yet.
fn feed_secret(txn: &WriteTransaction) -> Result<[u8; 32], StorageError> {
    let mut meta = txn.open_table(tables::META)?;
    if let Some(stored) = meta.get(tables::META_FEED_SECRET)? {
        return <[u8; 32]>::try_from(stored.value())
            .map_err(|_| StorageError::Corrupt("feed secret is not 32 bytes".into()));
    }
    let fresh: [u8; 32] = rand::random();
    meta.insert(tables::META_FEED_SECRET, fresh.as_slice())?;
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database stamped by a newer build is refused, and left as it was.
    #[test]
    fn newer_schema_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        // 1. Create a database, then stamp it with a version from the future.
        let dir = tempfile::tempdir()?;
        let storage = Storage::open(dir.path())?;
        let txn = storage.db.begin_write()?;
        {
            let mut meta = txn.open_table(tables::META)?;
            let future = (tables::SCHEMA_VERSION + 1).to_le_bytes();
            meta.insert(tables::META_SCHEMA_VERSION, future.as_slice())?;
        }
        txn.commit()?;
        drop(storage);

        // 2. Reopening names both versions.
        let refused = Storage::open(dir.path());
        let supported = tables::SCHEMA_VERSION;
        assert!(
            matches!(refused, Err(StorageError::SchemaTooNew { found, supported: s })
                if found == supported + 1 && s == supported),
            "{refused:?}"
        );
        Ok(())
    }

    /// A new database records the schema version this build writes.
    #[test]
    fn new_database_records_schema_version() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let storage = Storage::open(dir.path())?;
        let txn = redb::ReadableDatabase::begin_read(&*storage.db)?;
        let meta = txn.open_table(tables::META)?;
        let stored = meta
            .get(tables::META_SCHEMA_VERSION)?
            .map(|v| v.value().to_vec());
        assert_eq!(stored, Some(tables::SCHEMA_VERSION.to_le_bytes().to_vec()));
        Ok(())
    }
}
