//! Calendar documents rendered as iCalendar.

use automerge::AutoCommit;
use automerge::transaction::CommitOptions;
use serde_json::json;
use syncline_shared::ical::{Detail, events, render};
use syncline_shared::ids::DocumentId;
use syncline_shared::json::create_root;

const ID: DocumentId = DocumentId::from_bytes([7; 16]);

fn calendar() -> AutoCommit {
    let mut doc = AutoCommit::new();
    create_root(
        &mut doc,
        &json!({
            "type": "calendar", "name": "Loft, sea view",
            "nights": {
                "2026-12-30": { "blocked": true },
                "2026-12-31": { "blocked": true },
                "2027-01-01": { "blocked": true, "blocked_by": "airbnb" },
                "2027-01-02": { "blocked": true, "blocked_by": "airbnb" },
                "2027-01-05": { "blocked": true, "blocked_by": "airbnb" },
                "2027-01-06": { "blocked": false, "price": 90 }
            },
            "bookings": {
                "b1": { "guest": "Ana", "check_in": "2026-12-24", "check_out": "2026-12-27",
                        "channel": "direct", "status": "confirmed" },
                "b2": { "guest": "Ben", "check_in": "2026-12-25", "check_out": "2026-12-26",
                        "status": "rejected" },
                "b3": { "guest": "Cleo", "check_in": "2026-12-10", "check_out": "2026-12-12",
                        "status": "cancelled" }
            }
        }),
    )
    .expect("an object root");
    doc.commit_with(CommitOptions::default().with_time(1_798_761_600));
    doc
}

/// Confirmed bookings and blocked runs become all-day events with exclusive ends; rejected
/// and cancelled bookings do not; runs split where `blocked_by` changes or a night is free.
#[test]
fn events_cover_confirmed_bookings_and_blocked_runs() {
    let mut doc = calendar();
    let found = events(ID, doc.document(), Detail::Full);
    let summary: Vec<(&str, &str, &str)> = found
        .iter()
        .map(|e| (e.start.as_str(), e.end.as_str(), e.summary.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("2026-12-24", "2026-12-27", "Booked: Ana (direct)"),
            ("2026-12-30", "2027-01-01", "Blocked"),
            ("2027-01-01", "2027-01-03", "Blocked (airbnb)"),
            ("2027-01-05", "2027-01-06", "Blocked (airbnb)"),
        ]
    );
    assert_eq!(found[0].uid, format!("{ID}-booking-b1@syncline"));
    assert_eq!(found[1].uid, format!("{ID}-block-2026-12-30@syncline"));
}

/// The file is deterministic, CRLF, folded, escaped, and private renderings name no guest.
#[test]
fn rendering_is_stable_and_private_when_asked() {
    let mut doc = calendar();
    let full = render(ID, doc.document(), Detail::Full);
    assert_eq!(full, render(ID, doc.document(), Detail::Full));
    assert!(full.starts_with("BEGIN:VCALENDAR\r\n") && full.ends_with("END:VCALENDAR\r\n"));
    assert!(full.contains("X-WR-CALNAME:Loft\\, sea view\r\n"));
    assert!(full.contains("DTSTART;VALUE=DATE:20261224\r\nDTEND;VALUE=DATE:20261227\r\n"));
    assert!(full.contains("DTSTAMP:20270101T000000Z\r\n"));
    assert!(full.contains("SEQUENCE:1\r\n"));
    assert!(full.lines().all(|line| line.len() <= 75));

    let private = render(ID, doc.document(), Detail::Private);
    assert!(!private.contains("Ana") && private.contains("SUMMARY:Reserved"));
}
