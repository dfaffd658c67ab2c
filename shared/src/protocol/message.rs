//! The messages of the automerge-repo WebSocket protocol, as plain data.
//!
//! Field names follow the wire (`senderId` becomes `sender_id`). Optional wire fields are
//! `Option`s; JS sends `undefined` for many of them, which decodes as `None`.

use crate::ids::{DocumentId, PeerId, StorageId};

/// One frame of the protocol, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A client introduces itself; the first message on every connection.
    Join(Join),
    /// The server's answer to `join`.
    Peer(Peer),
    /// A fatal complaint; the sender closes the connection afterwards.
    Error(ErrorMessage),
    /// An Automerge sync message for one document.
    Sync(SyncMessage),
    /// Like `sync`, sent by a peer that has no copy of the document and is asking for it.
    Request(SyncMessage),
    /// The answer to a `request` for a document the sender does not have or will not share.
    DocUnavailable(DocUnavailable),
    /// Presence and other transient data, relayed to everyone on the document, never stored.
    Ephemeral(Ephemeral),
    /// A peer asks to hear (or stop hearing) about heads held by these storage ids.
    RemoteSubscriptionChange(RemoteSubscriptionChange),
    /// Heads of one document as held by some storage ids, for subscribed peers.
    RemoteHeadsChanged(RemoteHeadsChanged),
    /// A 1.x client says goodbye; 2.x clients just close the socket.
    Leave(Leave),
    /// A `type` this server does not know; ignored by the server, kept so it can be logged.
    Unknown {
        /// The `type` field as received.
        message_type: String,
        /// The `senderId` field, if it was present and text.
        sender_id: Option<PeerId>,
    },
}

/// What a peer says about its storage when it joins or answers a join.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerMetadata {
    /// The peer's durable store, if it has one. A server announces its own so clients can tell
    /// when their changes are saved.
    pub storage_id: Option<StorageId>,
    /// True for peers that keep nothing between sessions; missing or undefined means false.
    pub is_ephemeral: bool,
}

/// The first message of a connection, from the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    /// The peer id the connection is bound to from now on.
    pub sender_id: PeerId,
    /// Absent in hand-made or very old clients.
    pub peer_metadata: Option<PeerMetadata>,
    /// Protocol versions the client speaks (`["1"]`); absent means version 1.
    pub supported_protocol_versions: Option<Vec<String>>,
}

/// The server's answer to `join`, naming the protocol version it chose.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    /// The server's own peer id.
    pub sender_id: PeerId,
    /// The client that joined.
    pub target_id: PeerId,
    /// The server's storage, which clients use as their "saved on server" signal.
    pub peer_metadata: PeerMetadata,
    /// Always `"1"` today.
    pub selected_protocol_version: String,
}

/// A complaint that ends the connection. samod sends it without sender and target, so both are
/// optional.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorMessage {
    /// Who complains, if it says.
    pub sender_id: Option<PeerId>,
    /// Who is complained to, if it says.
    pub target_id: Option<PeerId>,
    /// A human-readable description of the problem.
    pub message: String,
}

/// The body of `sync` and `request`: Automerge sync bytes for one document.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncMessage {
    /// The peer that generated the sync message.
    pub sender_id: PeerId,
    /// The peer it is for.
    pub target_id: PeerId,
    /// The document being synchronised.
    pub document_id: DocumentId,
    /// An encoded `automerge::sync::Message`; validating it is the receiver's job.
    pub data: Vec<u8>,
}

/// "I do not have this document (or may not give it to you)".
#[derive(Debug, Clone, PartialEq)]
pub struct DocUnavailable {
    /// The peer that lacks the document.
    pub sender_id: PeerId,
    /// The peer that asked for it.
    pub target_id: PeerId,
    /// The document asked for.
    pub document_id: DocumentId,
}

/// Transient data for one document, such as cursors.
///
/// `sender_id` is the original author and survives relaying; only `target_id` is rewritten.
/// (`sender_id`, `session_id`, `count`) lets receivers drop the copies that clients bounce back.
#[derive(Debug, Clone, PartialEq)]
pub struct Ephemeral {
    /// The peer that wrote the message, not the one relaying it.
    pub sender_id: PeerId,
    /// The next hop.
    pub target_id: PeerId,
    /// The document the data is about.
    pub document_id: DocumentId,
    /// Increases with every message of one session.
    pub count: u64,
    /// Random per sender session.
    pub session_id: String,
    /// Opaque application bytes (CBOR, as written by the JS client).
    pub data: Vec<u8>,
}

/// Changes the set of storage ids whose heads a peer wants gossiped to it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSubscriptionChange {
    /// The subscriber.
    pub sender_id: PeerId,
    /// The peer asked to gossip.
    pub target_id: PeerId,
    /// Storage ids to start hearing about.
    pub add: Option<Vec<StorageId>>,
    /// Storage ids to stop hearing about.
    pub remove: Option<Vec<StorageId>>,
}

/// The heads one storage holds for a document, and when that was observed.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadsAt {
    /// Change hashes, bs58check text as JS writes them; passed along, not interpreted.
    pub heads: Vec<String>,
    /// Milliseconds since the Unix epoch; JS sends it as a float64 since it exceeds 2^32.
    pub timestamp: f64,
}

/// Gossip: the heads of a document as held by some storage ids.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteHeadsChanged {
    /// The peer passing the news on.
    pub sender_id: PeerId,
    /// The subscriber.
    pub target_id: PeerId,
    /// The document whose heads changed.
    pub document_id: DocumentId,
    /// Heads per storage id, in wire order.
    pub new_heads: Vec<(StorageId, HeadsAt)>,
}

/// A 1.x client leaving; tolerated, and treated like a close.
#[derive(Debug, Clone, PartialEq)]
pub struct Leave {
    /// The peer that leaves.
    pub sender_id: PeerId,
}
