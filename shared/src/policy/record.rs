//! The message of a change the server writes to resolve conflicts and decide bookings.
//!
//! It is JSON behind a fixed prefix, so an operator reading a change log sees what happened and
//! why, the history API can list it, and [`ChangeTimes`](super::ChangeTimes) can read back the
//! original time of each value the change copied.

use std::collections::HashMap;

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};

/// What every resolving change's message starts with.
pub const PREFIX: &str = "syncline-policy ";

/// One key whose concurrent values were settled by timestamp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyResolution {
    /// The map's object id, as Automerge writes it (`_root`, `12@ab12...`).
    pub obj: String,
    /// A readable path to the key, such as `/nights/2026-12-24/price`.
    pub path: String,
    /// The key inside the map.
    pub key: String,
    /// The winning value, as JSON.
    pub winner: serde_json::Value,
    /// The winning write's time: the copy competes with later edits under this time.
    pub time: i64,
    /// The change that made the winning write (hex). A later write that descends from it
    /// supersedes the copy just as it supersedes the original.
    pub original: String,
    /// How many concurrent values there were.
    pub candidates: usize,
}

/// One booking the server confirmed, rejected or put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingDecision {
    /// The booking's key under `bookings`.
    pub booking: String,
    /// The status the server wrote.
    pub status: String,
    /// Why, for rejections and reverted client changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The server put back a status a client may not set, rather than deciding anew.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reverted: bool,
}

/// Everything one resolving change did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResolutionRecord {
    /// Keys settled by timestamp.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<KeyResolution>,
    /// Booking decisions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bookings: Vec<BookingDecision>,
}

impl ResolutionRecord {
    /// Whether the record holds nothing to write.
    pub fn is_empty(&self) -> bool {
        self.conflicts.is_empty() && self.bookings.is_empty()
    }

    /// The change message for this record.
    pub fn message(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned());
        format!("{PREFIX}{json}")
    }

    /// Reads a change message back; `None` for messages that are not resolution records.
    pub fn parse(message: &str) -> Option<Self> {
        serde_json::from_str(message.strip_prefix(PREFIX)?).ok()
    }

    /// The original write behind every key the change copied, by `(object id, key)`: its time
    /// and its change (unreadable hashes are left out).
    pub fn originals(&self) -> HashMap<(String, String), (i64, ChangeHash)> {
        self.conflicts
            .iter()
            .filter_map(|c| {
                let hash = c.original.parse().ok()?;
                Some(((c.obj.clone(), c.key.clone()), (c.time, hash)))
            })
            .collect()
    }
}
