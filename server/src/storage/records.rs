//! The MessagePack records stored in the tables, and their encoding.
//!
//! Records are encoded positionally (`rmp_serde::to_vec`: a struct is an array, not a map), which
//! keeps the per-change metadata small. To evolve a record, append a field marked
//! `#[serde(default)]`: older rows then still decode. Byte strings are MessagePack `bin`, not
//! arrays of integers, so a snapshot costs its own size on disk.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::StorageError;
use super::types::Snapshot;

/// Per-document bookkeeping, kept in the `documents` table for as long as the document exists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentMeta {
    /// When the server first stored the document, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Distinct changes ever logged; repeats of a known change are not counted.
    pub change_count: u64,
    /// Total raw bytes of those changes, before any compaction.
    pub bytes_logged: u64,
    /// The token subject whose upload created the document, when access control was on; the
    /// `own` grant of that subject's tokens covers it.
    #[serde(default)]
    pub created_by: Option<String>,
    /// When the document was deleted, in milliseconds since the Unix epoch. The row is then a
    /// tombstone, kept for ever: the id is refused to every peer, so a copy cannot re-create it.
    #[serde(default)]
    pub deleted_at_ms: Option<u64>,
    /// The deleted document's changes, snapshot and event log are gone from the database.
    #[serde(default)]
    pub purged: bool,
}

/// The `change_meta` row of one change: what the event log lists after compaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChangeMetaRecord<'a> {
    #[serde(with = "bin")]
    pub hash: [u8; 32],
    pub received_at_ms: u64,
    #[serde(with = "bin")]
    pub author: Cow<'a, [u8]>,
}

/// The `snapshots` row of a document; borrows when encoding so a large snapshot is not copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotRecord<'a> {
    #[serde(with = "hash_list")]
    pub heads: Cow<'a, [[u8; 32]]>,
    pub covered_seq: u64,
    #[serde(with = "bin")]
    pub bytes: Cow<'a, [u8]>,
}

impl<'a> SnapshotRecord<'a> {
    /// Borrows a snapshot for encoding.
    pub(crate) fn of(snapshot: &'a Snapshot) -> Self {
        Self {
            heads: Cow::Borrowed(&snapshot.heads),
            covered_seq: snapshot.covered_seq,
            bytes: Cow::Borrowed(&snapshot.bytes),
        }
    }

    pub(crate) fn into_snapshot(self) -> Snapshot {
        Snapshot {
            heads: self.heads.into_owned(),
            covered_seq: self.covered_seq,
            bytes: self.bytes.into_owned(),
        }
    }
}

/// The part of a `snapshots` row the writer checks, decoded without copying the snapshot bytes.
#[derive(Debug, Deserialize)]
pub(crate) struct SnapshotCoverage {
    _heads: serde::de::IgnoredAny,
    pub covered_seq: u64,
    _bytes: serde::de::IgnoredAny,
}

/// A value stored as MessagePack in one table.
pub(crate) trait Record: Sized {
    /// The table the record lives in, named in errors.
    const TABLE: &'static str;

    fn encode(&self) -> Result<Vec<u8>, StorageError>
    where
        Self: Serialize,
    {
        rmp_serde::to_vec(self).map_err(|source| StorageError::Encode {
            table: Self::TABLE,
            source: source.into(),
        })
    }

    fn decode(bytes: &[u8]) -> Result<Self, StorageError>
    where
        Self: DeserializeOwned,
    {
        rmp_serde::from_slice(bytes).map_err(|source| StorageError::Decode {
            table: Self::TABLE,
            source: source.into(),
        })
    }
}

impl Record for DocumentMeta {
    const TABLE: &'static str = "documents";
}

impl Record for ChangeMetaRecord<'_> {
    const TABLE: &'static str = "change_meta";
}

impl Record for SnapshotRecord<'_> {
    const TABLE: &'static str = "snapshots";
}

impl Record for SnapshotCoverage {
    const TABLE: &'static str = "snapshots";
}

/// One delivery waiting in the `outbox` table: what to send a bridge about a document, and
/// where its retries stand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// The delivery id (`webhook-id`), fixed when the row is created and sent on every attempt.
    pub id: String,
    /// When the row was created, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// The highest change seq the row stands for. A state row not attempted yet grows as new
    /// changes coalesce into it.
    pub upto_seq: u64,
    /// Events mode: the change batch, by hash. Empty in state mode.
    #[serde(with = "hash_list")]
    pub hashes: Vec<[u8; 32]>,
    /// Attempts made so far; the body is fixed by the first.
    pub attempts: u32,
    /// Not before this time (ms since the epoch) is the next attempt made.
    pub next_attempt_ms: u64,
    /// The request body as first sent, so a retry is byte for byte the same. Empty before the
    /// first attempt.
    #[serde(with = "bin")]
    pub body: Vec<u8>,
    /// The highest change seq reflected in `body` (state mode).
    pub body_seq: u64,
    /// Dead-lettered: no more attempts until an operator replays it.
    pub dead: bool,
    /// What the last failed attempt got, for the operator; empty if none failed.
    pub last_error: String,
    /// A booking decision to announce, instead of the document's state or changes.
    #[serde(default)]
    pub booking: Option<BookingEvent>,
}

