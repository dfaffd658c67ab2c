//! A calendar document as iCalendar (RFC 5545), for feeds and calendar bridges.
//!
//! Each confirmed booking becomes one all-day VEVENT from its first night to its check-out date
//! (`DTEND` is exclusive, as `check_out` is), and each run of consecutive blocked nights with the
//! same `blocked_by` becomes one more. UIDs derive from the document and the booking id, or the
//! run's first night, so they survive restarts and re-renders: a run that grows or shrinks at
//! its end keeps its UID, one whose first night moves is a new event. Dates stay dates; nothing
//! passes through UTC, so a stay is never off by a day.
//!
//! The output is deterministic for a given document version: `DTSTAMP` and `LAST-MODIFIED` are
//! the time of the document's latest change and `SEQUENCE` is the length of its change log, which
//! only grows, so a restart can never lower it.

use std::fmt::Write as _;

use automerge::{Automerge, ObjType, ROOT, ReadDoc, Value};

use crate::ids::DocumentId;
use crate::policy::calendar::{CONFIRMED, is_date, text_at};

/// How much a rendering tells about the guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Only that nights are taken: for feeds read by other booking sites.
    Private,
    /// Guest names and channels: for the host's own calendar.
    Full,
}

/// One all-day event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Stable identity of the event.
    pub uid: String,
    /// First night, `YYYY-MM-DD`.
    pub start: String,
    /// The day after the last night, `YYYY-MM-DD` (exclusive).
    pub end: String,
    /// The title.
    pub summary: String,
}

/// The events of a calendar document: confirmed bookings, then blocked runs, in date order.
pub fn events(id: DocumentId, doc: &Automerge, detail: Detail) -> Vec<Event> {
    let mut events = bookings(id, doc, detail);
    events.extend(blocked_runs(id, doc));
    events.sort_by(|a, b| (&a.start, &a.uid).cmp(&(&b.start, &b.uid)));
    events
}

fn bookings(id: DocumentId, doc: &Automerge, detail: Detail) -> Vec<Event> {
    let Some(map) = map_at(doc, &ROOT, "bookings") else {
        return Vec::new();
    };
    doc.keys(&map)
        .filter_map(|key| {
            let booking = map_at(doc, &map, &key)?;
            let field = |name: &str| text_at(doc, &booking, name, None);
            if field("status").as_deref() != Some(CONFIRMED) {
                return None;
            }
            let (start, end) = (field("check_in")?, field("check_out")?);
            if !is_date(&start) || !is_date(&end) || start >= end {
                return None;
            }
            let summary = match detail {
                Detail::Private => "Reserved".to_owned(),
                Detail::Full => {
                    let guest = field("guest").unwrap_or_else(|| "guest".to_owned());
                    match field("channel") {
                        Some(channel) => format!("Booked: {guest} ({channel})"),
                        None => format!("Booked: {guest}"),
                    }
                }
            };
            Some(Event {
                uid: format!("{id}-booking-{key}@syncline"),
                start,
                end,
                summary,
            })
        })
        .collect()
}

/// Runs of consecutive blocked nights with the same `blocked_by`.
fn blocked_runs(id: DocumentId, doc: &Automerge) -> Vec<Event> {
    let Some(nights) = map_at(doc, &ROOT, "nights") else {
        return Vec::new();
    };
    // Keys come sorted, and ISO dates sort by date.
    let blocked: Vec<(String, Option<String>)> = doc
        .keys(&nights)
        .filter(|night| is_date(night))
        .filter_map(|night| {
            let obj = map_at(doc, &nights, &night)?;
            let on = matches!(
                doc.get(&obj, "blocked"),
                Ok(Some((Value::Scalar(s), _))) if s.as_bool() == Some(true)
            );
            on.then(|| (night, text_at(doc, &obj, "blocked_by", None)))
        })
        .collect();

    let mut runs: Vec<(String, String, Option<String>)> = Vec::new();
    for (night, by) in blocked {
        let next = next_day(&night);
        match runs.last_mut() {
            Some((_, end, run_by)) if *end == night && *run_by == by => *end = next,
            _ => runs.push((night, next, by)),
        }
    }
    runs.into_iter()
        .map(|(start, end, by)| Event {
            uid: format!("{id}-block-{start}@syncline"),
            summary: match by {
                Some(channel) => format!("Blocked ({channel})"),
                None => "Blocked".to_owned(),
            },
            start,
            end,
        })
        .collect()
}

