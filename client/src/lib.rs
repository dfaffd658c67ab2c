//! `syncline-client`: offline-first Automerge documents on a local redb store, kept in sync
//! with one or more Syncline (or any automerge-repo) servers.
//!
//! The data flow:
//!
//! - [`Client::open`] opens the local store (`store`): every document is a snapshot plus the
//!   changes after it, with its local heads and the heads each server acknowledged.
//! - [`Document::change`] runs a closure in one Automerge transaction stamped with the current
//!   time, and returns once the change is durable in the local store (`store::writer`, one
//!   thread committing everything queued in one transaction).
//! - [`Client::connect`] starts a connection task per server (`connection`): it joins with the
//!   store's storage id, attaches every loaded document and every stored document the server
//!   has not acknowledged, and exchanges Automerge sync messages through the same sans-IO
//!   [`DocumentSession`](syncline_shared::session::DocumentSession) the server runs. Received
//!   changes are made durable locally before they are answered or reported to subscribers.
//!   A dropped connection is retried with exponential backoff and full jitter (`backoff`).
//! - The heads a server advertises are what it has made durable; [`Document::status`] and
//!   [`Document::wait_acknowledged`] expose them.
//!
//! The CLI `syncline` (in `src/bin/`) is a thin layer over this library.

mod backoff;
mod client;
mod connection;
mod document;
mod error;
mod store;

pub use backoff::{Attempt, Backoff, BackoffConfig, reconnect_loop};
pub use client::{Client, ClientConfig, TokenProvider};
pub use document::{Document, DocumentEvent, DocumentEvents, SyncStatus};
pub use error::ClientError;
pub use store::{STORE_FILE, StoreError};
