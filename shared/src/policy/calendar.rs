//! Listing calendars: bookings that never double-book.
//!
//! A document whose root has `"type": "calendar"` holds `nights` (date → `{price, blocked,
//! blocked_by}`) and `bookings` (id → `{guest, check_in, check_out, channel, status}`), dates as
//! `YYYY-MM-DD` and `check_out` exclusive. Reservations are not last-writer-wins: the server is
//! the serialization point. After each merge it confirms the pending bookings in the order they
//! arrived (within one merge: by the time of the change that created them, then Automerge's
//! order), rejects one that overlaps a confirmed booking or a blocked night with a
//! `rejected_reason` naming what holds the nights, and puts back any status change a client may
//! not make. Clients may create `pending` bookings and move a booking to `cancelled`, which frees
//! its nights; `confirmed` and `rejected` are the server's alone.
//!
//! A calendar whose shape is off is reported as problems, never panicked on: a booking that
//! cannot be read is skipped, or rejected if it is pending.

use std::collections::HashMap;

use automerge::{ActorId, Automerge, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, Value};

use super::record::BookingDecision;
use super::times::ChangeTimes;

/// Status values.
pub const PENDING: &str = "pending";
/// Set by the server only.
pub const CONFIRMED: &str = "confirmed";
/// Set by the server only.
pub const REJECTED: &str = "rejected";
/// Set by a client to give up a booking.
pub const CANCELLED: &str = "cancelled";

/// One booking as read from the document.
#[derive(Debug, Clone, PartialEq)]
pub struct Booking {
    /// Its key under `bookings`.
    pub id: String,
    /// The booking's map.
    pub obj: ObjId,
    /// First night, `YYYY-MM-DD`.
    pub check_in: String,
    /// The morning of departure, exclusive.
    pub check_out: String,
    /// The visible status.
    pub status: String,
    /// The operation that wrote the status, to tell the server's writes from clients'.
    pub status_op: ObjId,
}

impl Booking {
    /// Whether the two stays share a night.
    fn overlaps(&self, other: &Booking) -> bool {
        self.check_in < other.check_out && other.check_in < self.check_out
    }
}

/// A decision to write: the booking's map, and what goes into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The booking's map.
    pub obj: ObjId,
    /// The status to write and why.
    pub record: BookingDecision,
}

/// What one look at a calendar found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Statuses to write.
    pub decisions: Vec<Decision>,
    /// What is wrong with the calendar's shape, for the log.
    pub problems: Vec<String>,
}

/// Whether the document is a calendar.
pub fn is_calendar(doc: &Automerge) -> bool {
    text_at(doc, &ROOT, "type", None).is_some_and(|kind| kind == "calendar")
}

/// Decides the calendar after a merge that moved it from `before` to its current heads.
pub fn decide(
    doc: &Automerge,
    before: &[ChangeHash],
    server: &ActorId,
    times: &ChangeTimes,
) -> Outcome {
    let mut outcome = Outcome::default();
    let bookings = read_bookings(doc, None, &mut outcome.problems);
    let previous: HashMap<String, String> = read_bookings(doc, Some(before), &mut Vec::new())
        .into_iter()
        .map(|b| (b.id, b.status))
        .collect();

    let mut pending = Vec::new();
    let mut confirmed = Vec::new();
    for booking in bookings {
        let before = previous.get(&booking.id).cloned();
        match settle_status(booking, before.as_deref(), server) {
            Settled::Pending(b) => pending.push(b),
            Settled::Holds(b) => confirmed.push(b),
            Settled::Revert(decision, b) => {
                if decision.record.status == CONFIRMED {
                    confirmed.push(b);
                }
                outcome.decisions.push(decision);
            }
            Settled::Free => {}
        }
    }

    // Arrival order within one merge: the creating change's time, then Automerge's order.
    let map = bookings_obj(doc);
    pending.sort_by_cached_key(|b| (times.time_of(&b.obj, &map, &b.id), b.obj.clone()));
    let blocked = blocked_nights(doc, &mut outcome.problems);
    for booking in pending {
        let decision = judge(&booking, &confirmed, &blocked);
        if decision.record.status == CONFIRMED {
            confirmed.push(booking);
        }
        outcome.decisions.push(decision);
    }
    outcome
}

