//! The automerge-repo WebSocket protocol: its messages and their CBOR codec.
//!
//! Every binary WebSocket frame is one CBOR map with text keys, and its `type` selects the
//! message. The server's socket task hands each frame to [`Message::decode`]; on success the
//! message goes on to the connection and document logic, on failure the [`DecodeError`] says
//! what was wrong and how much was readable, so the connection can answer with an `error` naming
//! the problem and close. Outgoing messages go through [`Message::encode`].
//!
//! Decoding follows what real peers send rather than what is tidy: JS writes every map header
//! in its 16-bit form, keys in any order, `undefined` for unset fields and large integers as
//! float64, and all of that is accepted. Encoding writes the shortest form, which JS and samod
//! both read. No input panics the decoder; the worst a frame can do is be rejected.

mod cbor;
mod decode;
mod encode;
mod error;
mod keys;
mod message;

pub use error::{DecodeError, DecodeErrorKind};
pub use message::{
    DocUnavailable, Ephemeral, ErrorMessage, HeadsAt, Join, Leave, Message, Peer, PeerMetadata,
    RemoteHeadsChanged, RemoteSubscriptionChange, SyncMessage,
};

use crate::ids::{DocumentId, PeerId};

impl Message {
    /// Decodes one frame. Keys are looked up by name, unknown keys are ignored, and an unknown
    /// `type` yields [`Message::Unknown`] rather than an error.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        decode::decode_frame(bytes)
    }

    /// Encodes the message as one frame, in the shortest CBOR form. [`Message::Unknown`] becomes
    /// a map with just its `type` and `senderId`.
    pub fn encode(&self) -> Vec<u8> {
        encode::encode_message(self)
    }

    /// The wire `type`: `"join"`, `"sync"`, ..., or the unknown name as received.
    pub fn type_name(&self) -> &str {
        match self {
            Message::Join(_) => keys::JOIN,
            Message::Peer(_) => keys::PEER,
            Message::Error(_) => keys::ERROR,
            Message::Sync(_) => keys::SYNC,
            Message::Request(_) => keys::REQUEST,
            Message::DocUnavailable(_) => keys::DOC_UNAVAILABLE,
            Message::Ephemeral(_) => keys::EPHEMERAL,
            Message::RemoteSubscriptionChange(_) => keys::REMOTE_SUBSCRIPTION_CHANGE,
            Message::RemoteHeadsChanged(_) => keys::REMOTE_HEADS_CHANGED,
            Message::Leave(_) => keys::LEAVE,
            Message::Unknown { message_type, .. } => message_type,
        }
    }

    /// Who sent the message: what the server checks against the peer a connection joined as.
    /// Only `error` and unknown messages can lack one.
    pub fn sender_id(&self) -> Option<&PeerId> {
        match self {
            Message::Join(m) => Some(&m.sender_id),
            Message::Peer(m) => Some(&m.sender_id),
            Message::Error(m) => m.sender_id.as_ref(),
            Message::Sync(m) | Message::Request(m) => Some(&m.sender_id),
            Message::DocUnavailable(m) => Some(&m.sender_id),
            Message::Ephemeral(m) => Some(&m.sender_id),
            Message::RemoteSubscriptionChange(m) => Some(&m.sender_id),
            Message::RemoteHeadsChanged(m) => Some(&m.sender_id),
            Message::Leave(m) => Some(&m.sender_id),
            Message::Unknown { sender_id, .. } => sender_id.as_ref(),
        }
    }

    /// Who the message is for; `join`, `leave` and unknown messages have no target.
    pub fn target_id(&self) -> Option<&PeerId> {
        match self {
            Message::Peer(m) => Some(&m.target_id),
            Message::Error(m) => m.target_id.as_ref(),
            Message::Sync(m) | Message::Request(m) => Some(&m.target_id),
            Message::DocUnavailable(m) => Some(&m.target_id),
            Message::Ephemeral(m) => Some(&m.target_id),
            Message::RemoteSubscriptionChange(m) => Some(&m.target_id),
            Message::RemoteHeadsChanged(m) => Some(&m.target_id),
            Message::Join(_) | Message::Leave(_) | Message::Unknown { .. } => None,
        }
    }

    /// The document a per-document message is about, for routing it to that document's worker.
    pub fn document_id(&self) -> Option<DocumentId> {
        match self {
            Message::Sync(m) | Message::Request(m) => Some(m.document_id),
            Message::DocUnavailable(m) => Some(m.document_id),
            Message::Ephemeral(m) => Some(m.document_id),
            Message::RemoteHeadsChanged(m) => Some(m.document_id),
            Message::Join(_)
            | Message::Peer(_)
            | Message::Error(_)
            | Message::RemoteSubscriptionChange(_)
            | Message::Leave(_)
            | Message::Unknown { .. } => None,
        }
    }
}
