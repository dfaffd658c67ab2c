//! `DocumentSession` driven by a deterministic in-process network of named clients.
//!
//! Each test states its intent in one line and its steps as numbered paragraphs. The harness in
//! `support` checks on every server message that no advertised head is ahead of the durable
//! log, so every test here also exercises the durable-acknowledgement rule.

mod support;

use automerge::sync::{self, ChunkList, MessageVersion};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, ChangeHash, ROOT};
use proptest::prelude::*;
use syncline_shared::ids::{DocumentId, PeerId, StorageId};
use syncline_shared::protocol::Ephemeral;
use syncline_shared::session::{SessionEffect, SessionError};

use support::{Durability, Network};

const NAMES: [&str; 3] = ["alice", "bob", "carol"];

#[test]
fn concurrent_edits_to_different_keys_converge() {
    // Intent: three clients editing at once end with the server's heads and content.

    // 1. Three clients join; each makes two edits before anything is delivered.
    let mut net = Network::with_clients(&NAMES, Durability::Auto);
    for name in NAMES {
        net.edit(name, &format!("{name}-1"), "first");
        net.edit(name, &format!("{name}-2"), "second");
    }

    // 2. Deliver everything.
    net.run_until_quiet();

    // 3. All four documents agree and hold every edit; the durability check ran throughout.
    net.assert_converged();
    for name in NAMES {
        assert_eq!(
            net.value("carol", &format!("{name}-1")).as_deref(),
            Some("first")
        );
        assert_eq!(
            net.value("alice", &format!("{name}-2")).as_deref(),
            Some("second")
        );
    }
    assert_eq!(net.log().len(), 6, "each change is persisted exactly once");
    assert!(net.advertised_checked > 0);
}

#[test]
fn nothing_is_advertised_before_the_change_is_durable() {
    // Intent: the server holds every sync message back until its Persist batch is confirmed.

    // 1. Alice and Bob join and finish the opening exchange.
    let mut net = Network::with_clients(&["alice", "bob"], Durability::Manual);
    net.run_until_quiet();

    // 2. Alice edits; her change reaches the server, which asks for it to be persisted.
    net.edit("alice", "title", "draft");
    net.run_until_quiet();
    let alice_heads = net.heads("alice");
    assert!(net.server.has_unconfirmed());

    // 3. Neither connection gets a message while the batch is unconfirmed.
    let (alice, bob) = (net.client("alice").conn, net.client("bob").conn);
    assert_eq!(net.server.generate(bob), None);
    assert_eq!(net.server.generate(alice), None);
    assert_eq!(net.value("bob", "title"), None);

    // 4. The durable log already holds exactly Alice's change, written but not confirmed.
    let logged: Vec<ChangeHash> = net.log().iter().map(|change| change.hash).collect();
    assert_eq!(logged, alice_heads);
    assert!(!net.is_confirmed(&alice_heads[0]));

    // 5. Once the writer confirms, Bob receives the change.
    net.commit();
    net.run_until_quiet();
    assert_eq!(net.value("bob", "title").as_deref(), Some("draft"));
    net.assert_converged();
}

#[test]
fn late_joiner_with_empty_document_receives_everything() {
    // Intent: a peer that opens with nothing, as a `request` does, gets the whole document.

    // 1. Alice and Bob build a document together.
    let mut net = Network::with_clients(&["alice", "bob"], Durability::Auto);
    net.edit("alice", "title", "draft");
    net.edit("bob", "body", "text");
    net.edit("alice", "title", "final");
    net.run_until_quiet();

    // 2. Carol joins afterwards with an empty document.
    net.add_client("carol", None);
    net.join("carol");
    net.run_until_quiet();

    // 3. Carol has every change and the same content.
    assert_eq!(net.value("carol", "title").as_deref(), Some("final"));
    assert_eq!(net.value("carol", "body").as_deref(), Some("text"));
    net.assert_converged();
}

