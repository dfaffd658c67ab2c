//! Storage against a real redb file in a temporary directory: what is written and acknowledged
//! reads back, survives a reopen, and shares commits under concurrency.

use std::sync::Arc;

use syncline_server::metrics::Metrics;
use syncline_server::storage::{
    CommitReceipt, DocumentWrite, NewChange, Snapshot, Storage, StorageError, Writer, WriterConfig,
};
use syncline_shared::ids::DocumentId;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn doc(n: u8) -> DocumentId {
    DocumentId::from_bytes([n; 16])
}

/// A change whose hash, bytes and author all derive from `id`, so distinct ids are distinct
/// changes and the same id is the same change.
fn change(seq: u64, id: u64) -> NewChange {
    let mut hash = [0; 32];
    hash[..8].copy_from_slice(&id.to_be_bytes());
    NewChange {
        seq,
        hash,
        received_at_ms: 1_000 + id,
        author: vec![7; 16],
        bytes: format!("change {id}").into_bytes(),
    }
}

fn write(document: DocumentId, changes: Vec<NewChange>) -> DocumentWrite {
    DocumentWrite {
        created_at_ms: Some(42),
        changes,
        ..DocumentWrite::new(document)
    }
}

fn start(storage: &Storage) -> (Writer, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    (
        storage.start_writer(metrics.clone(), WriterConfig::default()),
        metrics,
    )
}

/// Opening creates a missing data directory with its parents; the storage id is a UUID that
/// stays the same when the database is opened again.
#[test]
fn open_creates_dir_and_keeps_storage_id() -> TestResult {
    let root = tempfile::tempdir()?;
    let dir = root.path().join("a/b/data");

    let first = Storage::open(&dir)?;
    let id = first.storage_id().to_owned();
    uuid::Uuid::parse_str(&id)?;
    drop(first);

    assert_eq!(Storage::open(&dir)?.storage_id(), id);
    Ok(())
}

/// A document never written loads as `None`.
#[test]
fn unknown_document_is_none() -> TestResult {
    let dir = tempfile::tempdir()?;
    let storage = Storage::open(dir.path())?;
    assert_eq!(storage.load_document(&doc(9))?, None);
    assert!(storage.change_log(&doc(9))?.is_empty());
    Ok(())
}

/// Changes come back in seq order with their hashes, the next seq, and the document's counts.
#[tokio::test]
async fn written_changes_load_in_seq_order() -> TestResult {
    let dir = tempfile::tempdir()?;
    let storage = Storage::open(dir.path())?;
    let (writer, metrics) = start(&storage);

    // 1. One write with three changes, listed out of order.
    let changes = vec![change(2, 12), change(0, 10), change(1, 11)];
    let receipt = writer.write(write(doc(1), changes)).await?;
    assert_eq!(
        receipt,
        CommitReceipt {
            batch_writes: 1,
            batch_changes: 3,
            new_changes: 3
        }
    );

    // 2. Loaded in seq order, with nothing compacted.
    let loaded = storage.load_document(&doc(1))?.ok_or("document missing")?;
    let seqs: Vec<u64> = loaded.changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [0, 1, 2]);
    assert_eq!(loaded.changes[0].hash, change(0, 10).hash);
    assert_eq!(loaded.changes[2].bytes, change(2, 12).bytes);
    assert_eq!(loaded.snapshot, None);
    assert_eq!(loaded.next_seq, 3);
    assert_eq!(loaded.meta.created_at_ms, 42);
    assert_eq!(loaded.meta.change_count, 3);
    assert_eq!(metrics.changes_committed.get(), 3);
    Ok(())
}

/// Writing a change that is already logged changes nothing, and is not an error.
#[tokio::test]
async fn repeated_change_is_a_no_op() -> TestResult {
    let dir = tempfile::tempdir()?;
    let storage = Storage::open(dir.path())?;
    let (writer, _) = start(&storage);
    writer
        .write(write(doc(1), vec![change(0, 10), change(1, 11)]))
        .await?;

    // The same change again, under a new seq, plus one new change.
    let again = DocumentWrite::new(doc(1));
    let again = DocumentWrite {
        changes: vec![change(5, 10), change(2, 12)],
        ..again
    };
    let receipt = writer.write(again).await?;

    assert_eq!(receipt.new_changes, 1);
    let loaded = storage.load_document(&doc(1))?.ok_or("document missing")?;
    assert_eq!(loaded.meta.change_count, 3);
    let logged: Vec<u64> = storage.change_log(&doc(1))?.iter().map(|c| c.seq).collect();
    assert_eq!(logged, [0, 1, 2]);
    Ok(())
}

