//! `DocumentSession`, the sans-IO sync core, driven by an arbitrary sequence of events.
//!
//! The input decodes (with `arbitrary`) into a starting document and up to [`MAX_EVENTS`]
//! events on a few connection slots: attach (with or without a storage id, resuming a kept sync
//! state or arbitrary bytes), detach, `set_read_only`, sync messages from a real Automerge peer
//! that makes random edits (as is, corrupted, or dropped), arbitrary sync bytes, `committed`,
//! `generate` (delivered to the peer or lost), `ephemeral` and local `change`s.
//!
//! Checked after every event, from what shared/src/session.rs documents:
//! - nothing panics; a bad message comes back as an `Err`;
//! - `generate` returns `None` while `has_unconfirmed()`, and for a connection not attached;
//! - `has_unconfirmed()` is true exactly while `Persist` batches outnumber `committed` calls;
//! - durable acknowledgement: every change in the document was handed out in a `Persist`, and a
//!   generated sync message, or a kept sync state, names only changes whose batch was confirmed
//!   (or hashes the document does not hold, which a resumed state may carry);
//! - a read-only connection never moves the document's heads through `receive`, gets a
//!   `RefusedWrite` when its message carries changes, and never creates the document;
//! - `Created` comes with a `Persist` only when the document did not exist, `Unavailable` only
//!   while it does not; a kept sync state decodes; ephemeral relays skip the sender's
//!   connection and peer, and an immediate repeat is dropped.

#![no_main]

use std::collections::{HashMap, HashSet};

use arbitrary::Arbitrary;
use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, Automerge, ChangeHash, ObjType, ROOT};
use libfuzzer_sys::fuzz_target;
use syncline_shared::ids::{DocumentId, PeerId, StorageId};
use syncline_shared::protocol::Ephemeral;
use syncline_shared::session::{
    ConnectionId, DocumentSession, SessionEffect, SessionError, SyncKind,
};

/// Events read from one input at most; more make each run slower without reaching new states.
const MAX_EVENTS: usize = 64;
/// Connection slots; each has a peer document that survives detaching, as a client does.
const SLOTS: usize = 4;

#[derive(Arbitrary, Debug)]
struct Input {
    start: Start,
    events: Vec<Event>,
}

/// The session's document at the start.
#[derive(Arbitrary, Debug)]
enum Start {
    /// `DocumentSession::new` over an empty document.
    Empty,
    /// `DocumentSession::absent`: nobody has the document yet.
    Absent,
    /// `DocumentSession::load` from arbitrary snapshot and change bytes; falls back to empty.
    Load {
        snapshot: Option<Vec<u8>>,
        changes: Vec<Vec<u8>>,
    },
    /// A document with a few changes of a peer, as the server would have it from storage.
    Edited { edits: Vec<Edit> },
}

#[derive(Arbitrary, Debug)]
enum Event {
    Attach {
        slot: u8,
        peer: u8,
        storage: Option<u8>,
        saved: Saved,
    },
    Detach {
        slot: u8,
    },
    SetReadOnly {
        slot: u8,
        read_only: bool,
    },
    /// The slot's peer edits its own document (nothing is sent yet).
    Edit {
        slot: u8,
        edit: Edit,
    },
    /// The slot's peer generates its next message and the server receives it.
    PeerSend {
        slot: u8,
        request: bool,
        fault: Fault,
    },
    /// Arbitrary bytes as a sync message; skipped when they do not decode.
    Raw {
        slot: u8,
        request: bool,
        bytes: Vec<u8>,
    },
    Committed,
    /// The server generates for the slot; the message reaches the peer or is lost.
    Generate {
        slot: u8,
        deliver: bool,
    },
    Ephemeral {
        slot: u8,
        sender: u8,
        session: u8,
        count: u8,
        data: Vec<u8>,
    },
    /// A change of the server's own, through `DocumentSession::change`.
    Change {
        edit: Edit,
        fail: bool,
    },
}

/// What sync state an attach resumes.
#[derive(Arbitrary, Debug)]
enum Saved {
    None,
    /// What the session asked to keep for the storage id, if anything.
    Kept,
    Bytes(Vec<u8>),
}