fn map_at(doc: &Automerge, obj: &automerge::ObjId, key: &str) -> Option<automerge::ObjId> {
    match doc.get(obj, key) {
        Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
        _ => None,
    }
}

/// A document version's `SEQUENCE` (its change log's length) and `DTSTAMP` (its latest
/// change's time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    sequence: usize,
    stamp: String,
}

impl Version {
    /// The current version of `doc`.
    pub fn of(doc: &Automerge) -> Self {
        let metas = doc.get_changes_meta(&[]);
        Self {
            sequence: metas.len(),
            stamp: stamp(metas.iter().map(|m| m.timestamp).max().unwrap_or(0)),
        }
    }
}

/// The calendar as an iCalendar file (CRLF lines, folded at 75 octets).
pub fn render(id: DocumentId, doc: &Automerge, detail: Detail) -> String {
    let version = Version::of(doc);
    let name = text_at(doc, &ROOT, "name", None).unwrap_or_else(|| id.to_string());
    let mut lines = header(&format!("X-WR-CALNAME:{}", escape(&name)));
    for event in events(id, doc, detail) {
        lines.extend(vevent(&event, &version));
    }
    lines.push("END:VCALENDAR".to_owned());
    finish(&lines)
}

/// One event as a file of its own, as a CalDAV collection stores it.
pub fn render_event(event: &Event, version: &Version) -> String {
    let mut lines = header("");
    lines.retain(|line| !line.is_empty());
    lines.extend(vevent(event, version));
    lines.push("END:VCALENDAR".to_owned());
    finish(&lines)
}

fn header(name_line: &str) -> Vec<String> {
    vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//Syncline//Listing calendar//EN".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        name_line.to_owned(),
    ]
}

fn vevent(event: &Event, version: &Version) -> [String; 10] {
    let Version { sequence, stamp } = version;
    [
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}", escape(&event.uid)),
        format!("DTSTAMP:{stamp}"),
        format!("LAST-MODIFIED:{stamp}"),
        format!("SEQUENCE:{sequence}"),
        format!("DTSTART;VALUE=DATE:{}", event.start.replace('-', "")),
        format!("DTEND;VALUE=DATE:{}", event.end.replace('-', "")),
        format!("SUMMARY:{}", escape(&event.summary)),
        "TRANSP:OPAQUE".to_owned(),
        "END:VEVENT".to_owned(),
    ]
}

fn finish(lines: &[String]) -> String {
    lines.iter().fold(String::new(), |mut out, line| {
        fold(line, &mut out);
        out
    })
}

/// Escapes a TEXT value.
pub fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace('\n', "\\n")
}

/// Writes `line` folded to 75 octets per physical line, without splitting a character.
fn fold(line: &str, out: &mut String) {
    let mut width = 0;
    for ch in line.chars() {
        if width + ch.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(ch);
        width += ch.len_utf8();
    }
    out.push_str("\r\n");
}

/// A UTC timestamp as iCalendar writes it, from seconds since the epoch.
fn stamp(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = String::new();
    let _ = write!(
        out,
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    out
}

/// Most nights one imported event may block; a longer event is cut there, so a feed cannot
/// make the server write years of nights.
pub const MAX_EVENT_NIGHTS: usize = 366;

/// Why an imported feed was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// The text is not an iCalendar file.
    #[error("not an iCalendar file (no BEGIN:VCALENDAR)")]
    NotICalendar,
    /// An event's dates cannot be read.
    #[error("event {index}: {why}")]
    BadEvent {
        /// The event's position in the file.
        index: usize,
        /// What is wrong.
        why: String,
    },
}

/// The nights an imported feed (a booking site's export) blocks: every night from each
/// event's `DTSTART` up to its exclusive `DTEND` (one night if it has none). Cancelled events
/// block nothing. Date-times count by their date.
pub fn nights_in_feed(text: &str) -> Result<std::collections::BTreeSet<String>, FeedError> {
    let lines = unfold(text);
    if !lines
        .iter()
        .any(|line| line.eq_ignore_ascii_case("BEGIN:VCALENDAR"))
    {
        return Err(FeedError::NotICalendar);
    }
    let mut nights = std::collections::BTreeSet::new();
    let mut event: Option<Vec<&str>> = None;
    let mut index = 0;
    for line in &lines {
        match (line.to_ascii_uppercase().as_str(), &mut event) {
            ("BEGIN:VEVENT", _) => event = Some(Vec::new()),
            ("END:VEVENT", Some(props)) => {
                event_nights(props, index, &mut nights)?;
                index += 1;
                event = None;
            }
            (_, Some(props)) => props.push(line.as_str()),
            _ => {}
        }
    }
    Ok(nights)
}

