//! The merge policy driven in-process: timestamp winners, the skew clamp, calendar decisions,
//! and a property test in which replicas edit concurrently and the server receives their
//! changes in random orders, in random batches, with duplicates.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, Automerge, Change, ObjType, ROOT, ReadDoc};
use proptest::prelude::*;
use serde_json::{Value, json};
use syncline_shared::json::{create_root, to_json};
use syncline_shared::policy::{self, Plan, ResolutionRecord, calendar};

const SERVER: [u8; 16] = [0x5e; 16];

fn server_actor() -> ActorId {
    ActorId::from(SERVER.as_slice())
}

/// A replica forked from `base` with its own author.
fn fork(base: &Automerge, author: u8) -> AutoCommit {
    let mut doc = AutoCommit::load(&base.save()).expect("a saved document loads");
    doc.set_actor(ActorId::from([author; 16].as_slice()));
    doc
}

fn commit_at(doc: &mut AutoCommit, time: i64) {
    doc.commit_with(CommitOptions::default().with_time(time));
}

fn base(content: &Value) -> Automerge {
    let mut doc = AutoCommit::new();
    create_root(&mut doc, content).expect("an object root");
    commit_at(&mut doc, 1);
    doc.document().clone()
}

/// The server side of one merge: apply the batch, then commit the plan if it has anything.
fn merge(server: &mut Automerge, batch: Vec<Change>, now: i64) -> Option<Plan> {
    let before = server.get_heads();
    server.apply_changes(batch).expect("valid changes apply");
    let plan = policy::plan(server, &before, &server_actor(), |_, time| time);
    if plan.is_empty() {
        return None;
    }
    let options = CommitOptions::default()
        .with_time(plan.time(now))
        .with_message(plan.message());
    server
        .transact_with(|_| options, |tx| plan.apply(tx))
        .expect("the plan applies");
    Some(plan)
}

fn changes(doc: &mut AutoCommit) -> Vec<Change> {
    doc.get_changes(&[])
}

fn new_server(base: &Automerge) -> Automerge {
    let mut server = Automerge::load(&base.save()).expect("loads");
    server.set_actor(server_actor());
    server
}

/// The later write wins even when Automerge's own order picks the earlier one, and the copy
/// carries the winner's time in its message.
#[test]
fn the_latest_write_wins_a_conflict() {
    let base = base(&json!({ "price": 100 }));
    let mut host = fork(&base, 1);
    let mut phone = fork(&base, 2);

    // 1. The host writes first (time 10) after a long history, so Automerge prefers its op.
    for n in 0..20 {
        host.put(ROOT, "other", n).expect("put");
        commit_at(&mut host, 5);
    }
    host.put(ROOT, "price", 150).expect("put");
    commit_at(&mut host, 10);
    phone.put(ROOT, "price", 180).expect("put");
    commit_at(&mut phone, 20);

    // 2. Merged on the server, Automerge shows the host's value; the plan writes the phone's.
    let mut server = new_server(&base);
    let mut batch = changes(&mut host);
    batch.extend(changes(&mut phone));
    let before = server.get_heads();
    server.apply_changes(batch.clone()).expect("apply");
    let visible = server
        .get(ROOT, "price")
        .expect("get")
        .map(|(v, _)| v.to_string());
    assert_eq!(visible.as_deref(), Some("150"), "Automerge's own winner");

    let plan = policy::plan(&server, &before, &server_actor(), |_, t| t);
    assert_eq!(plan.resolutions.len(), 1);
    assert_eq!(
        plan.time(99),
        20,
        "the copy carries the winning write's time"
    );
    let options = CommitOptions::default()
        .with_time(plan.time(99))
        .with_message(plan.message());
    server
        .transact_with(|_| options, |tx| plan.apply(tx))
        .expect("apply plan");
    assert_eq!(to_json(&server)["price"], json!(180));

    // 3. Stable: the same changes again change nothing, and nothing needs resolving.
    let before = server.get_heads();
    server.apply_changes(batch).expect("duplicates are no-ops");
    assert!(policy::plan(&server, &before, &server_actor(), |_, t| t).is_empty());

    // 4. The record in the change message is readable.
    let message = server
        .get_changes(&[])
        .last()
        .and_then(|c| c.message().map(str::to_owned))
        .expect("a message");
    let record = ResolutionRecord::parse(&message).expect("a policy record");
    assert_eq!(record.conflicts[0].path, "/price");
    assert_eq!(record.conflicts[0].winner, json!(180));
}

