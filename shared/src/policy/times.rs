//! When each operation was written: the timestamp of the change that holds it.
//!
//! Automerge identifies an operation by (counter, author) and a change by the range of counters
//! it used, so the change behind any value is found by a binary search in its author's changes.
//! A resolving change written by the server copies values that were written earlier; it records
//! the original time of each value it copied in its message (see [`ResolutionRecord`]), so a copy
//! competes with later edits under the time of the write it copied, not the time it was made.

use std::collections::HashMap;

use automerge::{ActorId, Automerge, ChangeHash, ObjId};

use super::record::ResolutionRecord;

/// One change, as far as timing is concerned.
#[derive(Debug, Clone)]
struct Span {
    start_op: u64,
    max_op: u64,
    time: i64,
    hash: ChangeHash,
    /// The original writes a resolving change recorded per `(object, key)` it copied.
    copied: Option<HashMap<(String, String), (i64, ChangeHash)>>,
}

/// Who really wrote a value: for a server's copy, the write it copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Write {
    /// The write's time, as the policy counts it.
    pub time: i64,
    /// The change that made the write (for a copy: the change that made the original).
    pub change: ChangeHash,
    /// Whether the value is a server's copy.
    pub copy: bool,
}

/// The write time of every operation of a document.
#[derive(Debug, Default)]
pub struct ChangeTimes {
    by_author: HashMap<ActorId, Vec<Span>>,
}

impl ChangeTimes {
    /// Indexes every change of `doc`. `effective` maps a change's own timestamp to the one the
    /// policy uses (the server clamps timestamps too far ahead of their receipt).
    pub fn of(doc: &Automerge, effective: impl Fn(&ChangeHash, i64) -> i64) -> Self {
        let mut by_author: HashMap<ActorId, Vec<Span>> = HashMap::new();
        for meta in doc.get_changes_meta(&[]) {
            let copied = meta
                .message
                .as_deref()
                .and_then(ResolutionRecord::parse)
                .map(|record| record.originals());
            let span = Span {
                start_op: meta.start_op,
                max_op: meta.max_op,
                time: effective(&meta.hash, meta.timestamp),
                hash: meta.hash,
                copied,
            };
            by_author
                .entry(meta.actor.into_owned())
                .or_default()
                .push(span);
        }
        for spans in by_author.values_mut() {
            spans.sort_by_key(|span| span.start_op);
        }
        Self { by_author }
    }

    /// The time of the value written by operation `id` at `key` of `obj`: the recorded original
    /// time if the operation is a resolving copy, else its change's time.
    pub fn time_of(&self, id: &ObjId, obj: &ObjId, key: &str) -> Option<i64> {
        self.write_of(id, obj, key).map(|write| write.time)
    }

    /// The write behind the value of operation `id` at `key` of `obj`.
    pub fn write_of(&self, id: &ObjId, obj: &ObjId, key: &str) -> Option<Write> {
        let ObjId::Id(counter, author, _) = id else {
            return None;
        };
        let spans = self.by_author.get(author)?;
        let index = spans.partition_point(|span| span.start_op <= *counter);
        let span = spans.get(index.checked_sub(1)?)?;
        if *counter > span.max_op {
            return None;
        }
        let recorded = span
            .copied
            .as_ref()
            .and_then(|copied| copied.get(&(obj.to_string(), key.to_owned())));
        Some(match recorded {
            Some(&(time, change)) => Write {
                time,
                change,
                copy: true,
            },
            None => Write {
                time: span.time,
                change: span.hash,
                copy: false,
            },
        })
    }
}
