//! The merge policy: what the server writes after a merge so that every replica agrees.
//!
//! After each merge the server calls [`plan`] with the heads from before it. The plan looks only
//! at what the merge touched:
//!
//! - [`conflict`]: map keys left with concurrent values whose latest write by time is not the
//!   value Automerge shows get that value written back;
//! - [`calendar`]: in calendar documents, pending bookings are confirmed or rejected and status
//!   changes a client may not make are put back.
//!
//! The server commits a non-empty plan as one change of its own ([`Plan::apply`], with
//! [`Plan::message`] and [`Plan::time`]), in the same storage transaction as the merge. The
//! plan is stable: after its change, nothing it looked at needs writing again, so applying it
//! cannot loop, and an empty plan writes nothing. The code is here, not in the server, so a
//! client can preview what the server will decide.

pub mod calendar;
pub mod conflict;
pub mod record;
mod times;

use std::cell::OnceCell;

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, AutomergeError, ChangeHash, ObjType, ReadDoc};

pub use record::{BookingDecision, KeyResolution, ResolutionRecord};
pub use times::{ChangeTimes, Write};

use calendar::Decision;
use conflict::Resolution;

/// How far ahead of its receipt a change's timestamp may be before the server counts it as
/// received now: clocks drift, but a device set a year ahead must not win every conflict.
pub const DEFAULT_SKEW_SECONDS: i64 = 300;

/// What the server should write after one merge.
#[derive(Debug, Default)]
pub struct Plan {
    /// Keys to set to their policy winner.
    pub resolutions: Vec<Resolution>,
    /// Booking statuses to write.
    pub decisions: Vec<Decision>,
    /// Problems with a calendar's shape, for the log.
    pub problems: Vec<String>,
}

/// Works out the plan for a merge that moved `doc` from `before` to its current heads.
///
/// `server` is the author of the server's own changes; `effective` maps a change's timestamp
/// to the one the policy uses (the server clamps timestamps too far ahead of their receipt).
pub fn plan(
    doc: &Automerge,
    before: &[ChangeHash],
    server: &ActorId,
    effective: impl Fn(&ChangeHash, i64) -> i64,
) -> Plan {
    let after = doc.get_heads();
    if after == before {
        return Plan::default();
    }
    // Indexing every change costs a pass over the history: only done when something needs it.
    let times = OnceCell::new();
    let times = || times.get_or_init(|| ChangeTimes::of(doc, &effective));

    let touched = conflict::touched_keys(doc, before);
    let contested = touched
        .into_iter()
        .filter(|key| {
            doc.get_all(&key.obj, key.key.as_str())
                .is_ok_and(|values| values.len() > 1)
        })
        .collect::<Vec<_>>();
    let mut plan = Plan::default();
    if !contested.is_empty() {
        plan.resolutions = conflict::resolve(doc, &contested, times());
    }
    if calendar::is_calendar(doc) {
        let outcome = calendar::decide(doc, before, server, times());
        plan.decisions = outcome.decisions;
        plan.problems = outcome.problems;
    }
    plan
}

impl Plan {
    /// Whether the plan writes nothing.
    pub fn is_empty(&self) -> bool {
        self.resolutions.is_empty() && self.decisions.is_empty()
    }

    /// What the change records, for its message and the log.
    pub fn record(&self) -> ResolutionRecord {
        ResolutionRecord {
            conflicts: self.resolutions.iter().map(|r| r.record.clone()).collect(),
            bookings: self.decisions.iter().map(|d| d.record.clone()).collect(),
        }
    }

    /// The change message.
    pub fn message(&self) -> String {
        self.record().message()
    }

    /// The change's timestamp: `now` when it decides bookings (the decision is made now);
    /// otherwise the latest winning write's time, so the copy never outranks an edit made after
    /// the write it copies (each copy's own original time is also in the message).
    pub fn time(&self, now: i64) -> i64 {
        if !self.decisions.is_empty() {
            return now;
        }
        self.resolutions
            .iter()
            .map(|r| r.record.time)
            .max()
            .unwrap_or(now)
    }

    /// Writes the plan in a transaction. Strings are written as text objects, as the
    /// JavaScript client writes them, so its users read plain strings.
    pub fn apply(&self, tx: &mut impl Transactable) -> Result<(), AutomergeError> {
        for resolution in &self.resolutions {
            tx.put(
                &resolution.obj,
                resolution.key.as_str(),
                resolution.value.clone(),
            )?;
        }
        for decision in &self.decisions {
            put_text(tx, &decision.obj, "status", &decision.record.status)?;
            if let Some(reason) = &decision.record.reason
                && decision.record.status == calendar::REJECTED
            {
                put_text(tx, &decision.obj, "rejected_reason", reason)?;
            }
        }
        Ok(())
    }
}

/// Puts `text` at `key` as a text object, as the JavaScript client writes strings.
pub fn put_text(
    tx: &mut impl Transactable,
    obj: &automerge::ObjId,
    key: &str,
    text: &str,
) -> Result<(), AutomergeError> {
    let id = tx.put_object(obj, key, ObjType::Text)?;
    tx.splice_text(&id, 0, 0, text)
}
