//! Outbound bridges: delivering merged documents to systems that are not Automerge peers.
//!
//! - [`config`]: the `[[bridge]]` tables, the document filter and the delivery mode.
//! - [`schedule`]: the retry schedule (a quick, fully jittered phase, then a long tail),
//!   `Retry-After`, and what each HTTP status means for a row and its bridge.
//! - [`webhook`]: Standard Webhooks signatures with rotating secrets.

pub mod config;
pub mod schedule;
pub mod webhook;

pub use config::{BridgeConfig, DocumentFilter, Mode};