/// What happens to a peer's message on the way.
#[derive(Arbitrary, Debug)]
enum Fault {
    None,
    /// One byte of the encoded message is changed; skipped if it no longer decodes.
    Flip {
        at: u16,
        xor: u8,
    },
    /// The message is cut short; skipped if it no longer decodes.
    Truncate {
        keep: u16,
    },
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Put {
        key: u8,
        value: i64,
    },
    PutText {
        key: u8,
        value: String,
    },
    Delete {
        key: u8,
    },
    Increment {
        key: u8,
        by: i8,
    },
    /// Creates (or reuses) a text object under `text` and splices into it.
    Splice {
        at: u8,
        delete: u8,
        insert: String,
    },
}

fn key(key: u8) -> String {
    format!("k{}", key % 6)
}

/// Applies an edit inside any transaction. Errors (a bad increment, a splice past the end) are
/// fine: they leave nothing behind.
fn apply_edit<T: Transactable>(tx: &mut T, edit: &Edit) -> Result<(), automerge::AutomergeError> {
    match edit {
        Edit::Put { key: k, value } => tx.put(ROOT, key(*k), *value),
        Edit::PutText { key: k, value } => tx.put(ROOT, key(*k), value.as_str()),
        Edit::Delete { key: k } => tx.delete(ROOT, key(*k)),
        Edit::Increment { key: k, by } => {
            if tx.get(ROOT, key(*k))?.is_none() {
                tx.put(ROOT, key(*k), automerge::ScalarValue::counter(0))?;
            }
            tx.increment(ROOT, key(*k), i64::from(*by))
        }
        Edit::Splice { at, delete, insert } => {
            let text = match tx.get(ROOT, "text")? {
                Some((automerge::Value::Object(ObjType::Text), id)) => id,
                _ => tx.put_object(ROOT, "text", ObjType::Text)?,
            };
            let len = tx.length(&text);
            let at = usize::from(*at).min(len);
            let delete = isize::from(*delete % 4).min((len - at) as isize);
            tx.splice_text(&text, at, delete, insert)
        }
    }
}

/// A client: its own document and its sync state toward the server.
struct Peer {
    doc: AutoCommit,
    state: sync::State,
    clock: i64,
}

/// What the harness knows the session should be doing on one slot.
struct Conn {
    peer: PeerId,
    storage: Option<StorageId>,
    read_only: bool,
}

struct Harness {
    session: DocumentSession,
    peers: Vec<Peer>,
    conns: HashMap<usize, Conn>,
    /// Persist batches handed out and not confirmed, oldest first.
    unconfirmed: std::collections::VecDeque<Vec<ChangeHash>>,
    /// Every change handed out in a Persist, or in the document from the start.
    persisted: HashSet<ChangeHash>,
    /// Changes whose batch was confirmed by `committed`, or there from the start.
    confirmed: HashSet<ChangeHash>,
    /// Sync states the session asked to keep, by storage id.
    kept: HashMap<StorageId, Vec<u8>>,
    existed: bool,
    /// The changes in the session's document when its heads were `known_heads`: rebuilt only
    /// when the heads move, since listing a document's changes is its slowest read.
    known: HashSet<ChangeHash>,
    known_heads: Vec<ChangeHash>,
}

fn conn_id(slot: usize) -> ConnectionId {
    ConnectionId(slot as u64)
}

fn slot(raw: u8) -> usize {
    usize::from(raw) % SLOTS
}

impl Harness {
    fn new(start: Start) -> Self {
        let mut session = match start {
            Start::Empty => DocumentSession::new(Automerge::new()),
            Start::Absent => DocumentSession::absent(),
            Start::Load { snapshot, changes } => {
                DocumentSession::load(snapshot.as_deref(), changes.iter().map(Vec::as_slice))
                    .unwrap_or_else(|_| DocumentSession::new(Automerge::new()))
            }
            Start::Edited { edits } => {
                let mut doc = AutoCommit::new().with_actor(ActorId::from(b"stored".as_slice()));
                for (time, edit) in edits.iter().take(16).enumerate() {
                    let _ = apply_edit(&mut doc, edit);
                    doc.commit_with(CommitOptions::default().with_time(time as i64));
                }
                DocumentSession::new(doc.document().clone())
            }
        };
        // A fixed author, so every run of an input makes the same hashes.
        session.set_author(ActorId::from(b"server".as_slice()));
        let initial: HashSet<ChangeHash> = session
            .document()
            .get_changes(&[])
            .iter()
            .map(|change| change.hash())
            .collect();
        let peers = (0..SLOTS)
            .map(|i| Peer {
                doc: AutoCommit::new().with_actor(ActorId::from([i as u8 + 1; 16].as_slice())),
                state: sync::State::new(),
                clock: 0,
            })
            .collect();
        Harness {
            existed: session.exists(),
            known: initial.clone(),
            known_heads: session.heads(),
            session,
            peers,
            conns: HashMap::new(),
            unconfirmed: Default::default(),
            persisted: initial.clone(),
            confirmed: initial,
            kept: HashMap::new(),
        }
    }