/// A timestamp far in the future counts as its receipt time, so it cannot win by lying.
#[test]
fn a_future_timestamp_is_clamped() {
    let base = base(&json!({ "price": 100 }));
    let mut liar = fork(&base, 1);
    let mut honest = fork(&base, 2);
    liar.put(ROOT, "price", 1).expect("put");
    commit_at(&mut liar, 1_000_000);
    honest.put(ROOT, "price", 2).expect("put");
    commit_at(&mut honest, 500);

    let mut server = new_server(&base);
    let before = server.get_heads();
    let liar_hashes: Vec<_> = changes(&mut liar).iter().map(Change::hash).collect();
    let mut batch = changes(&mut liar);
    batch.extend(changes(&mut honest));
    server.apply_changes(batch).expect("apply");

    // Both arrived at 100; with a skew allowance of 300 the liar's time counts as 400.
    let received = 100;
    let effective = |hash: &automerge::ChangeHash, time: i64| {
        if liar_hashes.contains(hash) {
            time.min(received + policy::DEFAULT_SKEW_SECONDS)
        } else {
            time
        }
    };
    let plan = policy::plan(&server, &before, &server_actor(), effective);
    let shown = to_json(&server)["price"].clone();
    let winner = plan
        .resolutions
        .first()
        .map_or(shown, |r| r.record.winner.clone());
    assert_eq!(
        winner,
        json!(2),
        "the honest write at 500 beats the liar's clamped 400"
    );
}

fn calendar_base() -> Automerge {
    base(&json!({
        "type": "calendar",
        "nights": { "2026-12-05": { "blocked": true, "blocked_by": "airbnb" } },
        "bookings": {}
    }))
}

fn book(doc: &mut AutoCommit, id: &str, check_in: &str, check_out: &str, time: i64) {
    let (_, bookings) = doc.get(ROOT, "bookings").expect("get").expect("bookings");
    let booking = doc.put_object(&bookings, id, ObjType::Map).expect("map");
    doc.put(&booking, "guest", id).expect("put");
    doc.put(&booking, "check_in", check_in).expect("put");
    doc.put(&booking, "check_out", check_out).expect("put");
    let status = doc
        .put_object(&booking, "status", ObjType::Text)
        .expect("text");
    doc.splice_text(&status, 0, 0, "pending").expect("splice");
    commit_at(doc, time);
}

fn status_of(doc: &Automerge, id: &str) -> (String, Option<String>) {
    let state = to_json(doc);
    let booking = &state["bookings"][id];
    (
        booking["status"].as_str().unwrap_or_default().to_owned(),
        booking["rejected_reason"].as_str().map(str::to_owned),
    )
}

/// Overlapping bookings in one merge: the earlier-stamped one is confirmed, the other rejected
/// naming it; a stay across a blocked night is rejected naming the channel.
#[test]
fn overlapping_bookings_are_decided_in_order() {
    let base = calendar_base();
    let mut ana = fork(&base, 1);
    let mut ben = fork(&base, 2);
    let mut cleo = fork(&base, 3);
    book(&mut ana, "ana", "2026-12-01", "2026-12-04", 20);
    book(&mut ben, "ben", "2026-12-03", "2026-12-05", 10);
    book(&mut cleo, "cleo", "2026-12-05", "2026-12-07", 30);

    let mut server = new_server(&base);
    let mut batch = changes(&mut ana);
    batch.extend(changes(&mut ben));
    batch.extend(changes(&mut cleo));
    merge(&mut server, batch, 100).expect("decisions");

    assert_eq!(status_of(&server, "ben"), ("confirmed".to_owned(), None));
    assert_eq!(
        status_of(&server, "ana"),
        (
            "rejected".to_owned(),
            Some("overlaps confirmed booking ben".to_owned())
        )
    );
    assert_eq!(
        status_of(&server, "cleo"),
        (
            "rejected".to_owned(),
            Some("night 2026-12-05 is blocked by airbnb".to_owned())
        )
    );
}