/// The feeds one calendar document imports, as `(url, channel)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportsRecord {
    /// Each feed's URL and the channel its nights are blocked for.
    pub feeds: Vec<(String, String)>,
}

impl Record for ImportsRecord {
    const TABLE: &'static str = "imports";
}

/// A booking the server confirmed or rejected, announced as its own event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingEvent {
    /// The booking's key under `bookings`.
    pub id: String,
    /// `confirmed` or `rejected`.
    pub status: String,
}

impl Record for OutboxRecord {
    const TABLE: &'static str = "outbox";
}

/// Serde helpers for one byte string as MessagePack `bin`, for `Vec<u8>`, `Cow<[u8]>` and
/// fixed-size arrays alike.
mod bin {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<T: AsRef<[u8]>, S: Serializer>(bytes: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes.as_ref())
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: TryFrom<Vec<u8>>,
        D: Deserializer<'de>,
    {
        let bytes = d.deserialize_byte_buf(BytesVisitor)?;
        let len = bytes.len();
        T::try_from(bytes).map_err(|_| D::Error::invalid_length(len, &"a byte string of this size"))
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        // Tolerates an array of integers, as a generic MessagePack writer may produce.
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            // The length is the row's claim, not a fact: reserve no more than a page up front.
            let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(byte) = seq.next_element()? {
                bytes.push(byte);
            }
            Ok(bytes)
        }
    }
}

/// Serde helpers for a list of hashes, each a MessagePack `bin` of 32 bytes.
mod hash_list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Hash(#[serde(with = "super::bin")] [u8; 32]);

    pub fn serialize<T, S>(hashes: &T, s: S) -> Result<S::Ok, S::Error>
    where
        T: AsRef<[[u8; 32]]>,
        S: Serializer,
    {
        s.collect_seq(hashes.as_ref().iter().map(|hash| Hash(*hash)))
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: From<Vec<[u8; 32]>>,
        D: Deserializer<'de>,
    {
        let hashes = Vec::<Hash>::deserialize(d)?;
        Ok(hashes
            .into_iter()
            .map(|Hash(hash)| hash)
            .collect::<Vec<_>>()
            .into())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn hash() -> impl Strategy<Value = [u8; 32]> {
        any::<[u8; 32]>()
    }

    proptest! {
        // Every record decodes to exactly what was encoded.
        #[test]
        fn document_meta_round_trips(
            created_at_ms in any::<u64>(),
            change_count in any::<u64>(),
            bytes_logged in any::<u64>(),
            deleted_at_ms in proptest::option::of(any::<u64>()),
            purged in any::<bool>(),
        ) {
            let meta = DocumentMeta {
                created_at_ms,
                change_count,
                bytes_logged,
                created_by: None,
                deleted_at_ms,
                purged,
            };
            prop_assert_eq!(DocumentMeta::decode(&meta.encode()?)?, meta);
        }

        #[test]
        fn change_meta_round_trips(
            hash in hash(),
            received_at_ms in any::<u64>(),
            author in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let record = ChangeMetaRecord { hash, received_at_ms, author: author.into() };
            prop_assert_eq!(ChangeMetaRecord::decode(&record.encode()?)?, record);
        }

        #[test]
        fn snapshot_round_trips(
            heads in proptest::collection::vec(hash(), 0..5),
            covered_seq in any::<u64>(),
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let snapshot = Snapshot { heads, covered_seq, bytes };
            let encoded = SnapshotRecord::of(&snapshot).encode()?;
            prop_assert_eq!(SnapshotRecord::decode(&encoded)?.into_snapshot(), snapshot);
        }

        // Garbage from disk is an error, never a panic.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = DocumentMeta::decode(&bytes);
            let _ = ChangeMetaRecord::decode(&bytes);
            let _ = SnapshotRecord::decode(&bytes);
        }
    }

    /// Byte strings are stored as `bin`, so a record is about as large as its payload.
    #[test]
    fn bytes_are_stored_compactly() -> Result<(), StorageError> {
        let snapshot = Snapshot {
            heads: vec![[0xff; 32]],
            covered_seq: 7,
            bytes: vec![0xff; 1000],
        };
        let encoded = SnapshotRecord::of(&snapshot).encode()?;
        assert!(
            encoded.len() < 1050,
            "snapshot record is {} bytes",
            encoded.len()
        );
        Ok(())
    }
}
