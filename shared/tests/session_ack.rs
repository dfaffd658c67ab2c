//! Durable acknowledgement when a peer's messages overtake the server's answers.

use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{AutoCommit, ROOT};
use syncline_shared::ids::PeerId;
use syncline_shared::session::{ConnectionId, DocumentSession, SessionEffect, SyncKind};

const CONN: ConnectionId = ConnectionId(1);

/// Applies a peer message and confirms its persist batch at once, as a commit would.
fn deliver(server: &mut DocumentSession, message: sync::Message) {
    let effects = server
        .receive(CONN, SyncKind::Sync, message)
        .expect("valid sync message");
    for effect in effects {
        if matches!(effect, SessionEffect::Persist(_)) {
            server.committed();
        }
    }
}

fn answer(peer: &mut AutoCommit, state: &mut sync::State, bytes: &[u8]) -> Option<sync::Message> {
    let message = sync::Message::decode(bytes).expect("the server's message decodes");
    peer.sync()
        .receive_sync_message(state, message)
        .expect("applies");
    peer.sync().generate_sync_message(state)
}

/// A peer sends a burst of changes without reading; the server answers the first few, the peer
/// then reads those answers and replies with its (already merged) heads and no changes. The
/// server must still advertise the merged heads, or the peer never learns they are durable.
#[test]
fn merged_heads_are_advertised_even_when_the_peer_named_them_first() {
    // 1. The peer and the server share a first change.
    let mut server = DocumentSession::absent();
    server.attach(CONN, PeerId::from("peer"), None, None);
    let mut peer = AutoCommit::new();
    let mut state = sync::State::new();
    peer.put(ROOT, "n", 0).expect("put");
    peer.commit_with(CommitOptions::default().with_time(1));
    for _ in 0..10 {
        if let Some(message) = peer.sync().generate_sync_message(&mut state) {
            deliver(&mut server, message);
        }
        if let Some(bytes) = server.generate(CONN) {
            answer(&mut peer, &mut state, &bytes);
        }
    }

    // 2. A burst of fifty changes, each sent at once.
    let mut burst = Vec::new();
    for n in 1..=50 {
        peer.put(ROOT, "n", n).expect("put");
        peer.commit_with(CommitOptions::default().with_time(1));
        burst.extend(peer.sync().generate_sync_message(&mut state));
    }

    // 3. The server answers after the third and the sixth; the rest arrive before the peer
    //    reads those answers, and the peer's replies (naming all fifty) arrive last.
    let mut answers = Vec::new();
    for (index, message) in burst.into_iter().enumerate() {
        deliver(&mut server, message);
        if index == 2 || index == 5 {
            answers.extend(server.generate(CONN));
        }
    }
    for bytes in answers {
        if let Some(reply) = answer(&mut peer, &mut state, &bytes) {
            assert!(
                reply.changes.is_empty(),
                "the server already has every change"
            );
            deliver(&mut server, reply);
        }
    }

    // 4. The server still tells the peer its merged heads.
    let last = server
        .generate(CONN)
        .expect("the merged heads are advertised");
    let last = sync::Message::decode(&last).expect("decodes");
    assert_eq!(last.heads, peer.get_heads());
}
