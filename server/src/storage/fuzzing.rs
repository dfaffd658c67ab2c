//! An entry point into the storage decoders for the fuzz targets (`fuzz/`, run by
//! `scripts/fuzz.sh`) and for replaying their saved crashers as regressions.
//!
//! The records and their decoders are crate-private; this is the one door to them from outside,
//! hidden from the documentation and not part of the server's API. Bytes read back from the
//! database are as untrusted as bytes from a socket: a damaged file must give an error, never a
//! panic.

use super::StorageError;
use super::records::{
    ChangeMetaRecord, DocumentMeta, ImportsRecord, OutboxRecord, Record, SnapshotCoverage,
    SnapshotRecord,
};
use super::types::{Snapshot, StoredChange, StoredDocument};

/// Feeds `data` to every stored-record decoder, and rebuilds a document from it.
///
/// Each decoder must return `Ok` or `Err` without panicking. A record that decodes must encode
/// and decode again to an equal record, as the records' own tests promise for what they write.
/// Then the input is split into a snapshot and change chunks (see [`split`]) and loaded through
/// [`StoredDocument::load`], which must fail with an error on anything it cannot load.
#[doc(hidden)]
pub fn decode_records(data: &[u8]) {
    if let Ok(meta) = DocumentMeta::decode(data) {
        assert_eq!(reencoded(&meta), Some(meta), "documents record round trip");
    }
    if let Ok(record) = ChangeMetaRecord::decode(data) {
        assert_eq!(
            reencoded(&record),
            Some(record),
            "change_meta record round trip"
        );
    }
    if let Ok(record) = SnapshotRecord::decode(data) {
        assert_eq!(
            reencoded(&record),
            Some(record.clone()),
            "snapshots record round trip"
        );
        // The writer reads only the coverage of a row it wrote; it must agree with the record.
        let written = record.encode().ok();
        let coverage = written.and_then(|bytes| SnapshotCoverage::decode(&bytes).ok());
        assert_eq!(
            coverage.map(|c| c.covered_seq),
            Some(record.covered_seq),
            "snapshot coverage disagrees with the record"
        );
        let _ = stored(Some(record.into_snapshot()), Vec::new()).load();
    }
    let _ = SnapshotCoverage::decode(data);
    if let Ok(record) = OutboxRecord::decode(data) {
        assert_eq!(reencoded(&record), Some(record), "outbox record round trip");
    }
    if let Ok(record) = ImportsRecord::decode(data) {
        assert_eq!(
            reencoded(&record),
            Some(record),
            "imports record round trip"
        );
    }
    let _ = super::decode_schema_version(data);

    let (snapshot, changes) = split(data);
    let snapshot = snapshot.map(|bytes| Snapshot {
        heads: Vec::new(),
        covered_seq: 0,
        bytes: bytes.to_vec(),
    });
    let _ = stored(snapshot, changes).load();
}

/// Encodes a record and decodes it again; `None` if either step fails.
fn reencoded<R>(record: &R) -> Option<R>
where
    R: Record + serde::Serialize + serde::de::DeserializeOwned,
{
    let bytes = record.encode().ok()?;
    R::decode(&bytes).map_err(|_: StorageError| ()).ok()
}

/// Splits fuzz input into an optional snapshot and change chunks: the first byte's low bit says
/// whether a snapshot comes first, then each part is a little-endian `u16` length followed by
/// that many bytes (fewer at the end of the input).
fn split(data: &[u8]) -> (Option<&[u8]>, Vec<&[u8]>) {
    let Some((&flags, mut rest)) = data.split_first() else {
        return (None, Vec::new());
    };
    let mut parts = Vec::new();
    while let [low, high, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*low, *high])).min(tail.len());
        let (part, after) = tail.split_at(len);
        parts.push(part);
        rest = after;
    }
    if flags & 1 == 1 && !parts.is_empty() {
        let snapshot = parts.remove(0);
        return (Some(snapshot), parts);
    }
    (None, parts)
}

fn stored(snapshot: Option<Snapshot>, changes: Vec<&[u8]>) -> StoredDocument {
    StoredDocument {
        snapshot,
        changes: changes
            .into_iter()
            .zip(1..)
            .map(|(bytes, seq)| StoredChange {
                seq,
                hash: [0; 32],
                bytes: bytes.to_vec(),
            })
            .collect(),
        next_seq: 0,
        meta: DocumentMeta::default(),
    }
}
