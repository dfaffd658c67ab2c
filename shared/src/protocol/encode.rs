//! [`Message`] to frame bytes.
//!
//! Output is the shortest CBOR form throughout (`a5`, not JS's `b9 00 05`), with keys in a fixed
//! order: `type`, `senderId`, `targetId`, then the message's own fields. For `ephemeral` that
//! order is samod's, so a relayed ephemeral message is byte-identical to what samod would send.
//! Byte fields are CBOR byte strings, never arrays of integers, which JS would not accept.

use super::keys::*;
use super::{
    DocUnavailable, Ephemeral, ErrorMessage, Join, Message, Peer, PeerMetadata, RemoteHeadsChanged,
    RemoteSubscriptionChange, SyncMessage,
};
use crate::ids::{PeerId, StorageId};

/// Encodes one message as a frame.
pub(super) fn encode_message(message: &Message) -> Vec<u8> {
    let mut w = Writer::default();
    match message {
        Message::Join(join) => encode_join(&mut w, join),
        Message::Peer(peer) => encode_peer(&mut w, peer),
        Message::Error(error) => encode_error(&mut w, error),
        Message::Sync(sync) => encode_sync(&mut w, SYNC, sync),
        Message::Request(sync) => encode_sync(&mut w, REQUEST, sync),
        Message::DocUnavailable(unavailable) => encode_doc_unavailable(&mut w, unavailable),
        Message::Ephemeral(ephemeral) => encode_ephemeral(&mut w, ephemeral),
        Message::RemoteSubscriptionChange(change) => encode_subscription_change(&mut w, change),
        Message::RemoteHeadsChanged(changed) => encode_heads_changed(&mut w, changed),
        Message::Leave(leave) => begin(&mut w, LEAVE, Some(&leave.sender_id), None, 0),
        Message::Unknown {
            message_type,
            sender_id,
        } => begin(&mut w, message_type, sender_id.as_ref(), None, 0),
    }
    w.out
}

/// Writes the map header and the addressing entries; `rest` counts the entries that follow.
fn begin(
    w: &mut Writer,
    message_type: &str,
    sender: Option<&PeerId>,
    target: Option<&PeerId>,
    rest: usize,
) {
    w.map(1 + usize::from(sender.is_some()) + usize::from(target.is_some()) + rest);
    w.text(TYPE).text(message_type);
    if let Some(sender) = sender {
        w.text(SENDER_ID).text(sender.as_str());
    }
    if let Some(target) = target {
        w.text(TARGET_ID).text(target.as_str());
    }
}

fn encode_join(w: &mut Writer, join: &Join) {
    let versions = join.supported_protocol_versions.as_ref();
    let rest = usize::from(join.peer_metadata.is_some()) + usize::from(versions.is_some());
    begin(w, JOIN, Some(&join.sender_id), None, rest);
    if let Some(metadata) = &join.peer_metadata {
        encode_peer_metadata(w.text(PEER_METADATA), metadata);
    }
    if let Some(versions) = versions {
        w.text(SUPPORTED_PROTOCOL_VERSIONS).array(versions.len());
        for version in versions {
            w.text(version);
        }
    }
}

fn encode_peer(w: &mut Writer, peer: &Peer) {
    begin(w, PEER, Some(&peer.sender_id), Some(&peer.target_id), 2);
    encode_peer_metadata(w.text(PEER_METADATA), &peer.peer_metadata);
    w.text(SELECTED_PROTOCOL_VERSION)
        .text(&peer.selected_protocol_version);
}

/// `isEphemeral` is always written: JS reads a missing one as "not ephemeral" too, but saying
/// so costs one byte and spares readers the guess.
fn encode_peer_metadata(w: &mut Writer, metadata: &PeerMetadata) {
    w.map(1 + usize::from(metadata.storage_id.is_some()));
    if let Some(storage_id) = &metadata.storage_id {
        w.text(STORAGE_ID).text(storage_id.as_str());
    }
    w.text(IS_EPHEMERAL).boolean(metadata.is_ephemeral);
}

fn encode_error(w: &mut Writer, error: &ErrorMessage) {
    begin(
        w,
        ERROR,
        error.sender_id.as_ref(),
        error.target_id.as_ref(),
        1,
    );
    w.text(MESSAGE).text(&error.message);
}

fn encode_sync(w: &mut Writer, message_type: &str, sync: &SyncMessage) {
    begin(
        w,
        message_type,
        Some(&sync.sender_id),
        Some(&sync.target_id),
        2,
    );
    w.text(DOCUMENT_ID).text(&sync.document_id.to_string());
    w.text(DATA).bytes(&sync.data);
}