#[test]
fn resending_a_known_change_persists_nothing() {
    // Intent: applying a change the server already has is idempotent: no second Persist.

    // 1. Alice's change is synced and confirmed.
    let mut net = Network::with_clients(&["alice", "bob"], Durability::Auto);
    net.edit("alice", "title", "draft");
    net.run_until_quiet();
    assert_eq!(net.log().len(), 1);
    let change = net.log()[0].clone();

    // 2. The same change arrives again, once from Alice and once from Bob.
    for name in ["alice", "bob"] {
        let message = carrying(vec![change.hash], vec![change.bytes.clone()]);
        let effects = net
            .inject(name, message)
            .expect("a known change is not an error");
        assert!(
            !effects
                .iter()
                .any(|e| matches!(e, SessionEffect::Persist(_)))
        );
    }

    // 3. The log is unchanged and the peers still settle.
    net.run_until_quiet();
    assert_eq!(net.log().len(), 1);
    net.assert_converged();
}

#[test]
fn ephemeral_messages_fan_out_once() {
    // Intent: ephemeral data reaches every other peer once, and repeats or bounces are dropped.

    // 1. Three clients join.
    let mut net = Network::with_clients(&NAMES, Durability::Auto);
    net.run_until_quiet();
    let (alice, carol) = (net.client("alice").conn, net.client("carol").conn);

    // 2. Bob's message goes to Alice and Carol, addressed to each, still signed by Bob.
    let effects = net.ephemeral("bob", presence("bob", 1));
    let expected = vec![
        SessionEffect::Relay {
            to: alice,
            message: retarget(presence("bob", 1), "alice"),
        },
        SessionEffect::Relay {
            to: carol,
            message: retarget(presence("bob", 1), "carol"),
        },
    ];
    assert_eq!(effects, expected);
    assert!(net.client("bob").ephemeral.is_empty());

    // 3. The same (sender, session, count) again is dropped.
    assert_eq!(net.ephemeral("bob", presence("bob", 1)), vec![]);

    // 4. A higher count passes.
    assert_eq!(net.ephemeral("bob", presence("bob", 2)).len(), 2);

    // 5. Alice re-sends what she received, as clients do; the server drops the bounce.
    let bounced = net
        .client("alice")
        .ephemeral
        .last()
        .cloned()
        .expect("alice got bob's message");
    assert_eq!(net.ephemeral("alice", bounced), vec![]);
    assert_eq!(net.client("carol").ephemeral.len(), 2);
}

#[test]
fn saved_sync_state_resumes_on_a_new_connection() {
    // Intent: a storage peer's sync state survives a detach and a later connection converges.

    // 1. Alice (with storage) and Bob (without) sync a document.
    let mut net = Network::new(Durability::Auto);
    net.add_client("alice", Some("alice-storage"));
    net.add_client("bob", None);
    net.join("alice");
    net.join("bob");
    net.edit("alice", "title", "draft");
    net.edit("bob", "body", "text");
    net.run_until_quiet();

    // 2. Detaching Alice yields her state to keep; detaching Bob yields nothing.
    let saved = net.leave("alice");
    let Some(SessionEffect::SaveSyncState { storage_id, state }) = saved else {
        panic!("expected SaveSyncState for alice, got {saved:?}");
    };
    assert_eq!(storage_id, StorageId("alice-storage".to_owned()));
    assert!(!state.is_empty());
    assert_eq!(net.leave("bob"), None);

    // 3. While Alice is away, Bob returns and edits; Alice edits offline.
    net.join("bob");
    net.edit("bob", "body", "more text");
    net.edit("alice", "title", "final");
    net.run_until_quiet();

    // 4. Alice returns on a new connection with the saved state; everyone converges.
    net.join("alice");
    net.run_until_quiet();
    net.assert_converged();
    assert_eq!(net.value("bob", "title").as_deref(), Some("final"));
    assert_eq!(net.value("alice", "body").as_deref(), Some("more text"));
}

