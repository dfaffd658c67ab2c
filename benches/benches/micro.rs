//! Criterion micro-benchmarks of the three costs every synced change pays: the wire codec, one
//! sync round through the server's document session, and a group commit to redb.
//!
//! `cargo bench -p syncline-benches --bench micro`; `benches/compare.sh` runs it and puts the
//! figures in BENCHMARKS.md. The test command runs each benchmark once (`cargo test --benches`)
//! so they cannot rot.

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark whose setup fails has nothing to measure; stopping at once is right"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use syncline_server::metrics::Metrics;
use syncline_server::storage::{DocumentWrite, NewChange, Storage, WriterConfig};
use syncline_shared::ids::{DocumentId, PeerId};
use syncline_shared::protocol::{Message, SyncMessage};
use syncline_shared::session::{ConnectionId, DocumentSession, SyncKind};
use syncline_tests::peer::stamped_now;

/// A sync message as a client sends it with one small edit (a night's price), after the first
/// exchange: the common message on a live connection.
fn edit_message() -> Vec<u8> {
    let mut server = AutoCommit::new();
    server.put(ROOT, "type", "calendar").unwrap();
    server.commit_with(stamped_now());
    let mut client = server.fork();
    let (mut ours, mut theirs) = (sync::State::new(), sync::State::new());
    // Settle the states so the next message carries just the new change.
    loop {
        let mut moved = false;
        if let Some(m) = client.sync().generate_sync_message(&mut ours) {
            server.sync().receive_sync_message(&mut theirs, m).unwrap();
            moved = true;
        }
        if let Some(m) = server.sync().generate_sync_message(&mut theirs) {
            client.sync().receive_sync_message(&mut ours, m).unwrap();
            moved = true;
        }
        if !moved {
            break;
        }
    }
    client.put(ROOT, "price-2026-12-24", 180).unwrap();
    client.commit_with(stamped_now());
    client
        .sync()
        .generate_sync_message(&mut ours)
        .expect("a new change to send")
        .encode()
}

fn codec(c: &mut Criterion) {
    let message = Message::Sync(SyncMessage {
        sender_id: PeerId::from("client-3f2a9c"),
        target_id: PeerId::from("syncline-server"),
        document_id: DocumentId::random_from([7; 16]),
        data: edit_message(),
    });
    let bytes = message.encode();
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("encode sync message", |b| {
        b.iter(|| black_box(&message).encode())
    });
    group.bench_function("decode sync message", |b| {
        b.iter(|| Message::decode(black_box(&bytes)).unwrap())
    });
    group.finish();
}

/// One editor's change through the server's session and on to a second editor: the writer's
/// message received, the commit confirmed, the acknowledgement and the relay generated, the
/// reader's message applied and its reply received. What a document worker does per change,
/// without the network and the disk.
fn sync_round(c: &mut Criterion) {
    let warmed = || {
        let mut round = Round::new();
        // Past the first exchange, which carries the whole document.
        for n in 0..3 {
            round.run(n);
        }
        round
    };
    let mut check = warmed();
    check.run(3);
    assert_eq!(
        check.reader_doc.get_heads(),
        check.writer_doc.get_heads(),
        "a round brings the writer's change to the reader"
    );
    // A fresh document for every round: Automerge's sync work grows with a document's history,
    // so rounds on one ever-growing document would measure the history, not the round.
    c.bench_function("sync round: one change, writer to server to reader", |b| {
        b.iter_batched_ref(warmed, |round| round.run(3), BatchSize::SmallInput)
    });
}

/// The server's session with a writer and a reader attached, and their replicas.
struct Round {
    session: DocumentSession,
    writer_doc: AutoCommit,
    writer_state: sync::State,
    reader_doc: AutoCommit,
    reader_state: sync::State,
}

const WRITER: ConnectionId = ConnectionId(1);
const READER: ConnectionId = ConnectionId(2);

impl Round {
    fn new() -> Self {
        let mut session = DocumentSession::absent();
        session.attach(WRITER, PeerId::from("writer"), None, None);
        session.attach(READER, PeerId::from("reader"), None, None);
        let mut writer_doc = AutoCommit::new();
        writer_doc.put(ROOT, "type", "calendar").unwrap();
        writer_doc.commit_with(stamped_now());
        Self {
            session,
            writer_doc,
            writer_state: sync::State::new(),
            reader_doc: AutoCommit::new(),
            reader_state: sync::State::new(),
        }
    }

    fn run(&mut self, n: u64) {
        self.writer_doc.put(ROOT, "price", n).unwrap();
        self.writer_doc.commit_with(stamped_now());
        loop {
            let message = self
                .writer_doc
                .sync()
                .generate_sync_message(&mut self.writer_state);
            let Some(m) = message else {
                break;
            };
            let m = sync::Message::decode(&m.encode()).unwrap();
            black_box(self.session.receive(WRITER, SyncKind::Sync, m).unwrap());
            if self.session.has_unconfirmed() {
                self.session.committed();
            }
            let Some(ack) = self.session.generate(WRITER) else {
                break;
            };
            let ack = sync::Message::decode(&ack).unwrap();
            self.writer_doc
                .sync()
                .receive_sync_message(&mut self.writer_state, ack)
                .unwrap();
        }
        while let Some(relay) = self.session.generate(READER) {
            let relay = sync::Message::decode(&relay).unwrap();
            self.reader_doc
                .sync()
                .receive_sync_message(&mut self.reader_state, relay)
                .unwrap();
            let Some(reply) = self
                .reader_doc
                .sync()
                .generate_sync_message(&mut self.reader_state)
            else {
                break;
            };
            let reply = sync::Message::decode(&reply.encode()).unwrap();
            self.session.receive(READER, SyncKind::Sync, reply).unwrap();
        }
    }
}

/// One durable group commit of 64 documents' writes, one small change each, queued at once so
/// the writer folds them into one transaction.
fn group_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    let writer = storage.start_writer(Arc::new(Metrics::new()), WriterConfig::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    const WRITES: usize = 64;
    let documents: Vec<DocumentId> = (0..WRITES)
        .map(|n| DocumentId::random_from([n as u8 + 1; 16]))
        .collect();
    let mut doc = AutoCommit::new();
    let mut seq = 0_u64;
    let mut group = c.benchmark_group("group commit");
    group.throughput(Throughput::Elements(WRITES as u64));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("64 writes of one change, one transaction", |b| {
        b.iter_batched(
            || {
                documents
                    .iter()
                    .map(|id| {
                        doc.put(ROOT, "price", 180).unwrap();
                        doc.commit_with(stamped_now());
                        let change = doc.get_last_local_change().unwrap().clone();
                        let mut write = DocumentWrite::new(*id);
                        seq += 1;
                        write.changes.push(NewChange {
                            seq,
                            hash: change.hash().0,
                            received_at_ms: 1_780_000_000_000 + seq,
                            author: change.actor_id().to_bytes().to_vec(),
                            bytes: change.raw_bytes().to_vec(),
                        });
                        write
                    })
                    .collect::<Vec<_>>()
            },
            |writes| {
                runtime.block_on(async {
                    let mut pending = Vec::with_capacity(writes.len());
                    for write in writes {
                        pending.push(writer.queue(write).await.unwrap());
                    }
                    for commit in pending {
                        commit.await.unwrap();
                    }
                })
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
    runtime.block_on(writer.shutdown());
}

criterion_group! {
    name = micro;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = codec, sync_round, group_commit
}
criterion_main!(micro);