/// Where a booking stands before the pending ones are judged.
enum Settled {
    /// Waits for a decision.
    Pending(Booking),
    /// Holds its nights.
    Holds(Booking),
    /// A client's change is put back.
    Revert(Decision, Booking),
    /// Holds nothing: rejected or cancelled.
    Free,
}

fn settle_status(booking: Booking, before: Option<&str>, server: &ActorId) -> Settled {
    let by_server = matches!(&booking.status_op, ObjId::Id(_, actor, _) if actor == server);
    let changed = before != Some(booking.status.as_str());
    if !changed || by_server {
        return match booking.status.as_str() {
            PENDING => Settled::Pending(booking),
            CONFIRMED => Settled::Holds(booking),
            _ => Settled::Free,
        };
    }
    match (before, booking.status.as_str()) {
        // A booking the server first sees already cancelled (made and withdrawn offline) asks
        // for nothing; confirming it would hold nights its guest gave up.
        (None, CANCELLED) => Settled::Free,
        // Any other new booking is judged whatever status its client gave it.
        (None, _) => Settled::Pending(booking),
        (Some(PENDING | CONFIRMED), CANCELLED) => Settled::Free,
        (Some(previous), attempted) => {
            let reason =
                format!("a client may not change a booking from {previous} to {attempted}");
            let decision = Decision {
                obj: booking.obj.clone(),
                record: BookingDecision {
                    booking: booking.id.clone(),
                    status: previous.to_owned(),
                    reason: Some(reason),
                    reverted: true,
                },
            };
            Settled::Revert(decision, booking)
        }
    }
}

/// Confirms the booking unless a confirmed booking or a blocked night holds one of its nights.
fn judge(
    booking: &Booking,
    confirmed: &[Booking],
    blocked: &[(String, Option<String>)],
) -> Decision {
    let reason = date_problem(booking)
        .or_else(|| {
            confirmed
                .iter()
                .find(|holder| holder.overlaps(booking))
                .map(|holder| format!("overlaps confirmed booking {}", holder.id))
        })
        .or_else(|| {
            blocked
                .iter()
                .find(|(night, _)| booking.check_in <= *night && *night < booking.check_out)
                .map(|(night, by)| match by {
                    Some(channel) => format!("night {night} is blocked by {channel}"),
                    None => format!("night {night} is blocked"),
                })
        });
    let status = if reason.is_some() {
        REJECTED
    } else {
        CONFIRMED
    };
    Decision {
        obj: booking.obj.clone(),
        record: BookingDecision {
            booking: booking.id.clone(),
            status: status.to_owned(),
            reason,
            reverted: false,
        },
    }
}

fn date_problem(booking: &Booking) -> Option<String> {
    for (name, date) in [
        ("check_in", &booking.check_in),
        ("check_out", &booking.check_out),
    ] {
        if !is_date(date) {
            return Some(format!("{name} {date:?} is not a YYYY-MM-DD date"));
        }
    }
    (booking.check_in >= booking.check_out).then(|| "check_out must be after check_in".to_owned())
}

/// Whether `text` is a real calendar date written `YYYY-MM-DD`.
pub fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range.clone())
            .is_some_and(|b| b.iter().all(u8::is_ascii_digit))
            && text[range].parse::<u32>().is_ok()
    };
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return false;
    }
    if !(digits(0..4) && digits(5..7) && digits(8..10)) {
        return false;
    }
    let number = |range: std::ops::Range<usize>| text[range].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

fn bookings_obj(doc: &Automerge) -> ObjId {
    match doc.get(ROOT, "bookings") {
        Ok(Some((Value::Object(ObjType::Map), id))) => id,
        _ => ROOT,
    }
}