/// A write for a document nobody created still creates it, dated by its first change.
#[tokio::test]
async fn first_change_dates_an_uncreated_document() -> TestResult {
    let dir = tempfile::tempdir()?;
    let storage = Storage::open(dir.path())?;
    let (writer, _) = start(&storage);

    let uncreated = DocumentWrite {
        changes: vec![change(0, 5)],
        ..DocumentWrite::new(doc(3))
    };
    writer.write(uncreated).await?;

    let loaded = storage.load_document(&doc(3))?.ok_or("document missing")?;
    assert_eq!(loaded.meta.created_at_ms, change(0, 5).received_at_ms);
    Ok(())
}

/// Compaction stores the snapshot and drops the change bytes it covers, but the event log
/// still lists every change and the numbering carries on.
#[tokio::test]
async fn compaction_keeps_the_event_log() -> TestResult {
    let dir = tempfile::tempdir()?;
    let storage = Storage::open(dir.path())?;
    let (writer, metrics) = start(&storage);
    let changes = (0..5).map(|seq| change(seq, 100 + seq)).collect();
    writer.write(write(doc(1), changes)).await?;

    // 1. Compact up to seq 2.
    let snapshot = Snapshot {
        heads: vec![[9; 32]],
        covered_seq: 2,
        bytes: b"saved".to_vec(),
    };
    let compaction = DocumentWrite {
        snapshot: Some(snapshot.clone()),
        ..DocumentWrite::new(doc(1))
    };
    writer.write(compaction).await?;

    // 2. The load is the snapshot plus the changes after it.
    let loaded = storage.load_document(&doc(1))?.ok_or("document missing")?;
    assert_eq!(loaded.snapshot, Some(snapshot));
    let seqs: Vec<u64> = loaded.changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [3, 4]);
    assert_eq!(loaded.next_seq, 5);
    assert_eq!(loaded.meta.change_count, 5);

    // 3. The log still has all five, with their receipt times.
    let log = storage.change_log(&doc(1))?;
    assert_eq!(log.len(), 5);
    assert_eq!(log[0].received_at_ms, change(0, 100).received_at_ms);
    assert_eq!(log[0].author, change(0, 100).author);
    assert_eq!(metrics.compactions.get(), 1);
    Ok(())
}

/// Writes that would lose logged data are refused alone; the data stays as it was.
#[tokio::test]
async fn unsafe_writes_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let storage = Storage::open(dir.path())?;
    let (writer, _) = start(&storage);
    writer
        .write(write(doc(1), (0..4).map(|seq| change(seq, seq)).collect()))
        .await?;
    let snapshot = Snapshot {
        heads: vec![],
        covered_seq: 2,
        bytes: b"v2".to_vec(),
    };
    writer
        .write(DocumentWrite {
            snapshot: Some(snapshot),
            ..DocumentWrite::new(doc(1))
        })
        .await?;

    // 1. A different change under a seq already used.
    let reused = writer.write(write(doc(1), vec![change(3, 99)])).await;
    assert!(
        matches!(reused, Err(StorageError::WriteRefused { .. })),
        "{reused:?}"
    );

    // 2. A new change under a seq the snapshot covers.
    let covered = writer.write(write(doc(1), vec![change(1, 98)])).await;
    assert!(
        matches!(covered, Err(StorageError::WriteRefused { .. })),
        "{covered:?}"
    );

    // 3. A snapshot older than the stored one.
    let old = Snapshot {
        heads: vec![],
        covered_seq: 1,
        bytes: b"v1".to_vec(),
    };
    let stale = writer.write(DocumentWrite {
        snapshot: Some(old),
        ..DocumentWrite::new(doc(1))
    });
    assert!(matches!(
        stale.await,
        Err(StorageError::WriteRefused { .. })
    ));

    let loaded = storage.load_document(&doc(1))?.ok_or("document missing")?;
    assert_eq!(loaded.snapshot.map(|s| s.bytes), Some(b"v2".to_vec()));
    assert_eq!(loaded.meta.change_count, 4);
    Ok(())
}

