//! Syncline's sans-IO core, shared by the server and the clients.
//!
//! Data flows through it in three layers, none of which does any IO:
//!
//! - [`ids`]: document, peer and storage ids, and `automerge:` URLs, as they appear on the wire.
//! - [`protocol`]: every automerge-repo WebSocket message and its CBOR encoding. A frame from a
//!   socket becomes a [`protocol::Message`] here, or a [`protocol::DecodeError`] that says how
//!   far decoding got, so the caller can apply the protocol's validation order.
//! - [`session`]: the per-document sync state machine. A document worker feeds it decoded sync
//!   and ephemeral messages and carries out the effects it returns: persist these changes, a
//!   sync message is ready for that connection, relay this ephemeral message.
//! - [`policy`]: what the server writes after a merge so every replica agrees: conflicting map
//!   keys settled by the latest write's time, and calendar bookings confirmed or rejected so
//!   that no night is sold twice. Here rather than in the server so clients can preview it.
//! - [`ical`]: a calendar document as iCalendar events, for feeds and calendar bridges.
//! - [`chunks`]: the Automerge chunk types accepted from outside, checked before Automerge
//!   parses peer or stored bytes.
//! - [`json`]: beside those layers, a document as JSON and JSON paths into it, for CLI and HTTP.
//!
//! Time and randomness come in as arguments, so tests drive everything deterministically.

pub mod chunks;
pub mod ical;
pub mod ids;
pub mod json;
pub mod policy;
pub mod protocol;
pub mod session;
