//! Request bodies, built from what storage holds when a row is first attempted.
//!
//! State mode sends the document as JSON at its durable heads, the same JSON `syncline get`
//! prints; events mode sends the row's change batch; a booking row sends `booking.confirmed` or
//! `booking.rejected` with the booking. Either body is stored with the row on its
//! first attempt, so every retry sends exactly the same bytes.

use automerge::{Automerge, ChangeHash, ReadDoc};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use syncline_shared::ical::{self, Detail, Event, Version, render_event};
use syncline_shared::ids::DocumentId;

use crate::storage::{BookingEvent, OutboxRecord, Storage};

/// A body and the highest change seq it reflects.
#[derive(Debug)]
pub struct Body {
    /// The JSON bytes.
    pub bytes: Vec<u8>,
    /// The highest change seq of the document when the body was made.
    pub seq: u64,
}

/// Why a body could not be made: the row cannot be delivered as it is.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Storage failed; worth retrying.
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    /// The document is gone or does not load; the row is dead.
    #[error("document {0} cannot be loaded: {1}")]
    Document(DocumentId, String),
}

/// A chain's copy of its document, brought up to date from storage before each body, so a
/// busy document is not loaded whole for every delivery.
#[derive(Debug, Default)]
pub struct DocCache {
    /// The document and the seq after the last change applied to it.
    loaded: Option<(Automerge, u64)>,
}

impl DocCache {
    /// The document as stored now, and its highest change seq. Blocking.
    fn current(
        &mut self,
        storage: &Storage,
        document: DocumentId,
    ) -> Result<(&Automerge, u64), BodyError> {
        let fail = |e: crate::storage::LoadError| BodyError::Document(document, e.to_string());
        let newer = match &self.loaded {
            Some((_, next)) => storage.changes_from(&document, *next)?,
            None => None,
        };
        match (newer, &mut self.loaded) {
            (Some(changes), Some((doc, next))) => {
                for change in &changes {
                    crate::storage::apply_stored(doc, &change.bytes).map_err(fail)?;
                    *next = change.seq + 1;
                }
            }
            _ => {
                let stored = storage
                    .load_document(&document)?
                    .ok_or_else(|| BodyError::Document(document, "not stored".to_owned()))?;
                self.loaded = Some((stored.load().map_err(fail)?, stored.next_seq));
            }
        }
        let (doc, next) = self.loaded.as_ref().expect("loaded just above");
        Ok((doc, next.saturating_sub(1)))
    }
}

/// Builds the body of `record` for `document`, from `cache` brought up to date. Blocking.
pub fn build(
    storage: &Storage,
    cache: &mut DocCache,
    document: DocumentId,
    record: &OutboxRecord,
) -> Result<Body, BodyError> {
    let (doc, seq) = cache.current(storage, document)?;
    let value = match (&record.booking, record.hashes.is_empty()) {
        (Some(event), _) => booking(document, doc, event),
        (None, true) => state(document, doc),
        (None, false) => events(document, doc, &record.hashes),
    };
    let bytes =
        serde_json::to_vec(&value).map_err(|e| BodyError::Document(document, e.to_string()))?;
    Ok(Body { bytes, seq })
}

/// The events a CalDAV collection should hold for `document`, each with its file, and the
/// highest change seq they reflect. Blocking.
pub fn calendar_files(
    storage: &Storage,
    cache: &mut DocCache,
    document: DocumentId,
) -> Result<(Vec<(Event, String)>, u64), BodyError> {
    let (doc, seq) = cache.current(storage, document)?;
    let version = Version::of(doc);
    let files = ical::events(document, doc, Detail::Full)
        .into_iter()
        .map(|event| {
            let file = render_event(&event, &version);
            (event, file)
        })
        .collect();
    Ok((files, seq))
}

fn heads(doc: &Automerge) -> Value {
    doc.get_heads()
        .iter()
        .map(|head| Value::String(head.to_string()))
        .collect()
}

fn state(document: DocumentId, doc: &Automerge) -> Value {
    json!({
        "type": "document.updated",
        "document_id": document.to_string(),
        "url": document.url(),
        "heads": heads(doc),
        "state": syncline_shared::json::to_json(doc),
    })
}

fn booking(document: DocumentId, doc: &Automerge, event: &BookingEvent) -> Value {
    let state = syncline_shared::json::to_json(doc);
    let mut booking = state["bookings"][event.id.as_str()].clone();
    if let Value::Object(fields) = &mut booking {
        fields.insert("id".to_owned(), Value::String(event.id.clone()));
        // The decision announced, even if the booking has moved on since (say, cancelled).
        fields.insert("status".to_owned(), Value::String(event.status.clone()));
    }
    json!({
        "type": format!("booking.{}", event.status),
        "document_id": document.to_string(),
        "url": document.url(),
        "heads": heads(doc),
        "booking": booking,
    })
}

fn events(document: DocumentId, doc: &Automerge, hashes: &[[u8; 32]]) -> Value {
    let changes: Vec<Value> = hashes
        .iter()
        .filter_map(|hash| doc.get_change_by_hash(&ChangeHash(*hash)))
        .map(|change| {
            json!({
                "hash": change.hash().to_string(),
                "author": change.actor_id().to_hex_string(),
                "seq": change.seq(),
                "time": change.timestamp(),
                "message": change.message(),
                "bytes": STANDARD.encode(change.raw_bytes()),
            })
        })
        .collect();
    json!({
        "type": "document.changed",
        "document_id": document.to_string(),
        "url": document.url(),
        "heads": heads(doc),
        "changes": changes,
    })
}