fn encode_doc_unavailable(w: &mut Writer, unavailable: &DocUnavailable) {
    let DocUnavailable {
        sender_id,
        target_id,
        document_id,
    } = unavailable;
    begin(w, DOC_UNAVAILABLE, Some(sender_id), Some(target_id), 1);
    w.text(DOCUMENT_ID).text(&document_id.to_string());
}

fn encode_ephemeral(w: &mut Writer, ephemeral: &Ephemeral) {
    begin(
        w,
        EPHEMERAL,
        Some(&ephemeral.sender_id),
        Some(&ephemeral.target_id),
        4,
    );
    w.text(COUNT).uint(ephemeral.count);
    w.text(SESSION_ID).text(&ephemeral.session_id);
    w.text(DOCUMENT_ID).text(&ephemeral.document_id.to_string());
    w.text(DATA).bytes(&ephemeral.data);
}

fn encode_subscription_change(w: &mut Writer, change: &RemoteSubscriptionChange) {
    let lists = [(ADD, change.add.as_ref()), (REMOVE, change.remove.as_ref())];
    let present = lists.iter().filter(|(_, list)| list.is_some()).count();
    begin(
        w,
        REMOTE_SUBSCRIPTION_CHANGE,
        Some(&change.sender_id),
        Some(&change.target_id),
        present,
    );
    for (key, list) in lists {
        if let Some(list) = list {
            encode_storage_ids(w.text(key), list);
        }
    }
}

fn encode_storage_ids(w: &mut Writer, ids: &[StorageId]) {
    w.array(ids.len());
    for id in ids {
        w.text(id.as_str());
    }
}

fn encode_heads_changed(w: &mut Writer, changed: &RemoteHeadsChanged) {
    begin(
        w,
        REMOTE_HEADS_CHANGED,
        Some(&changed.sender_id),
        Some(&changed.target_id),
        2,
    );
    w.text(DOCUMENT_ID).text(&changed.document_id.to_string());
    w.text(NEW_HEADS).map(changed.new_heads.len());
    for (storage_id, heads_at) in &changed.new_heads {
        w.text(storage_id.as_str()).map(2);
        w.text(HEADS).array(heads_at.heads.len());
        for head in &heads_at.heads {
            w.text(head);
        }
        w.text(TIMESTAMP).float(heads_at.timestamp);
    }
}

/// A CBOR writer that always picks the shortest header.
///
/// Hand-written rather than `minicbor::Encoder`, whose `Vec` sink still returns a `Result` that
/// cannot fail; this keeps the encoders free of error plumbing and of `expect`.
#[derive(Default)]
struct Writer {
    out: Vec<u8>,
}

impl Writer {
    const UNSIGNED: u8 = 0;
    const BYTES: u8 = 2;
    const TEXT: u8 = 3;
    const ARRAY: u8 = 4;
    const MAP: u8 = 5;

    /// Writes a major type with its argument in the fewest bytes.
    fn header(&mut self, major: u8, argument: u64) -> &mut Self {
        let major = major << 5;
        if let Ok(small @ 0..=23) = u8::try_from(argument) {
            self.out.push(major | small);
        } else if let Ok(byte) = u8::try_from(argument) {
            self.out.extend_from_slice(&[major | 24, byte]);
        } else if let Ok(short) = u16::try_from(argument) {
            self.out.push(major | 25);
            self.out.extend_from_slice(&short.to_be_bytes());
        } else if let Ok(word) = u32::try_from(argument) {
            self.out.push(major | 26);
            self.out.extend_from_slice(&word.to_be_bytes());
        } else {
            self.out.push(major | 27);
            self.out.extend_from_slice(&argument.to_be_bytes());
        }
        self
    }

    fn len_header(&mut self, major: u8, len: usize) -> &mut Self {
        // usize is at most 64 bits on every platform Rust supports.
        self.header(major, len as u64)
    }

    fn map(&mut self, entries: usize) -> &mut Self {
        self.len_header(Self::MAP, entries)
    }

    fn array(&mut self, items: usize) -> &mut Self {
        self.len_header(Self::ARRAY, items)
    }

    fn text(&mut self, text: &str) -> &mut Self {
        self.len_header(Self::TEXT, text.len());
        self.out.extend_from_slice(text.as_bytes());
        self
    }

    fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.len_header(Self::BYTES, bytes.len());
        self.out.extend_from_slice(bytes);
        self
    }

    fn uint(&mut self, value: u64) -> &mut Self {
        self.header(Self::UNSIGNED, value)
    }

    /// Always float64, as JS writes `Date.now()`: exact for every value, and read back by JS as
    /// the same number whatever its width.
    fn float(&mut self, value: f64) -> &mut Self {
        self.out.push(0xfb);
        self.out.extend_from_slice(&value.to_be_bytes());
        self
    }

    fn boolean(&mut self, value: bool) -> &mut Self {
        self.out.push(if value { 0xf5 } else { 0xf4 });
        self
    }
}