/// Every readable booking, at `heads` or now; what cannot be read goes to `problems`.
fn read_bookings(
    doc: &Automerge,
    heads: Option<&[ChangeHash]>,
    problems: &mut Vec<String>,
) -> Vec<Booking> {
    let Some(map) = map_at(doc, &ROOT, "bookings", heads, problems) else {
        return Vec::new();
    };
    let keys: Vec<String> = match heads {
        Some(heads) => doc.keys_at(&map, heads).collect(),
        None => doc.keys(&map).collect(),
    };
    keys.into_iter()
        .filter_map(|id| read_booking(doc, &map, id, heads, problems))
        .collect()
}

fn read_booking(
    doc: &Automerge,
    bookings: &ObjId,
    id: String,
    heads: Option<&[ChangeHash]>,
    problems: &mut Vec<String>,
) -> Option<Booking> {
    let obj = map_at(doc, bookings, &id, heads, problems)?;
    let field = |name: &str| text_at(doc, &obj, name, heads);
    let status_op = get_at(doc, &obj, "status", heads).map(|(_, op)| op);
    match (
        field("check_in"),
        field("check_out"),
        field("status"),
        status_op,
    ) {
        (Some(check_in), Some(check_out), Some(status), Some(status_op)) => Some(Booking {
            id,
            obj,
            check_in,
            check_out,
            status,
            status_op,
        }),
        _ => {
            problems.push(format!(
                "booking {id} lacks a text check_in, check_out or status; ignored"
            ));
            None
        }
    }
}

/// Nights marked `"blocked": true`, with their `blocked_by`, in date order.
fn blocked_nights(doc: &Automerge, problems: &mut Vec<String>) -> Vec<(String, Option<String>)> {
    let Some(nights) = map_at(doc, &ROOT, "nights", None, problems) else {
        return Vec::new();
    };
    doc.keys(&nights)
        .filter_map(|night| {
            let obj = map_at(doc, &nights, &night, None, problems)?;
            let blocked = matches!(
                doc.get(&obj, "blocked"),
                Ok(Some((Value::Scalar(s), _))) if s.as_bool() == Some(true)
            );
            blocked.then(|| {
                let by = text_at(doc, &obj, "blocked_by", None);
                (night, by)
            })
        })
        .collect()
}

fn get_at(
    doc: &Automerge,
    obj: &ObjId,
    key: &str,
    heads: Option<&[ChangeHash]>,
) -> Option<(Value<'static>, ObjId)> {
    let found = match heads {
        Some(heads) => doc.get_at(obj, key, heads),
        None => doc.get(obj, key),
    };
    found
        .ok()
        .flatten()
        .map(|(value, id)| (value.to_owned(), id))
}

/// The map at `key` of `obj`; `None` if absent, with a problem noted if it is not a map.
fn map_at(
    doc: &Automerge,
    obj: &ObjId,
    key: &str,
    heads: Option<&[ChangeHash]>,
    problems: &mut Vec<String>,
) -> Option<ObjId> {
    match get_at(doc, obj, key, heads)? {
        (Value::Object(ObjType::Map), id) => Some(id),
        _ => {
            problems.push(format!("{key} is not a map; ignored"));
            None
        }
    }
}

/// A string at `key`, whether written as a scalar or as a text object (the JavaScript default).
pub fn text_at(
    doc: &Automerge,
    obj: &ObjId,
    key: &str,
    heads: Option<&[ChangeHash]>,
) -> Option<String> {
    match get_at(doc, obj, key, heads)? {
        (Value::Scalar(scalar), _) => scalar.as_str().map(str::to_owned),
        (Value::Object(ObjType::Text), id) => match heads {
            Some(heads) => doc.text_at(&id, heads).ok(),
            None => doc.text(&id).ok(),
        },
        _ => None,
    }
}