/// A client writing `confirmed` itself is put back; cancelling a confirmed booking frees its
/// nights for the next guest.
#[test]
fn clients_cannot_confirm_and_cancelling_frees_nights() {
    let base = calendar_base();
    let mut server = new_server(&base);
    let mut ana = fork(&base, 1);
    book(&mut ana, "ana", "2026-12-01", "2026-12-03", 10);
    merge(&mut server, changes(&mut ana), 11).expect("confirmed");
    assert_eq!(status_of(&server, "ana").0, "confirmed");

    // 1. A cheater books over Ana's nights and is rejected; it then writes `confirmed` itself,
    //    which the server puts back.
    let mut cheat = AutoCommit::load(&server.save()).expect("loads");
    cheat.set_actor(ActorId::from([9u8; 16].as_slice()));
    book(&mut cheat, "cheat", "2026-12-02", "2026-12-04", 12);
    merge(&mut server, changes(&mut cheat), 13).expect("a rejection");
    assert_eq!(status_of(&server, "cheat").0, "rejected");
    cheat
        .merge(&mut AutoCommit::load(&server.save()).expect("loads"))
        .expect("merge");
    let (_, bookings) = cheat.get(ROOT, "bookings").expect("get").expect("bookings");
    let (_, booking) = cheat
        .get(&bookings, "cheat")
        .expect("get")
        .expect("booking");
    cheat.put(&booking, "status", "confirmed").expect("put");
    commit_at(&mut cheat, 14);
    let plan = merge(&mut server, changes(&mut cheat), 15).expect("a revert");
    assert_eq!(plan.decisions[0].record.status, "rejected");
    assert_eq!(status_of(&server, "cheat").0, "rejected");
    assert_eq!(status_of(&server, "ana").0, "confirmed");

    // 2. Ana cancels; a new booking of her nights is then confirmed.
    let mut ana = AutoCommit::load(&server.save()).expect("loads");
    ana.set_actor(ActorId::from([1u8; 16].as_slice()));
    let (_, bookings) = ana.get(ROOT, "bookings").expect("get").expect("bookings");
    let (_, booking) = ana.get(&bookings, "ana").expect("get").expect("booking");
    ana.put(&booking, "status", "cancelled").expect("put");
    commit_at(&mut ana, 16);
    book(&mut ana, "dan", "2026-12-01", "2026-12-02", 17);
    merge(&mut server, changes(&mut ana), 18).expect("a confirmation");
    assert_eq!(status_of(&server, "ana").0, "cancelled");
    assert_eq!(status_of(&server, "dan").0, "confirmed");
}

/// A booking made and cancelled before the server heard of it (offline) stays cancelled and
/// holds nothing, while a pending request for the same nights in the same merge is confirmed.
#[test]
fn a_booking_first_seen_cancelled_is_left_cancelled() {
    let base = calendar_base();
    let mut server = new_server(&base);
    let mut ana = fork(&base, 1);
    book(&mut ana, "ana", "2026-12-01", "2026-12-03", 10);
    let (_, bookings) = ana.get(ROOT, "bookings").expect("get").expect("bookings");
    let (_, booking) = ana.get(&bookings, "ana").expect("get").expect("booking");
    ana.put(&booking, "status", "cancelled").expect("put");
    commit_at(&mut ana, 11);
    let mut ben = fork(&base, 2);
    book(&mut ben, "ben", "2026-12-02", "2026-12-04", 12);
    let mut batch = changes(&mut ana);
    batch.extend(changes(&mut ben));
    merge(&mut server, batch, 13).expect("a decision for ben");
    assert_eq!(status_of(&server, "ana"), ("cancelled".to_owned(), None));
    assert_eq!(status_of(&server, "ben"), ("confirmed".to_owned(), None));
}

