//! The one error type of the storage layer.

use std::path::PathBuf;
use std::sync::Arc;

/// Why a storage operation failed.
///
/// The type is `Clone` so that one failed commit can be reported to every write that rode in
/// its transaction: each cause is kept (as the error's source) behind an `Arc`, and cloning the
/// error shares it. The message repeats the cause's, so a log line written with `%error` says
/// what actually went wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        /// The directory that was asked for.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The database file could not be opened or created.
    #[error("cannot open the database: {0}")]
    Open(#[source] Arc<redb::DatabaseError>),
    /// A transaction could not be started.
    #[error("cannot begin a database transaction: {0}")]
    Transaction(#[source] Arc<redb::TransactionError>),
    /// A table could not be opened.
    #[error("cannot open a database table: {0}")]
    Table(#[source] Arc<redb::TableError>),
    /// Reading or writing a table failed.
    #[error("database read or write failed: {0}")]
    Database(#[source] Arc<redb::StorageError>),
    /// The transaction could not be made durable; none of its writes happened.
    #[error("database commit failed: {0}")]
    Commit(#[source] Arc<redb::CommitError>),
    /// A record could not be encoded.
    #[error("cannot encode a {table} record: {source}")]
    Encode {
        /// The table the record was meant for.
        table: &'static str,
        /// The encoder's complaint.
        #[source]
        source: Arc<rmp_serde::encode::Error>,
    },
    /// A stored record could not be decoded.
    #[error("cannot decode a {table} record: {source}")]
    Decode {
        /// The table the record came from.
        table: &'static str,
        /// The decoder's complaint.
        #[source]
        source: Arc<rmp_serde::decode::Error>,
    },
    /// The storage writer has stopped, so the write was not queued.
    #[error("the storage writer has stopped")]
    WriterStopped,
    /// The database was written by a newer build whose layout this one does not know.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// The version recorded in the database.
        found: u32,
        /// The newest version this build can read.
        supported: u32,
    },
    /// The database holds something this build never writes.
    #[error("database is inconsistent: {0}")]
    Corrupt(String),
    /// One write was refused because applying it would lose logged data; the other writes of
    /// its transaction were unaffected.
    #[error("write for document {document} refused: {reason}")]
    WriteRefused {
        /// The document, as its text id.
        document: String,
        /// What was wrong with the write.
        reason: String,
    },
}

/// Implements `From` for each redb error, so `?` keeps the cause.
macro_rules! from_redb {
    ($($source:ty => $variant:ident),+ $(,)?) => {$(
        impl From<$source> for StorageError {
            fn from(source: $source) -> Self {
                Self::$variant(Arc::new(source))
            }
        }
    )+};
}

from_redb! {
    redb::DatabaseError => Open,
    redb::TransactionError => Transaction,
    redb::TableError => Table,
    redb::StorageError => Database,
    redb::CommitError => Commit,
}
