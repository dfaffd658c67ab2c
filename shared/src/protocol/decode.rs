//! Frame bytes to [`Message`]: the first thing that happens to everything a peer sends.
//!
//! Checks run in the protocol's validation order: well-formed CBOR, a map, a text `type`, then
//! each message's fields with `senderId` before `targetId` and `documentId`. Whatever was
//! readable goes into the [`DecodeError`], so the caller can tell "not joined" or "wrong
//! sender" apart from "bad document id" even when both are wrong.

use minicbor::Decoder;
use minicbor::data::Type;

use super::cbor::{self, Fields};
use super::keys::*;
use super::{
    DecodeError, DecodeErrorKind, DocUnavailable, Ephemeral, ErrorMessage, HeadsAt, Join, Leave,
    Message, Peer, PeerMetadata, RemoteHeadsChanged, RemoteSubscriptionChange, SyncMessage,
};
use crate::ids::{DocumentId, PeerId, StorageId};

type FieldResult<T> = Result<T, DecodeErrorKind>;

/// Decodes one frame.
pub(super) fn decode_frame(bytes: &[u8]) -> Result<Message, DecodeError> {
    let fields = read_frame(bytes)?;
    let message_type = fields
        .raw(TYPE)
        .ok_or(DecodeErrorKind::MissingType)
        .and_then(|raw| cbor::read_text(raw).ok_or(DecodeErrorKind::InvalidField(TYPE)))
        .map_err(|kind| error_with_context(kind, &fields))?;
    decode_body(&message_type, &fields).map_err(|kind| error_with_context(kind, &fields))
}

/// Reads the frame's top-level map, checking it is the only thing in the frame.
fn read_frame(bytes: &[u8]) -> Result<Fields<'_>, DecodeError> {
    let mut d = Decoder::new(bytes);
    if !matches!(d.datatype(), Ok(Type::Map | Type::MapIndef)) {
        return Err(error_with_context(
            classify_non_map(bytes),
            &Fields::default(),
        ));
    }
    let fields = Fields::read(&mut d).map_err(|broken| {
        error_with_context(DecodeErrorKind::NotCbor(broken.reason), &broken.partial)
    })?;
    if d.position() < bytes.len() {
        return Err(error_with_context(DecodeErrorKind::TrailingBytes, &fields));
    }
    Ok(fields)
}

/// A frame that does not start with a map is either some other CBOR value or not CBOR at all.
fn classify_non_map(bytes: &[u8]) -> DecodeErrorKind {
    match cbor::skip_value(&mut Decoder::new(bytes)) {
        Ok(()) => DecodeErrorKind::NotAMap,
        Err(reason) => DecodeErrorKind::NotCbor(reason),
    }
}

/// Attaches the `type` and `senderId` to an error whenever they were readable.
fn error_with_context(kind: DecodeErrorKind, fields: &Fields<'_>) -> DecodeError {
    DecodeError {
        kind,
        message_type: fields.lenient_text(TYPE),
        sender_id: fields.lenient_text(SENDER_ID).map(PeerId),
    }
}

fn decode_body(message_type: &str, f: &Fields<'_>) -> FieldResult<Message> {
    Ok(match message_type {
        JOIN => Message::Join(join(f)?),
        PEER => Message::Peer(peer(f)?),
        ERROR => Message::Error(error_message(f)?),
        SYNC => Message::Sync(sync(f)?),
        REQUEST => Message::Request(sync(f)?),
        DOC_UNAVAILABLE => Message::DocUnavailable(doc_unavailable(f)?),
        EPHEMERAL => Message::Ephemeral(ephemeral(f)?),
        REMOTE_SUBSCRIPTION_CHANGE => {
            Message::RemoteSubscriptionChange(remote_subscription_change(f)?)
        }
        REMOTE_HEADS_CHANGED => Message::RemoteHeadsChanged(remote_heads_changed(f)?),
        LEAVE => Message::Leave(Leave {
            sender_id: sender(f)?,
        }),
        other => Message::Unknown {
            message_type: other.to_owned(),
            sender_id: f.lenient_text(SENDER_ID).map(PeerId),
        },
    })
}

fn join(f: &Fields<'_>) -> FieldResult<Join> {
    Ok(Join {
        sender_id: sender(f)?,
        peer_metadata: optional(f, PEER_METADATA, read_peer_metadata)?,
        supported_protocol_versions: optional(
            f,
            SUPPORTED_PROTOCOL_VERSIONS,
            cbor::read_text_list,
        )?,
    })
}

fn peer(f: &Fields<'_>) -> FieldResult<Peer> {
    Ok(Peer {
        sender_id: sender(f)?,
        target_id: target(f)?,
        peer_metadata: required(f, PEER_METADATA, read_peer_metadata)?,
        selected_protocol_version: required(f, SELECTED_PROTOCOL_VERSION, cbor::read_text)?,
    })
}