    fn run(&mut self, event: Event) {
        match event {
            Event::Attach {
                slot: s,
                peer,
                storage,
                saved,
            } => {
                let s = slot(s);
                let peer = PeerId(format!("peer-{}", peer % 3));
                let storage = storage.map(|id| StorageId(format!("store-{}", id % 2)));
                let saved = match saved {
                    Saved::None => None,
                    Saved::Kept => storage.as_ref().and_then(|id| self.kept.get(id)).cloned(),
                    Saved::Bytes(bytes) => Some(bytes),
                };
                self.session
                    .attach(conn_id(s), peer.clone(), storage.clone(), saved.as_deref());
                // A new connection: the client starts a fresh sync state too.
                self.peers[s].state = sync::State::new();
                self.conns.insert(
                    s,
                    Conn {
                        peer,
                        storage,
                        read_only: false,
                    },
                );
            }
            Event::Detach { slot: s } => {
                let s = slot(s);
                let was = self.conns.remove(&s);
                let unconfirmed = self.session.has_unconfirmed();
                let effect = self.session.detach(conn_id(s));
                match (&was, &effect) {
                    (None, Some(effect)) => panic!("detaching a stranger gave {effect:?}"),
                    (Some(conn), Some(_)) => {
                        assert!(
                            conn.storage.is_some(),
                            "state kept for a peer without storage"
                        );
                        assert!(!unconfirmed, "state kept while changes were unconfirmed");
                    }
                    (Some(conn), None) => assert!(
                        conn.storage.is_none() || unconfirmed,
                        "no state kept for a peer with storage"
                    ),
                    (None, None) => {}
                }
                self.apply(effect.into_iter().collect());
            }
            Event::SetReadOnly { slot: s, read_only } => {
                let s = slot(s);
                self.session.set_read_only(conn_id(s), read_only);
                if let Some(conn) = self.conns.get_mut(&s) {
                    conn.read_only = read_only;
                }
            }
            Event::Edit { slot: s, edit } => {
                let peer = &mut self.peers[slot(s)];
                peer.clock += 1;
                let _ = apply_edit(&mut peer.doc, &edit);
                peer.doc
                    .commit_with(CommitOptions::default().with_time(peer.clock));
            }
            Event::PeerSend {
                slot: s,
                request,
                fault,
            } => {
                let s = slot(s);
                let peer = &mut self.peers[s];
                let Some(message) = peer.doc.sync().generate_sync_message(&mut peer.state) else {
                    return;
                };
                let mut bytes = message.encode();
                match fault {
                    Fault::None => {}
                    Fault::Flip { at, xor } => {
                        let at = usize::from(at) % bytes.len();
                        bytes[at] ^= xor;
                    }
                    Fault::Truncate { keep } => bytes.truncate(usize::from(keep) % bytes.len()),
                }
                if let Ok(message) = sync::Message::decode(&bytes) {
                    self.receive(s, request, message);
                }
            }
            Event::Raw {
                slot: s,
                request,
                bytes,
            } => {
                if let Ok(message) = sync::Message::decode(&bytes) {
                    self.receive(slot(s), request, message);
                }
            }
            Event::Committed => {
                if let Some(batch) = self.unconfirmed.pop_front() {
                    self.confirmed.extend(batch);
                }
                let effects = self.session.committed();
                self.apply(effects);
            }
            Event::Generate { slot: s, deliver } => {
                let s = slot(s);
                let unconfirmed = self.session.has_unconfirmed();
                let Some(bytes) = self.session.generate(conn_id(s)) else {
                    return;
                };
                assert!(
                    !unconfirmed,
                    "generate gave a message while changes were unconfirmed"
                );
                assert!(
                    self.conns.contains_key(&s),
                    "generate for a connection not attached"
                );
                let message =
                    sync::Message::decode(&bytes).expect("the session encodes valid sync");
                self.check_advertised(&message);
                if deliver {
                    let peer = &mut self.peers[s];
                    // The peer may refuse what a corrupted exchange led to; that is its business.
                    let _ = peer
                        .doc
                        .sync()
                        .receive_sync_message(&mut peer.state, message);
                }
            }
            Event::Ephemeral {
                slot: s,
                sender,
                session,
                count,
                data,
            } => {
                let s = slot(s);
                let message = Ephemeral {
                    sender_id: PeerId(format!("peer-{}", sender % 3)),
                    target_id: PeerId("server".into()),
                    document_id: DocumentId::from_bytes([7; 16]),
                    count: u64::from(count),
                    session_id: format!("session-{}", session % 2),
                    data,
                };
                let effects = self.session.ephemeral(conn_id(s), message.clone());
                for effect in &effects {
                    let SessionEffect::Relay {
                        to,
                        message: relayed,
                    } = effect
                    else {
                        panic!("ephemeral gave {effect:?}");
                    };
                    assert_ne!(*to, conn_id(s), "relayed back to the sending connection");
                    let target = self
                        .conns
                        .get(&(to.0 as usize))
                        .expect("relayed to a connection not attached");
                    assert_ne!(target.peer, message.sender_id, "relayed to its own author");
                    assert_eq!(relayed.target_id, target.peer, "targetId not rewritten");
                    assert_eq!(relayed.sender_id, message.sender_id, "author lost in relay");
                }
                let repeat = self.session.ephemeral(conn_id(s), message);
                assert!(
                    repeat.is_empty(),
                    "a repeated ephemeral message was relayed again"
                );
            }
            Event::Change { edit, fail } => {
                let before = self.session.heads();
                let result = self
                    .session
                    .change(CommitOptions::default().with_time(1), |tx| {
                        apply_edit(tx, &edit)?;
                        if fail {
                            return Err(automerge::AutomergeError::Fail);
                        }
                        Ok(())
                    });
                match result {
                    Ok(((), effects)) => self.apply(effects),
                    Err(_) => assert_eq!(self.session.heads(), before, "a failed change stuck"),
                }
            }
        }
    }