/// A peer's sync state reads back as written, and a later write replaces it.
#[tokio::test]
async fn sync_state_round_trips() -> TestResult {
    let dir = tempfile::tempdir()?;
    let storage = Storage::open(dir.path())?;
    let (writer, _) = start(&storage);

    for state in [b"first".to_vec(), b"second".to_vec()] {
        let sync_states = vec![("peer-storage".to_owned(), state)];
        writer
            .write(DocumentWrite {
                sync_states,
                ..DocumentWrite::new(doc(1))
            })
            .await?;
    }

    assert_eq!(
        storage.load_sync_state(&doc(1), "peer-storage")?,
        Some(b"second".to_vec())
    );
    assert_eq!(storage.load_sync_state(&doc(1), "other")?, None);
    assert_eq!(storage.load_sync_state(&doc(2), "peer-storage")?, None);
    Ok(())
}

/// Many concurrent writers all get answers, and they share commits: fewer transactions than
/// writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commits() -> TestResult {
    const TASKS: u64 = 200;
    const WRITES: u64 = 5;
    let dir = tempfile::tempdir()?;
    let storage = Storage::open(dir.path())?;
    let (writer, metrics) = start(&storage);

    // 1. Each task writes its own document, one change per write.
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let writer = writer.clone();
        tasks.spawn(async move {
            let document = DocumentId::from_bytes(u128::from(task).to_be_bytes());
            let mut receipts = Vec::new();
            for seq in 0..WRITES {
                let one = change(seq, task * WRITES + seq);
                receipts.push(writer.write(write(document, vec![one])).await?);
            }
            Ok::<_, StorageError>(receipts)
        });
    }
    let mut receipts = Vec::new();
    while let Some(done) = tasks.join_next().await {
        receipts.extend(done??);
    }

    // 2. Every write landed, in fewer commits than writes.
    let total = TASKS * WRITES;
    assert_eq!(receipts.len() as u64, total);
    assert_eq!(metrics.changes_committed.get(), total);
    assert!(
        metrics.commits.get() < total,
        "{} commits",
        metrics.commits.get()
    );
    assert!(receipts.iter().any(|r| r.batch_writes > 1));
    Ok(())
}

/// What was acknowledged is still there after everything is dropped and the file reopened.
#[tokio::test]
async fn acknowledged_writes_survive_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let storage = Storage::open(dir.path())?;
    let (writer, _) = start(&storage);
    writer
        .write(write(doc(1), vec![change(0, 1), change(1, 2)]))
        .await?;
    writer.shutdown().await;
    drop(storage);

    let reopened = Storage::open(dir.path())?;
    let loaded = reopened.load_document(&doc(1))?.ok_or("document missing")?;
    assert_eq!(loaded.changes.len(), 2);
    assert_eq!(loaded.next_seq, 2);
    Ok(())
}

/// Shutdown commits every write queued before it; writes after it are refused.
#[tokio::test]
async fn shutdown_drains_the_queue() -> TestResult {
    let dir = tempfile::tempdir()?;
    let storage = Storage::open(dir.path())?;
    let (writer, metrics) = start(&storage);

    // 1. Queue many writes without waiting for their commits.
    let mut pending = Vec::new();
    for n in 0..300 {
        pending.push(writer.queue(write(doc(1), vec![change(n, n)])).await?);
    }

    // 2. Shut down from a clone; the original is then refused.
    writer.clone().shutdown().await;
    let late = writer.write(write(doc(2), vec![change(0, 1)])).await;
    assert!(matches!(late, Err(StorageError::WriterStopped)), "{late:?}");

    // 3. Every queued write was committed.
    for commit in pending {
        commit.await?;
    }
    assert_eq!(metrics.changes_committed.get(), 300);
    Ok(())
}

/// Dropping every handle also drains the queue before the writer ends.
#[tokio::test]
async fn dropping_every_writer_drains_the_queue() -> TestResult {
    let dir = tempfile::tempdir()?;
    let storage = Storage::open(dir.path())?;
    let (writer, _) = start(&storage);

    let pending = writer.queue(write(doc(1), vec![change(0, 1)])).await?;
    drop(writer);

    pending.await?;
    assert!(storage.load_document(&doc(1))?.is_some());
    Ok(())
}