fn error_message(f: &Fields<'_>) -> FieldResult<ErrorMessage> {
    Ok(ErrorMessage {
        sender_id: optional(f, SENDER_ID, cbor::read_text)?.map(PeerId),
        target_id: optional(f, TARGET_ID, cbor::read_text)?.map(PeerId),
        message: required(f, MESSAGE, cbor::read_text)?,
    })
}

fn sync(f: &Fields<'_>) -> FieldResult<SyncMessage> {
    Ok(SyncMessage {
        sender_id: sender(f)?,
        target_id: target(f)?,
        document_id: document(f)?,
        data: required(f, DATA, cbor::read_bytes)?,
    })
}

fn doc_unavailable(f: &Fields<'_>) -> FieldResult<DocUnavailable> {
    Ok(DocUnavailable {
        sender_id: sender(f)?,
        target_id: target(f)?,
        document_id: document(f)?,
    })
}

fn ephemeral(f: &Fields<'_>) -> FieldResult<Ephemeral> {
    Ok(Ephemeral {
        sender_id: sender(f)?,
        target_id: target(f)?,
        document_id: document(f)?,
        count: required(f, COUNT, cbor::read_count)?,
        session_id: required(f, SESSION_ID, cbor::read_text)?,
        data: required(f, DATA, cbor::read_bytes)?,
    })
}

fn remote_subscription_change(f: &Fields<'_>) -> FieldResult<RemoteSubscriptionChange> {
    let storage_ids =
        |raw: &[u8]| cbor::read_text_list(raw).map(|ids| ids.into_iter().map(StorageId).collect());
    Ok(RemoteSubscriptionChange {
        sender_id: sender(f)?,
        target_id: target(f)?,
        add: optional(f, ADD, storage_ids)?,
        remove: optional(f, REMOVE, storage_ids)?,
    })
}

fn remote_heads_changed(f: &Fields<'_>) -> FieldResult<RemoteHeadsChanged> {
    Ok(RemoteHeadsChanged {
        sender_id: sender(f)?,
        target_id: target(f)?,
        document_id: document(f)?,
        new_heads: required(f, NEW_HEADS, read_new_heads)?,
    })
}

fn sender(f: &Fields<'_>) -> FieldResult<PeerId> {
    required(f, SENDER_ID, cbor::read_text).map(PeerId)
}

fn target(f: &Fields<'_>) -> FieldResult<PeerId> {
    required(f, TARGET_ID, cbor::read_text).map(PeerId)
}

/// The wire carries only the bs58check form; URLs and legacy UUIDs are for humans.
fn document(f: &Fields<'_>) -> FieldResult<DocumentId> {
    let text = required(f, DOCUMENT_ID, cbor::read_text)?;
    DocumentId::from_bs58check(&text).map_err(DecodeErrorKind::InvalidDocumentId)
}

/// Reads a field that may be absent; present with the wrong shape is an error.
fn optional<'b, T>(
    f: &Fields<'b>,
    key: &'static str,
    read: impl FnOnce(&'b [u8]) -> Option<T>,
) -> FieldResult<Option<T>> {
    f.raw(key)
        .map(|raw| read(raw).ok_or(DecodeErrorKind::InvalidField(key)))
        .transpose()
}

fn required<'b, T>(
    f: &Fields<'b>,
    key: &'static str,
    read: impl FnOnce(&'b [u8]) -> Option<T>,
) -> FieldResult<T> {
    optional(f, key, read)?.ok_or(DecodeErrorKind::MissingField(key))
}

/// `{storageId?, isEphemeral?}`; a missing `isEphemeral` means a peer that keeps its data.
fn read_peer_metadata(raw: &[u8]) -> Option<PeerMetadata> {
    let fields = cbor::read_map(raw)?;
    Some(PeerMetadata {
        storage_id: optional(&fields, STORAGE_ID, cbor::read_text)
            .ok()?
            .map(StorageId),
        is_ephemeral: optional(&fields, IS_EPHEMERAL, cbor::read_bool)
            .ok()?
            .unwrap_or(false),
    })
}

/// `{<storageId>: {heads, timestamp}}`, kept in wire order.
fn read_new_heads(raw: &[u8]) -> Option<Vec<(StorageId, HeadsAt)>> {
    let fields = cbor::read_map(raw)?;
    fields
        .entries()
        .map(|(storage_id, raw)| Some((StorageId::from(storage_id), read_heads_at(raw)?)))
        .collect()
}

fn read_heads_at(raw: &[u8]) -> Option<HeadsAt> {
    let fields = cbor::read_map(raw)?;
    Some(HeadsAt {
        heads: required(&fields, HEADS, cbor::read_text_list).ok()?,
        timestamp: required(&fields, TIMESTAMP, cbor::read_number).ok()?,
    })
}
