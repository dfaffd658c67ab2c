//! The library's error type.

use std::convert::Infallible;
use std::time::Duration;

use syncline_shared::ids::DocumentId;
use syncline_shared::json::JsonError;

use crate::store::StoreError;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The local store failed; the operation's writes did not happen.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Automerge refused a change or could not load stored data.
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    /// A JSON value or path could not be applied to the document.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// No connected server has the document, and the local store does not either.
    #[error("document {0} is not in the local store and no connected server has it")]
    Unavailable(DocumentId),
    /// A wait ran out.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// How long.
        after: Duration,
    },
    /// A server URL is not usable.
    #[error("invalid server URL {url}: {why}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The client was closed while the operation waited.
    #[error("the client is closed")]
    Closed,
}

impl From<Infallible> for ClientError {
    fn from(never: Infallible) -> Self {
        match never {}
    }
}