#[test]
fn resuming_a_saved_sync_state_costs_fewer_bytes() {
    // Intent: reconnecting with a saved state exchanges less than reconnecting afresh.

    // 1. The same history is re-synced once by a storage peer and once by a plain one.
    let resumed = reconnect_traffic(Some("alice-storage"));
    let fresh = reconnect_traffic(None);

    // 2. The saved state spares the bloom filters of a first exchange, which outweigh the
    // heads it sends instead once a history has more than a few dozen changes.
    assert!(
        resumed < fresh,
        "resumed {resumed} bytes, fresh {fresh} bytes"
    );
}

#[test]
fn partitioned_peer_reconnects_and_converges() {
    // Intent: edits made on both sides of a partition merge after a reconnect on a new connection.

    // 1. Alice and Bob share a document.
    let mut net = Network::with_clients(&["alice", "bob"], Durability::Auto);
    net.edit("alice", "title", "draft");
    net.run_until_quiet();
    let stale = net.client("bob").conn;

    // 2. Bob drops off without the server noticing; both edit; nothing crosses.
    net.go_offline("bob");
    net.edit("alice", "title", "final");
    net.edit("bob", "body", "offline text");
    net.run_until_quiet();
    assert_eq!(net.value("bob", "title").as_deref(), Some("draft"));
    assert_eq!(net.value("alice", "body"), None);

    // 3. Bob reconnects on a new connection; the stale one is detached.
    let fresh = net.reconnect("bob");
    assert_ne!(fresh, stale);
    assert!(!net.server.attached().any(|conn| conn == stale));

    // 4. Both sides' edits meet everywhere.
    net.run_until_quiet();
    net.assert_converged();
    assert_eq!(net.value("bob", "title").as_deref(), Some("final"));
    assert_eq!(net.value("alice", "body").as_deref(), Some("offline text"));
}

#[test]
fn corrupt_change_into_an_empty_document_is_an_apply_error() {
    // Intent: a change chunk that fails its checksum is rejected as the sender's fault.

    // 1. Alice joins an empty document.
    let mut net = Network::with_clients(&["alice"], Durability::Auto);
    net.run_until_quiet();

    // 2. A message whose change chunk is corrupt still decodes: the chunk list is opaque.
    let message = carrying(vec![], vec![corrupt(forged_change(b"mallory", "x"))]);
    let decoded = sync::Message::decode(&message.encode()).expect("chunk bytes are not checked");

    // 3. The session refuses it, and nothing moved or was persisted.
    let result = net.inject("alice", decoded);
    assert!(
        matches!(result, Err(SessionError::Apply(_))),
        "got {result:?}"
    );
    assert!(net.server.heads().is_empty());
    assert!(net.log().is_empty());
}

#[test]
fn corrupt_change_into_a_populated_document_changes_nothing() {
    // Intent: a corrupt chunk never panics, moves heads or persists, and the document goes on.

    // 1. Alice builds a document; Mallory joins.
    let mut net = Network::with_clients(&["alice", "mallory"], Durability::Auto);
    net.edit("alice", "title", "draft");
    net.run_until_quiet();
    let heads = net.server.heads();

    // 2. Mallory sends a corrupt change. Automerge drops a bad chunk after the first with a
    // warning rather than an error, so either outcome is a rejection.
    let message = carrying(vec![], vec![corrupt(forged_change(b"mallory", "x"))]);
    match net.inject("mallory", message) {
        Ok(effects) => assert!(
            !effects
                .iter()
                .any(|e| matches!(e, SessionEffect::Persist(_)))
        ),
        Err(error) => assert!(matches!(error, SessionError::Apply(_)), "got {error:?}"),
    }
    assert_eq!(net.server.heads(), heads);
    assert_eq!(net.log().len(), 1);

    // 3. Mallory is disconnected; Alice keeps editing and the server keeps serving her.
    net.leave("mallory");
    net.edit("alice", "title", "final");
    net.run_until_quiet();
    net.assert_converged();
}