    fn receive(&mut self, s: usize, request: bool, message: sync::Message) {
        let kind = if request {
            SyncKind::Request
        } else {
            SyncKind::Sync
        };
        let attached = self.conns.get(&s);
        let read_only = attached.is_some_and(|conn| conn.read_only);
        let carries_changes = !message.changes.is_empty();
        let before = self.session.heads();
        let existed = self.session.exists();
        match self.session.receive(conn_id(s), kind, message) {
            Ok(effects) => {
                assert!(attached.is_some(), "a stranger's message was accepted");
                if read_only {
                    assert_eq!(self.session.heads(), before, "a read-only connection wrote");
                    assert!(
                        !effects.iter().any(|e| matches!(
                            e,
                            SessionEffect::Persist(_) | SessionEffect::Created
                        )),
                        "a read-only connection's message persisted or created: {effects:?}"
                    );
                    if carries_changes {
                        assert!(
                            effects.contains(&SessionEffect::RefusedWrite(conn_id(s))),
                            "a read-only connection's changes were not refused: {effects:?}"
                        );
                    }
                    assert_eq!(self.session.exists(), existed);
                }
                self.apply(effects);
            }
            Err(SessionError::NotAttached(conn)) => {
                assert_eq!(conn, conn_id(s));
                assert!(
                    attached.is_none(),
                    "an attached connection was called a stranger"
                );
            }
            Err(SessionError::Chunk(_)) => {
                // Refused before Automerge parsed anything, stranger or not.
                assert_eq!(
                    self.session.heads(),
                    before,
                    "a refused message changed the document"
                );
                assert_eq!(self.session.exists(), existed);
            }
            Err(SessionError::Apply(_)) => {
                assert!(attached.is_some(), "a stranger's message was applied");
                if read_only {
                    assert_eq!(self.session.heads(), before, "a read-only connection wrote");
                }
            }
        }
    }