/// A calendar with the wrong shape is reported and its unreadable parts ignored, never a panic.
#[test]
fn a_malformed_calendar_is_reported() {
    let base = base(&json!({ "type": "calendar", "nights": 3, "bookings": { "x": 1 } }));
    let mut editor = fork(&base, 1);
    editor.put(ROOT, "touch", 1).expect("put");
    commit_at(&mut editor, 5);
    let mut server = new_server(&base);
    let before = server.get_heads();
    server.apply_changes(changes(&mut editor)).expect("apply");
    let plan = policy::plan(&server, &before, &server_actor(), |_, t| t);
    assert!(plan.decisions.is_empty());
    assert!(
        plan.problems.iter().any(|p| p.contains("nights")),
        "{:?}",
        plan.problems
    );
    assert!(calendar::is_date("2028-02-29") && !calendar::is_date("2026-02-29"));
    assert!(!calendar::is_date("2026-13-01") && !calendar::is_date("26-01-01"));
}

/// One replica's edit in the property test.
#[derive(Debug, Clone)]
enum Edit {
    /// A root key (`k0`..`k2`) set to a value.
    Put { key: u8, value: i64 },
    /// A night's price.
    Price { night: u8, value: i64 },
    /// A booking of `nights` nights from the given day of December.
    Book { day: u8, nights: u8 },
}

fn edit() -> impl Strategy<Value = (Edit, i64)> {
    let edit = prop_oneof![
        (0u8..3, 0i64..1000).prop_map(|(key, value)| Edit::Put { key, value }),
        (1u8..7, 0i64..1000).prop_map(|(night, value)| Edit::Price { night, value }),
        (1u8..9, 1u8..4).prop_map(|(day, nights)| Edit::Book { day, nights }),
    ];
    // A step forward of the replica's clock; equal times are common enough to test ties.
    (edit, 0i64..3)
}

fn day(day: u8) -> String {
    format!("2026-12-{day:02}")
}

fn apply_edit(doc: &mut AutoCommit, replica: usize, index: usize, edit: &Edit, time: i64) {
    match edit {
        Edit::Put { key, value } => {
            doc.put(ROOT, format!("k{key}"), *value).expect("put");
            commit_at(doc, time);
        }
        Edit::Price { night, value } => {
            let (_, nights) = doc.get(ROOT, "nights").expect("get").expect("nights");
            let (_, night) = doc.get(&nights, day(*night)).expect("get").expect("night");
            doc.put(&night, "price", *value).expect("put");
            commit_at(doc, time);
        }
        Edit::Book { day: first, nights } => {
            let id = format!("r{replica}-{index}");
            book(doc, &id, &day(*first), &day(first + nights), time);
        }
    }
}

/// A small deterministic generator for delivery order, so a failing case replays exactly.
struct Shuffle(u64);

impl Shuffle {
    fn next(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound.max(1) as u64) as usize
    }
}

/// The key path of a policy-checked scalar: a root key or a night's price.
fn scalar_keys() -> Vec<Vec<String>> {
    let mut keys: Vec<Vec<String>> = (0..3).map(|k| vec![format!("k{k}")]).collect();
    keys.extend((1..7).map(|n| vec!["nights".to_owned(), day(n), "price".to_owned()]));
    keys
}

fn path_of(edit: &Edit) -> Option<Vec<String>> {
    match edit {
        Edit::Put { key, .. } => Some(vec![format!("k{key}")]),
        Edit::Price { night, .. } => {
            Some(vec!["nights".to_owned(), day(*night), "price".to_owned()])
        }
        Edit::Book { .. } => None,
    }
}

/// A replica's last write to `path` that changed its value, as (time, value).
fn last_effective_write(plan: &[(Edit, i64)], path: &[String]) -> Option<(i64, i64)> {
    let initial = (path[0] == "nights").then_some(50);
    let mut current = initial;
    let mut last = None;
    for (edit, time) in plan {
        if path_of(edit).as_deref() != Some(path) {
            continue;
        }
        let value = value_of(edit);
        if current != Some(value) {
            current = Some(value);
            last = Some((*time, value));
        }
    }
    last
}