#[test]
fn forged_sequence_number_is_an_apply_error() {
    // Intent: a well-formed change reusing another actor's sequence number is refused whole.

    // 1. Alice's first change is on the server; Mallory joins.
    let mut net = Network::with_clients(&["alice", "mallory"], Durability::Auto);
    net.edit("alice", "title", "draft");
    net.run_until_quiet();
    let heads = net.server.heads();

    // 2. Mallory sends a different change claiming to be Alice's first.
    let forged = forged_change(b"alice", "forged");
    let result = net.inject("mallory", carrying(vec![], vec![forged]));

    // 3. It is an apply error; nothing moved or was persisted.
    assert!(
        matches!(result, Err(SessionError::Apply(_))),
        "got {result:?}"
    );
    assert_eq!(net.server.heads(), heads);
    assert_eq!(net.log().len(), 1);
}

/// One random action on the network.
#[derive(Debug, Clone)]
enum Op {
    Edit { client: usize, key: u8, value: u8 },
    Step(usize),
    Commit,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..3usize, 0..4u8, any::<u8>())
            .prop_map(|(client, key, value)| Op::Edit { client, key, value }),
        6 => any::<usize>().prop_map(Op::Step),
        1 => Just(Op::Commit),
        1 => Just(Op::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_interleavings_converge_without_advertising_unpersisted_heads(
        clients in 2..=3usize,
        ops in proptest::collection::vec(op(), 0..80),
    ) {
        // Intent: any order of edits, deliveries, confirmations and crashes ends converged, and the
        // harness's durability check holds on every server message along the way.

        // 1. Two or three clients join with durability confirmed only when an op says so.
        let names = &NAMES[..clients];
        let mut net = Network::with_clients(names, Durability::Manual);

        // 2. Play the ops: edits on a few shared keys, single deliveries, single confirmations,
        // and server crashes that lose unconfirmed batches before everyone reconnects.
        for op in ops {
            match op {
                Op::Edit { client, key, value } => {
                    net.edit(names[client % clients], &format!("k{key}"), &value.to_string());
                }
                Op::Step(pick) => {
                    net.step(pick);
                }
                Op::Commit => {
                    net.commit_one();
                }
                Op::Restart => {
                    net.restart_server();
                    for name in names {
                        net.reconnect(name);
                    }
                }
            }
        }

        // 3. Let the writer catch up and the network settle; everyone agrees.
        net.durability = Durability::Auto;
        net.run_until_quiet();
        net.assert_converged();
        prop_assert!(!net.server.has_unconfirmed());
    }
}

/// Total sync bytes for Alice to rejoin a document she already has in full.
fn reconnect_traffic(storage_id: Option<&str>) -> usize {
    let mut net = Network::new(Durability::Auto);
    net.add_client("alice", storage_id);
    net.join("alice");
    for i in 0..100 {
        net.edit("alice", &format!("key-{i}"), "value");
    }
    net.run_until_quiet();
    net.leave("alice");

    net.bytes_delivered = 0;
    net.join("alice");
    net.run_until_quiet();
    net.assert_converged();
    net.bytes_delivered
}

/// A v1 sync message that carries raw change chunks and advertises `heads`.
fn carrying(heads: Vec<ChangeHash>, chunks: Vec<Vec<u8>>) -> sync::Message {
    sync::Message {
        heads,
        need: Vec::new(),
        have: Vec::new(),
        changes: ChunkList::from(chunks),
        flags: None,
        version: MessageVersion::V1,
    }
}

/// The bytes of a first change (sequence number 1) by `actor`, made outside the network.
fn forged_change(actor: &[u8], value: &str) -> Vec<u8> {
    let mut doc = AutoCommit::new().with_actor(ActorId::from(actor));
    doc.put(ROOT, "title", value)
        .expect("putting a string on the root map succeeds");
    doc.commit_with(CommitOptions::default().with_time(1));
    let change = doc
        .get_last_local_change()
        .expect("the doc just committed a change");
    change.raw_bytes().to_vec()
}

/// Flips the last byte of a chunk, which its checksum covers.
fn corrupt(mut chunk: Vec<u8>) -> Vec<u8> {
    let last = chunk.last_mut().expect("a change chunk is never empty");
    *last ^= 0xff;
    chunk
}