/// Joins folded lines (a line break followed by a space or tab continues the line).
fn unfold(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        match (raw.strip_prefix([' ', '\t']), lines.last_mut()) {
            (Some(rest), Some(last)) => last.push_str(rest),
            _ => lines.push(raw.to_owned()),
        }
    }
    lines
}

fn event_nights(
    props: &[&str],
    index: usize,
    nights: &mut std::collections::BTreeSet<String>,
) -> Result<(), FeedError> {
    let value = |name: &str| {
        props.iter().find_map(|prop| {
            let (key, value) = prop.split_once(':')?;
            let key = key.split(';').next()?;
            key.eq_ignore_ascii_case(name).then_some(value.trim())
        })
    };
    if value("STATUS").is_some_and(|s| s.eq_ignore_ascii_case("CANCELLED")) {
        return Ok(());
    }
    let bad = |why: String| FeedError::BadEvent { index, why };
    let start = value("DTSTART").ok_or_else(|| bad("no DTSTART".to_owned()))?;
    let start = ical_date(start).ok_or_else(|| bad(format!("DTSTART {start:?}")))?;
    let end = match value("DTEND") {
        Some(end) => ical_date(end).ok_or_else(|| bad(format!("DTEND {end:?}")))?,
        None => next_day(&start),
    };
    let mut night = start;
    for _ in 0..MAX_EVENT_NIGHTS {
        if night >= end {
            break;
        }
        let next = next_day(&night);
        nights.insert(night);
        night = next;
    }
    Ok(())
}

/// `20261224` or `20261224T150000Z` as `2026-12-24`, if it is a real date.
fn ical_date(value: &str) -> Option<String> {
    let digits = value.get(0..8)?;
    let date = format!("{}-{}-{}", &digits[0..4], &digits[4..6], &digits[6..8]);
    is_date(&date).then_some(date)
}

/// The day after a `YYYY-MM-DD` date (the input is checked by the caller).
pub fn next_day(date: &str) -> String {
    let number = |range: std::ops::Range<usize>| date.get(range).and_then(|t| t.parse().ok());
    let (Some(y), Some(m), Some(d)) = (number(0..4), number(5..7), number(8..10)) else {
        return date.to_owned();
    };
    let (y, m, d) = civil_from_days(days_from_civil(y, m, d) + 1);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A booking site's export: folded lines, a date-time, a cancelled event, a one-day event.
    #[test]
    fn feed_events_become_nights() {
        let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART;VALUE=DATE:20261230\r\n\
                    DTEND;VALUE=DATE:2027\r\n 0102\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\n\
                    DTSTART:20270110T150000Z\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nSTATUS:CANCELLED\r\n\
                    DTSTART;VALUE=DATE:20270201\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let nights: Vec<String> = nights_in_feed(text).expect("a feed").into_iter().collect();
        assert_eq!(
            nights,
            ["2026-12-30", "2026-12-31", "2027-01-01", "2027-01-10"]
        );
        assert_eq!(nights_in_feed("<html>"), Err(FeedError::NotICalendar));
        let bad = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:soon\nEND:VEVENT\n";
        assert!(matches!(
            nights_in_feed(bad),
            Err(FeedError::BadEvent { .. })
        ));
    }

    #[test]
    fn next_day_crosses_months_years_and_leap_days() {
        assert_eq!(next_day("2026-12-31"), "2027-01-01");
        assert_eq!(next_day("2028-02-28"), "2028-02-29");
        assert_eq!(next_day("2026-02-28"), "2026-03-01");
        assert_eq!(next_day("2026-04-30"), "2026-05-01");
    }

    #[test]
    fn stamps_are_utc_basic_format() {
        assert_eq!(stamp(0), "19700101T000000Z");
        assert_eq!(stamp(1_798_761_600 + 3_723), "20270101T010203Z");
    }

    #[test]
    fn long_lines_fold_without_splitting_characters() {
        let mut out = String::new();
        fold(&format!("SUMMARY:{}", "é".repeat(60)), &mut out);
        let lines: Vec<&str> = out.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| l.len() <= 75));
        assert!(lines[1..].iter().all(|l| l.starts_with(' ')));
    }
}
