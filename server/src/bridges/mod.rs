//! Outbound bridges: delivering merged documents to systems that are not Automerge peers.
//!
//! - [`config`]: the `[[bridge]]` tables, the document filter and the delivery mode.
//! - [`schedule`]: the retry schedule (a quick, fully jittered phase, then a long tail),
//!   `Retry-After`, and what each HTTP status means for a row and its bridge.
//! - [`webhook`]: Standard Webhooks signatures with rotating secrets.
//! - [`caldav`]: keeping a CalDAV collection in step with a calendar document.
//! - [`body`]: the request bodies (state or change batch), built once per row.
//! - [`admin`]: list bridges, replay dead rows, pause and resume.
//! - [`feed`]: the iCalendar feed export of calendar documents.
//! - [`import`]: polling booking sites' iCalendar exports into blocked nights.
//! - [`gate`]: a bridge's 429 pause and rate limit.
//! - [`dispatcher`]: one ordered chain per (bridge, document), retries, pauses, dead letters.
//!
//! Rows are written by the storage writer in the same transaction as the changes they describe
//! (see `storage::outbox`); the dispatcher only reads them and records what happened.

pub mod admin;
pub mod body;
pub mod caldav;
pub mod config;
pub mod dispatcher;
pub mod feed;
pub mod gate;
pub mod import;
pub mod schedule;
pub mod webhook;

pub use config::{BridgeConfig, DocumentFilter, Mode};
pub use dispatcher::Dispatcher;