/// A presence update from `sender`, addressed to the server.
fn presence(sender: &str, count: u64) -> Ephemeral {
    Ephemeral {
        sender_id: PeerId(sender.to_owned()),
        target_id: PeerId("syncline-server".to_owned()),
        document_id: DocumentId::from_bytes([7; 16]),
        count,
        session_id: format!("{sender}-session"),
        data: b"cursor at 3".to_vec(),
    }
}

fn retarget(message: Ephemeral, target: &str) -> Ephemeral {
    Ephemeral {
        target_id: PeerId(target.to_owned()),
        ..message
    }
}

#[test]
fn sync_state_saved_before_commit_does_not_outlive_a_crash() {
    // Intent: a sync state kept while a change is unconfirmed claims nothing a crash can lose.

    // 1. Alice, with storage, syncs a first change and it is confirmed.
    let mut net = Network::new(Durability::Manual);
    net.add_client("alice", Some("alice-storage"));
    net.join("alice");
    net.edit("alice", "title", "draft");
    net.run_until_quiet();
    net.commit();
    net.run_until_quiet();
    let durable = net.server.heads();

    // 2. She sends a second change and leaves before it is confirmed. The harness checks that
    // any sync state the server asks to keep counts only confirmed changes as shared.
    net.edit("alice", "body", "text");
    net.run_until_quiet();
    assert!(net.server.has_unconfirmed());
    net.leave("alice");

    // 3. The server dies before the write is confirmed and restarts from the durable log.
    net.restart_server();
    assert_eq!(net.server.heads(), durable);

    // 4. Alice comes back; the server recovers the lost change from her and persists it again.
    net.durability = Durability::Auto;
    net.join("alice");
    net.run_until_quiet();
    net.assert_converged();
    assert_eq!(net.log().len(), 2);
}

#[test]
fn request_for_an_absent_document_is_unavailable_until_uploaded() {
    // Intent: `request` for a document nobody has is answered unavailable, and the asker,
    // still attached, receives the document once a peer uploads it.
    use automerge::sync::SyncDoc;
    use syncline_shared::session::{ConnectionId, DocumentSession, SyncKind};

    // 1. An absent document; the asker attaches and sends a `request` from an empty copy.
    let (asker, uploader) = (ConnectionId(1), ConnectionId(2));
    let mut session = DocumentSession::absent();
    session.attach(asker, PeerId("asker".into()), None, None);
    let mut asker_doc = AutoCommit::new();
    let mut asker_state = sync::State::new();
    let request = asker_doc
        .sync()
        .generate_sync_message(&mut asker_state)
        .expect("first message");
    let effects = session
        .receive(asker, SyncKind::Request, request)
        .expect("request accepted");
    assert_eq!(effects, vec![SessionEffect::Unavailable(asker)]);
    assert!(!session.exists());

    // 2. The uploader attaches and syncs its document until the server has its change.
    session.attach(uploader, PeerId("uploader".into()), None, None);
    let mut up_doc = AutoCommit::new();
    up_doc.put(automerge::ROOT, "n", 7).expect("put");
    up_doc.commit();
    let mut up_state = sync::State::new();
    let mut created = false;
    for _ in 0..10 {
        let Some(message) = up_doc.sync().generate_sync_message(&mut up_state) else {
            break;
        };
        let effects = session
            .receive(uploader, SyncKind::Sync, message)
            .expect("sync accepted");
        created |= effects.contains(&SessionEffect::Created);
        if effects
            .iter()
            .any(|e| matches!(e, SessionEffect::Persist(_)))
        {
            session.committed();
        }
        let Some(reply) = session.generate(uploader) else {
            break;
        };
        let reply = sync::Message::decode(&reply).expect("server message decodes");
        up_doc
            .sync()
            .receive_sync_message(&mut up_state, reply)
            .expect("uploader applies");
    }
    assert!(
        created && session.exists(),
        "the upload created the document"
    );

    // 3. The asker, never having asked again, is sent the document.
    let message = session.generate(asker).expect("a message for the asker");
    let message = sync::Message::decode(&message).expect("decodes");
    asker_doc
        .sync()
        .receive_sync_message(&mut asker_state, message)
        .expect("asker applies");
    assert_eq!(asker_doc.get_heads(), up_doc.get_heads());
}
