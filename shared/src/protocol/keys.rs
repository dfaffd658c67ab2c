//! The text of every `type` value and map key on the wire, named once for both directions.

pub(super) const JOIN: &str = "join";
pub(super) const PEER: &str = "peer";
pub(super) const ERROR: &str = "error";
pub(super) const SYNC: &str = "sync";
pub(super) const REQUEST: &str = "request";
pub(super) const DOC_UNAVAILABLE: &str = "doc-unavailable";
pub(super) const EPHEMERAL: &str = "ephemeral";
pub(super) const REMOTE_SUBSCRIPTION_CHANGE: &str = "remote-subscription-change";
pub(super) const REMOTE_HEADS_CHANGED: &str = "remote-heads-changed";
pub(super) const LEAVE: &str = "leave";

pub(super) const TYPE: &str = "type";
pub(super) const SENDER_ID: &str = "senderId";
pub(super) const TARGET_ID: &str = "targetId";
pub(super) const DOCUMENT_ID: &str = "documentId";
pub(super) const DATA: &str = "data";
pub(super) const COUNT: &str = "count";
pub(super) const SESSION_ID: &str = "sessionId";
pub(super) const MESSAGE: &str = "message";
pub(super) const PEER_METADATA: &str = "peerMetadata";
pub(super) const STORAGE_ID: &str = "storageId";
pub(super) const IS_EPHEMERAL: &str = "isEphemeral";
pub(super) const SUPPORTED_PROTOCOL_VERSIONS: &str = "supportedProtocolVersions";
pub(super) const SELECTED_PROTOCOL_VERSION: &str = "selectedProtocolVersion";
pub(super) const ADD: &str = "add";
pub(super) const REMOVE: &str = "remove";
pub(super) const NEW_HEADS: &str = "newHeads";
pub(super) const HEADS: &str = "heads";
pub(super) const TIMESTAMP: &str = "timestamp";
