//! Read-only connections: they receive every change, and their own are never applied.

use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{AutoCommit, ROOT, ReadDoc};
use syncline_shared::ids::PeerId;
use syncline_shared::session::{ConnectionId, DocumentSession, SessionEffect, SyncKind};

const WRITER: ConnectionId = ConnectionId(1);
const READER: ConnectionId = ConnectionId(2);

/// One peer with its own document and sync state towards the server.
struct Peer {
    doc: AutoCommit,
    state: sync::State,
    conn: ConnectionId,
}

impl Peer {
    fn new(conn: ConnectionId) -> Self {
        Self {
            doc: AutoCommit::new(),
            state: sync::State::new(),
            conn,
        }
    }

    fn edit(&mut self, key: &str, value: i64) {
        self.doc.put(ROOT, key, value).expect("put");
        self.doc.commit_with(CommitOptions::default().with_time(1));
    }
}

/// Runs rounds of sync between the server and the peers until nobody has anything to say;
/// returns every effect the server produced. Persist batches are confirmed at once.
fn settle(server: &mut DocumentSession, peers: &mut [&mut Peer]) -> Vec<SessionEffect> {
    let mut effects = Vec::new();
    for _ in 0..20 {
        let mut quiet = true;
        for peer in peers.iter_mut() {
            if let Some(message) = peer.doc.sync().generate_sync_message(&mut peer.state) {
                quiet = false;
                let got = server
                    .receive(peer.conn, SyncKind::Sync, message)
                    .expect("valid sync message");
                for effect in &got {
                    if matches!(effect, SessionEffect::Persist(_)) {
                        server.committed();
                    }
                }
                effects.extend(got);
            }
            if let Some(bytes) = server.generate(peer.conn) {
                quiet = false;
                let message = sync::Message::decode(&bytes).expect("server message decodes");
                peer.doc
                    .sync()
                    .receive_sync_message(&mut peer.state, message)
                    .expect("peer applies");
            }
        }
        if quiet {
            return effects;
        }
    }
    panic!("sync did not settle in 20 rounds");
}

#[test]
fn a_reader_receives_changes_and_its_own_are_refused() {
    let mut server = DocumentSession::absent();
    server.attach(WRITER, PeerId::from("writer"), None, None);
    server.attach(READER, PeerId::from("reader"), None, None);
    server.set_read_only(READER, true);
    let mut writer = Peer::new(WRITER);
    let mut reader = Peer::new(READER);

    writer.edit("price", 100);
    settle(&mut server, &mut [&mut writer, &mut reader]);
    assert_eq!(
        reader
            .doc
            .get(ROOT, "price")
            .expect("read")
            .map(|(v, _)| v.as_i64()),
        Some(Some(100)),
        "the reader receives the writer's change"
    );

    let heads = server.heads();
    reader.edit("price", 1);
    // A current Automerge peer sees the read-only flag and keeps its change to itself; one that
    // ignores the flag sends it anyway: refused, not stored, not relayed.
    let change = reader
        .doc
        .get_last_local_change()
        .expect("the reader's edit")
        .raw_bytes()
        .to_vec();
    let mut message = reader
        .doc
        .sync()
        .generate_sync_message(&mut sync::State::new())
        .expect("a fresh state always has a first message");
    message.changes = sync::ChunkList::from(vec![change]);
    let effects = server
        .receive(READER, SyncKind::Sync, message)
        .expect("valid message");
    assert!(
        effects.contains(&SessionEffect::RefusedWrite(READER)),
        "{effects:?}"
    );
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, SessionEffect::Persist(_)))
    );
    assert_eq!(server.heads(), heads, "the reader's change is not applied");
    let effects = settle(&mut server, &mut [&mut writer, &mut reader]);
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, SessionEffect::Persist(_)))
    );
    assert_eq!(server.heads(), heads);
    assert_eq!(
        writer
            .doc
            .get(ROOT, "price")
            .expect("read")
            .map(|(v, _)| v.as_i64()),
        Some(Some(100)),
        "the writer never sees the reader's change"
    );

    // The writer's later changes still reach the reader.
    writer.edit("nights", 3);
    settle(&mut server, &mut [&mut writer, &mut reader]);
    assert_eq!(
        reader
            .doc
            .get(ROOT, "nights")
            .expect("read")
            .map(|(v, _)| v.as_i64()),
        Some(Some(3))
    );
}

#[test]
fn a_reader_cannot_create_a_document() {
    let mut server = DocumentSession::absent();
    server.attach(READER, PeerId::from("reader"), None, None);
    server.set_read_only(READER, true);
    let mut reader = Peer::new(READER);
    reader.edit("price", 1);
    let message = reader
        .doc
        .sync()
        .generate_sync_message(&mut reader.state)
        .expect("first message");
    let effects = server
        .receive(READER, SyncKind::Sync, message)
        .expect("valid message");
    assert!(!server.exists(), "the upload did not create the document");
    assert!(
        effects.contains(&SessionEffect::Unavailable(READER)),
        "{effects:?}"
    );
}
