//! Automerge 0.12 panics on some malformed "bundle" chunks; the session refuses every bundle
//! before Automerge parses it. The inputs are the fuzzer's saved crashers.

use automerge::sync::{self, ChunkList, SyncDoc};
use automerge::transaction::Transactable;
use syncline_shared::ids::PeerId;
use syncline_shared::session::{ConnectionId, DocumentSession, SessionError, SyncKind};

const CRASHERS: [&[u8]; 2] = [
    include_bytes!(
        "../../fuzz/regressions/stored_records/automerge-0.12-bundle-chunk-hexane-lib354-unwrap-panic"
    ),
    include_bytes!(
        "../../fuzz/regressions/stored_records/automerge-0.12-bundle-chunk-2gib-allocation"
    ),
];

/// The chunk inside a saved `stored_records` input: a flag byte, a `u16` length, the chunk.
fn chunk(input: &[u8]) -> Vec<u8> {
    let len = usize::from(u16::from_le_bytes([input[1], input[2]]));
    input[3..3 + len.min(input.len() - 3)].to_vec()
}

#[test]
fn bundle_chunks_in_a_sync_message_are_refused() {
    let mut peer = automerge::AutoCommit::new();
    peer.put(automerge::ROOT, "n", 1).expect("put");
    peer.commit();
    for crasher in CRASHERS {
        let bytes = chunk(crasher);
        assert_eq!(bytes[8], 3, "the crasher is a bundle chunk");
        for exists in [false, true] {
            let mut session = match exists {
                true => DocumentSession::new(automerge::Automerge::new()),
                false => DocumentSession::absent(),
            };
            let conn = ConnectionId(1);
            session.attach(conn, PeerId::from("hostile"), None, None);
            let mut message = peer
                .sync()
                .generate_sync_message(&mut sync::State::new())
                .expect("first message");
            message.changes = ChunkList::from(vec![bytes.clone()]);
            let refused = session.receive(conn, SyncKind::Sync, message);
            assert!(
                matches!(refused, Err(SessionError::Chunk(_))),
                "{refused:?}"
            );
            assert!(session.heads().is_empty(), "nothing was applied");
        }
    }
}