    fn apply(&mut self, effects: Vec<SessionEffect>) {
        let persists = effects
            .iter()
            .filter(|e| matches!(e, SessionEffect::Persist(_)))
            .count();
        assert!(
            persists <= 1,
            "more than one Persist for one event: {effects:?}"
        );
        if effects.contains(&SessionEffect::Created) {
            assert!(!self.existed, "Created for a document that existed");
            assert_eq!(persists, 1, "Created without its Persist");
        }
        for effect in effects {
            match effect {
                SessionEffect::Persist(changes) => {
                    assert!(!changes.is_empty(), "an empty Persist");
                    let mut batch = Vec::new();
                    for change in changes {
                        let parsed = automerge::Change::try_from(change.bytes.as_slice())
                            .expect("a persisted change parses");
                        assert_eq!(
                            parsed.hash(),
                            change.hash,
                            "persisted bytes of another hash"
                        );
                        assert!(
                            self.persisted.insert(change.hash),
                            "change {} persisted twice",
                            change.hash
                        );
                        batch.push(change.hash);
                    }
                    self.unconfirmed.push_back(batch);
                }
                SessionEffect::SyncReady(conn) => {
                    assert!(
                        self.conns.contains_key(&(conn.0 as usize)),
                        "SyncReady for {conn}, not attached"
                    );
                }
                SessionEffect::Relay { .. } => panic!("Relay outside ephemeral"),
                SessionEffect::SaveSyncState { storage_id, state } => {
                    let decoded = sync::State::decode(&state).expect("a kept state decodes");
                    for head in &decoded.shared_heads {
                        self.check_durable(head, "kept a sync state sharing");
                    }
                    self.kept.insert(storage_id, state);
                }
                SessionEffect::Unavailable(conn) => {
                    assert!(
                        !self.session.exists(),
                        "Unavailable for a document that exists"
                    );
                    assert!(self.conns.contains_key(&(conn.0 as usize)));
                }
                SessionEffect::Created => assert!(self.session.exists()),
                SessionEffect::RefusedWrite(conn) => {
                    let conn = self.conns.get(&(conn.0 as usize));
                    assert!(
                        conn.is_some_and(|c| c.read_only),
                        "refused a writable connection"
                    );
                }
            }
        }
        self.check();
    }

    /// Invariants that hold between events.
    fn check(&mut self) {
        assert_eq!(
            self.session.has_unconfirmed(),
            !self.unconfirmed.is_empty(),
            "has_unconfirmed() disagrees with Persist batches minus committed() calls"
        );
        if self.existed {
            assert!(self.session.exists(), "the document stopped existing");
        }
        self.existed = self.session.exists();
        self.refresh_known();
        for conn in self.session.attached() {
            assert!(
                self.conns.contains_key(&(conn.0 as usize)),
                "{conn} attached unexpectedly"
            );
        }
        assert_eq!(self.session.attached().count(), self.conns.len());
    }

    /// Catches up with the changes added to the document since the heads were last seen (the
    /// document only grows, so those are exactly the changes not behind the old heads), and
    /// checks that each was handed out to persist.
    fn refresh_known(&mut self) {
        let heads = self.session.heads();
        if heads == self.known_heads {
            return;
        }
        for change in self.session.document().get_changes(&self.known_heads) {
            assert!(
                self.persisted.contains(&change.hash()),
                "change {} is in the document but was never handed out to persist",
                change.hash()
            );
            self.known.insert(change.hash());
        }
        self.known_heads = heads;
    }

    fn check_advertised(&mut self, message: &sync::Message) {
        for head in &message.heads {
            self.check_durable(head, "advertised head");
        }
        for have in &message.have {
            for head in &have.last_sync {
                self.check_durable(head, "advertised as shared");
            }
        }
    }

    /// A hash the session holds must be confirmed durable before it is named to anyone. Hashes it
    /// does not hold can only come from a resumed (possibly garbage) saved state.
    fn check_durable(&mut self, hash: &ChangeHash, what: &str) {
        self.refresh_known();
        let held = self.known.contains(hash);
        assert!(
            !held || self.confirmed.contains(hash),
            "{what} {hash} before its batch was confirmed"
        );
    }
}

fuzz_target!(|input: Input| {
    let mut harness = Harness::new(input.start);
    harness.check();
    for event in input.events.into_iter().take(MAX_EVENTS) {
        harness.run(event);
        harness.check();
    }
});
