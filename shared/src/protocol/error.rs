//! What went wrong when a frame did not decode, and how far decoding got.

use crate::ids::{IdError, PeerId};

/// A frame that could not be decoded. Carries what could be read before the failure, so the
/// caller can apply the validation order (join first, then senderId, then documentId).
///
/// `message_type` and `sender_id` are filled whenever those fields were readable text, even if
/// the failure came from a field that follows them on the wire or from a broken tail.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}")]
pub struct DecodeError {
    /// What was wrong with the frame.
    pub kind: DecodeErrorKind,
    /// The `type` field, if it was read.
    pub message_type: Option<String>,
    /// The `senderId` field, if it was read.
    pub sender_id: Option<PeerId>,
}

/// The ways a frame can fail to decode, in the order a frame is checked.
///
/// The messages are written to be sent back to the peer in an `error` message as they are.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The bytes are not well-formed CBOR, or nest deeper than the decoder allows.
    #[error("frame is not valid CBOR: {0}")]
    NotCbor(String),
    /// Well-formed CBOR, but not a map.
    #[error("frame is not a CBOR map")]
    NotAMap,
    /// A map without a `type` field (or with `type` undefined or null).
    #[error("message has no type")]
    MissingType,
    /// A field the message type requires is absent, undefined or null.
    #[error("message has no field {0}")]
    MissingField(&'static str),
    /// A field holds the wrong CBOR type, such as a number where text belongs.
    #[error("field {0} has the wrong type")]
    InvalidField(&'static str),
    /// A `documentId` that is text but not a well-formed document id.
    #[error("invalid documentId: {0}")]
    InvalidDocumentId(IdError),
    /// Bytes left over after the message map.
    #[error("frame has bytes after the message map")]
    TrailingBytes,
}

impl DecodeErrorKind {
    /// A short, stable snake_case label for metrics and structured logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotCbor(_) => "not_cbor",
            Self::NotAMap => "not_a_map",
            Self::MissingType => "missing_type",
            Self::MissingField(_) => "missing_field",
            Self::InvalidField(_) => "invalid_field",
            Self::InvalidDocumentId(_) => "invalid_document_id",
            Self::TrailingBytes => "trailing_bytes",
        }
    }
}
