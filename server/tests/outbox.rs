//! The outbox against a real redb file: rows are written with the changes, coalesce for state
//! bridges, keep their id across attempts, and dead rows stop blocking the rows behind them.

use std::sync::Arc;

use syncline_server::metrics::Metrics;
use syncline_server::storage::{
    DocumentWrite, NewChange, OutboxAction, OutboxRequest, OutboxUpdate, Storage, Writer,
    WriterConfig,
};
use syncline_shared::ids::DocumentId;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const DOC: DocumentId = DocumentId::from_bytes([3; 16]);

fn change(seq: u64) -> NewChange {
    NewChange {
        seq,
        hash: [u8::try_from(seq).unwrap_or(0); 32],
        received_at_ms: 1,
        author: vec![1],
        bytes: vec![u8::try_from(seq).unwrap_or(0)],
    }
}

fn changes(seqs: &[u64], bridges: &[(&str, bool)]) -> DocumentWrite {
    DocumentWrite {
        changes: seqs.iter().map(|&s| change(s)).collect(),
        outbox: bridges
            .iter()
            .map(|&(bridge, events)| OutboxRequest {
                bridge: bridge.to_owned(),
                events,
                booking: None,
            })
            .collect(),
        ..DocumentWrite::new(DOC)
    }
}

fn update(bridge: &str, row: u64, action: OutboxAction) -> DocumentWrite {
    DocumentWrite {
        outbox_updates: vec![OutboxUpdate {
            bridge: bridge.to_owned(),
            row,
            action,
        }],
        ..DocumentWrite::new(DOC)
    }
}

fn open() -> Result<(tempfile::TempDir, Storage, Writer), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let storage = Storage::open(dir.path())?;
    let writer = storage.start_writer(Arc::new(Metrics::new()), WriterConfig::default());
    Ok((dir, storage, writer))
}

fn attempted(attempts: u32, body_seq: u64) -> OutboxAction {
    OutboxAction::Attempted {
        attempts,
        next_attempt_ms: 5,
        body: b"body".to_vec(),
        body_seq,
        last_error: "503".to_owned(),
    }
}

/// State rows coalesce until attempted; an attempted row keeps its id and body, newer state
/// waits behind it, and delivering a row whose body missed coalesced changes renews it.
#[tokio::test]
async fn state_rows_coalesce_until_attempted() -> TestResult {
    let (_dir, storage, writer) = open()?;

    // 1. Two writes before any attempt: one row, covering both.
    writer.write(changes(&[0, 1], &[("state", false)])).await?;
    writer.write(changes(&[2], &[("state", false)])).await?;
    let rows = storage.outbox_rows("state")?;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].record.upto_seq, 2);
    let id = rows[0].record.id.clone();

    // 2. Attempted (its body covers seq 2): the next write gets a row of its own.
    writer.write(update("state", 0, attempted(1, 2))).await?;
    writer.write(changes(&[3], &[("state", false)])).await?;
    let rows = storage.outbox_rows("state")?;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].record.id, id, "the attempted row keeps its id");
    assert_eq!(rows[0].record.body, b"body");
    assert_eq!(storage.outbox_head("state", &DOC)?.map(|r| r.row), Some(0));

    // 3. Delivered: the row goes, and the newer one is next.
    writer
        .write(update("state", 0, OutboxAction::Delivered))
        .await?;
    let head = storage.outbox_head("state", &DOC)?.ok_or("a head")?;
    assert_eq!((head.row, head.record.upto_seq), (1, 3));

    // 4. Its body is made at seq 3, but seq 4 coalesces in before the attempt is recorded:
    //    delivering it leaves a fresh row (new id) for the newer state.
    writer.write(changes(&[4], &[("state", false)])).await?;
    writer.write(update("state", 1, attempted(1, 3))).await?;
    let first_id = storage
        .outbox_head("state", &DOC)?
        .ok_or("a head")?
        .record
        .id;
    writer
        .write(update("state", 1, OutboxAction::Delivered))
        .await?;
    let renewed = storage.outbox_head("state", &DOC)?.ok_or("a renewed row")?;
    assert_ne!(renewed.record.id, first_id);
    assert_eq!(renewed.record.attempts, 0);

    // 5. A body made after newer rows were written covers them: delivering it retires them,
    //    so the same state is not sent again under another id.
    writer.write(update("state", 1, attempted(1, 6))).await?;
    writer.write(changes(&[5], &[("state", false)])).await?;
    writer.write(changes(&[6], &[("state", false)])).await?;
    assert_eq!(storage.outbox_rows("state")?.len(), 2);
    writer
        .write(update("state", 1, OutboxAction::Delivered))
        .await?;
    assert!(
        storage.outbox_rows("state")?.is_empty(),
        "covered rows are done"
    );
    Ok(())
}

/// Events rows are one per batch, written with exactly that batch's changes, in order.
#[tokio::test]
async fn event_rows_carry_each_batch() -> TestResult {
    let (_dir, storage, writer) = open()?;
    writer
        .write(changes(&[0, 1], &[("events", true), ("state", false)]))
        .await?;
    writer
        .write(changes(&[2], &[("events", true), ("state", false)]))
        .await?;
    // A repeat of a known change logs nothing, so it adds no row.
    writer.write(changes(&[2], &[("events", true)])).await?;

    let rows = storage.outbox_rows("events")?;
    let batches: Vec<usize> = rows.iter().map(|r| r.record.hashes.len()).collect();
    assert_eq!(batches, [2, 1]);
    assert_eq!(
        storage.outbox_rows("state")?.len(),
        1,
        "bridges are independent"
    );
    Ok(())
}

/// A dead row stays listed but no longer holds up the next; a replay revives it with its id.
#[tokio::test]
async fn dead_rows_are_kept_and_replayable() -> TestResult {
    let (_dir, storage, writer) = open()?;
    writer.write(changes(&[0], &[("events", true)])).await?;
    writer.write(changes(&[1], &[("events", true)])).await?;
    let id = storage.outbox_rows("events")?[0].record.id.clone();

    let dead = OutboxAction::Dead {
        attempts: 4,
        last_error: "400 Bad Request".to_owned(),
    };
    writer.write(update("events", 0, dead)).await?;
    assert_eq!(storage.outbox_head("events", &DOC)?.map(|r| r.row), Some(1));
    assert_eq!(storage.outbox_rows("events")?.len(), 2);

    writer
        .write(update("events", 0, OutboxAction::Replay { now_ms: 9 }))
        .await?;
    let head = storage.outbox_head("events", &DOC)?.ok_or("a head")?;
    assert_eq!((head.row, head.record.id.as_str()), (0, id.as_str()));
    assert_eq!(head.record.attempts, 0);
    assert_eq!(storage.outbox_documents("events")?, [DOC]);
    Ok(())
}