fn value_of(edit: &Edit) -> i64 {
    match edit {
        Edit::Put { value, .. } | Edit::Price { value, .. } => *value,
        Edit::Book { .. } => 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Replicas edit concurrently; the server receives their changes shuffled, batched and
    /// duplicated, resolving after every batch; then everyone syncs. All end identical, shown
    /// values have the latest time among the concurrent writes, no confirmed bookings overlap,
    /// and there is at most one resolving change per merge.
    #[test]
    fn replicas_and_server_agree_whatever_the_delivery(
        plans in prop::collection::vec(prop::collection::vec(edit(), 1..5), 2..4),
        seed in 1u64..u64::MAX,
    ) {
        // 1. A calendar with six priced nights; each replica edits its own fork.
        let nights: serde_json::Map<String, Value> =
            (1..7).map(|n| (day(n), json!({ "price": 50 }))).collect();
        let base = base(&json!({ "type": "calendar", "nights": nights, "bookings": {} }));
        let mut replicas: Vec<AutoCommit> = (0..plans.len())
            .map(|r| fork(&base, u8::try_from(r + 1).expect("few replicas")))
            .collect();
        // Each replica's clock only moves forward: times are running sums of the steps.
        let plans: Vec<Vec<(Edit, i64)>> = plans
            .into_iter()
            .map(|plan| {
                plan.into_iter()
                    .scan(100, |clock, (edit, step)| {
                        *clock += step;
                        Some((edit, *clock))
                    })
                    .collect()
            })
            .collect();
        for (r, plan) in plans.iter().enumerate() {
            for (i, (edit, time)) in plan.iter().enumerate() {
                apply_edit(&mut replicas[r], r, i, edit, *time);
            }
        }

        // 2. Delivery: every change once, a third of them twice, shuffled, in random batches.
        let mut shuffle = Shuffle(seed);
        let mut pool: Vec<Change> = replicas.iter_mut().flat_map(changes).collect();
        let extra: Vec<Change> = pool.iter().filter(|_| shuffle.next(3) == 0).cloned().collect();
        pool.extend(extra);
        for i in (1..pool.len()).rev() {
            pool.swap(i, shuffle.next(i + 1));
        }
        let mut server = new_server(&base);
        let (mut merges, mut resolving) = (0, 0);
        while !pool.is_empty() {
            let size = 1 + shuffle.next(pool.len().min(4));
            let batch: Vec<Change> = pool.drain(..size).collect();
            merges += 1;
            if merge(&mut server, batch, 200).is_some() {
                resolving += 1;
            }
        }
        prop_assert!(resolving <= merges);

        // 3. Everyone syncs with the server; all end byte-identical.
        let server_state = serde_json::to_string(&to_json(&server)).expect("json");
        for replica in &mut replicas {
            replica.merge(&mut AutoCommit::load(&server.save()).expect("loads")).expect("merge");
            prop_assert_eq!(replica.get_heads(), server.get_heads());
            let state = serde_json::to_string(&to_json(replica.document())).expect("json");
            prop_assert_eq!(&state, &server_state);
        }

        // 4. Shown values have the latest time among each replica's last effective write to the
        //    key (writing the value a key already holds is no operation in Automerge).
        let state = to_json(&server);
        for path in scalar_keys() {
            let last_writes: Vec<(i64, i64)> = plans
                .iter()
                .filter_map(|plan| last_effective_write(plan, &path))
                .collect();
            let Some(latest) = last_writes.iter().map(|(t, _)| *t).max() else { continue };
            let shown = path.iter().fold(&state, |v, k| &v[k.as_str()]).as_i64();
            prop_assert!(
                last_writes.iter().any(|(t, v)| *t == latest && Some(*v) == shown),
                "{path:?} shows {shown:?}, the latest writes were {last_writes:?}"
            );
        }

        // 5. Every booking is decided, and the confirmed ones never share a night.
        let bookings = state["bookings"].as_object().expect("bookings map");
        let confirmed: Vec<(&str, &str)> = bookings
            .values()
            .filter(|b| b["status"] == "confirmed")
            .map(|b| (b["check_in"].as_str().unwrap_or(""), b["check_out"].as_str().unwrap_or("")))
            .collect();
        for booking in bookings.values() {
            let status = booking["status"].as_str().unwrap_or("");
            prop_assert!(status == "confirmed" || status == "rejected", "undecided: {booking}");
            if status == "rejected" {
                prop_assert!(booking["rejected_reason"].is_string());
            }
        }
        for (i, a) in confirmed.iter().enumerate() {
            for b in &confirmed[i + 1..] {
                prop_assert!(!(a.0 < b.1 && b.0 < a.1), "{a:?} and {b:?} overlap");
            }
        }
    }
}
