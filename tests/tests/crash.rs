//! Crash safety: whatever the server acknowledged is still there after it is killed mid-traffic.
//!
//! The server only advertises heads it has committed to disk, so a client that saw its change
//! in the server's heads may forget it. This suite holds the server to that: it kills the
//! process with SIGKILL while clients are writing, restarts it on the same data directory and
//! looks for every acknowledged change.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ChangeHash, ObjType, ROOT, ReadDoc, Value};
use syncline_shared::ids::DocumentId;
use syncline_tests::peer::{Disconnected, RawPeer};
use syncline_tests::server::{ServerOptions, ServerProcess};
use tokio::sync::watch;
use tokio::task::JoinSet;

const PEERS: usize = 5;
const DOCUMENTS_PER_PEER: usize = 2;
/// Acknowledged changes every document must have before the kill.
const MIN_ACKED_PER_DOCUMENT: usize = 30;
/// Acknowledged changes in total before the kill.
const MIN_ACKED_TOTAL: usize = 300;
/// A bound on each client's work, far above what it does before the kill.
const MAX_CHANGES_PER_DOCUMENT: u64 = 5_000;
/// Longest wait for one acknowledgement, one connection or one resync.
const WAIT: Duration = Duration::from_secs(10);
/// Longest the clients may take to reach the kill threshold.
const TRAFFIC_TIMEOUT: Duration = Duration::from_secs(30);
/// Compact often, so the kill can also land in the middle of a snapshot write.
const CONFIG: &str = "[sync]\ncompact_after_changes = 16\n";

/// Acknowledged change hashes per document, as the clients recorded them.
type Acked = HashMap<DocumentId, Vec<ChangeHash>>;

/// What the clients share with the test.
#[derive(Clone)]
struct Shared {
    acked: watch::Sender<Acked>,
    /// Changes sent, acknowledged or not.
    sent: Arc<AtomicUsize>,
    /// Set just before the SIGKILL: from then on a dropped connection is expected.
    killed: Arc<AtomicBool>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_changes_survive_sigkill() {
    // Every change the server acknowledged is present after a SIGKILL in the middle of traffic.
    // 1. Start the server on a fresh data directory, compacting every 16 changes.
    // 2. Five peers each create two documents and keep changing them, waiting for each
    //    acknowledgement and recording the acknowledged change.
    // 3. Once every document has 30 acknowledged changes and 300 in total, SIGKILL the server
    //    while changes are still in flight; the clients see their connections drop.
    // 4. Restart on the same data directory; a fresh peer opens every document and syncs.
    // 5. Every acknowledged change is in the loaded documents.
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let options = ServerOptions {
        config: CONFIG.to_owned(),
        ..ServerOptions::default()
    };
    let server = ServerProcess::start(&data_dir, &options)
        .await
        .expect("server starts");
    let url = server.ws_url();

    let (acked_tx, mut acked_rx) = watch::channel(Acked::new());
    let shared = Shared {
        acked: acked_tx,
        sent: Arc::new(AtomicUsize::new(0)),
        killed: Arc::new(AtomicBool::new(false)),
    };
    let started = Instant::now();
    let mut clients = JoinSet::new();
    for index in 0..PEERS {
        clients.spawn(run_client(url.clone(), index, shared.clone()));
    }

    tokio::select! {
        reached = tokio::time::timeout(TRAFFIC_TIMEOUT, acked_rx.wait_for(ready_to_kill)) => {
            reached.expect("clients reach the kill threshold in time").expect("acks channel open");
        }
        Some(early) = clients.join_next() => {
            panic!("a client stopped before the kill: {:?}", early.expect("client task"));
        }
    }
    shared.killed.store(true, Ordering::SeqCst);
    let acked_at_kill = total(&acked_rx.borrow());
    let sent_at_kill = shared.sent.load(Ordering::SeqCst);
    server.kill().await.expect("SIGKILL the server");
    eprintln!(
        "killed after {:?}: {acked_at_kill} changes acknowledged, {sent_at_kill} sent",
        started.elapsed()
    );

    while let Some(outcome) = tokio::time::timeout(WAIT, clients.join_next())
        .await
        .expect("clients notice the kill")
    {
        outcome
            .expect("client task")
            .expect("client ends only by disconnection");
    }
    let acked = acked_rx.borrow().clone();

    let server = ServerProcess::start(&data_dir, &options)
        .await
        .expect("server restarts");
    let mut verifier = RawPeer::connect(&server.ws_url(), "crash-verifier")
        .await
        .expect("connect");
    for &doc in acked.keys() {
        verifier.open(doc).await.expect("send request");
    }
    verifier
        .sync_until_quiet(WAIT)
        .await
        .expect("every document loads");

    let mut missing = Vec::new();
    let mut present = 0;
    let mut loaded = 0;
    for (&doc, hashes) in &acked {
        assert!(
            !verifier.is_unavailable(doc),
            "{doc} is unavailable after the restart"
        );
        let document = verifier.document(doc);
        loaded += document.get_changes(&[]).len();
        for hash in hashes {
            if document.get_change_by_hash(hash).is_some() {
                present += 1;
            } else {
                missing.push((doc, *hash));
            }
        }
    }
    eprintln!(
        "after restart: {present} of {} acknowledged changes present, {loaded} changes loaded, \
         {} missing",
        total(&acked),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "acknowledged changes lost by the crash: {missing:?}"
    );
}

/// Connects, creates this client's documents and changes them until the server goes away.
async fn run_client(url: String, index: usize, shared: Shared) -> Result<()> {
    let outcome = write_until_disconnected(&url, index, &shared).await;
    match outcome {
        Err(error)
            if shared.killed.load(Ordering::SeqCst)
                && error.downcast_ref::<Disconnected>().is_some() =>
        {
            Ok(())
        }
        Err(error) => Err(error),
        Ok(()) => anyhow::bail!("client {index} ran out of changes before the kill"),
    }
}

async fn write_until_disconnected(url: &str, index: usize, shared: &Shared) -> Result<()> {
    let mut peer = RawPeer::connect(url, format!("crash-client-{index}")).await?;
    let mut documents = Vec::new();
    for _ in 0..DOCUMENTS_PER_PEER {
        let doc = peer.create_document(initial_content).await?;
        let heads = peer.heads(doc);
        shared.sent.fetch_add(1, Ordering::SeqCst);
        peer.wait_acknowledged(doc, &heads, WAIT).await?;
        record(shared, doc, &heads);
        documents.push(doc);
    }

    for n in 1..=MAX_CHANGES_PER_DOCUMENT {
        for &doc in &documents {
            let hash = peer.change(doc, |d| append(d, n)).await?;
            shared.sent.fetch_add(1, Ordering::SeqCst);
            peer.wait_acknowledged(doc, &[hash], WAIT).await?;
            record(shared, doc, &[hash]);
        }
    }
    Ok(())
}

fn initial_content(doc: &mut AutoCommit) {
    doc.put(ROOT, "counter", 0_u64)
        .expect("put on a fresh document");
    doc.put_object(ROOT, "items", ObjType::List)
        .expect("put_object on a fresh document");
}

/// Sets the counter to `n` and appends `n` to the list.
fn append(doc: &mut AutoCommit, n: u64) {
    let Some((Value::Object(ObjType::List), items)) =
        doc.get(ROOT, "items").expect("read the items key")
    else {
        panic!("every document of this suite has an items list");
    };
    let end = doc.length(&items);
    doc.insert(&items, end, n)
        .expect("insert at the end of the list");
    doc.put(ROOT, "counter", n).expect("put the counter");
}

fn record(shared: &Shared, doc: DocumentId, hashes: &[ChangeHash]) {
    shared
        .acked
        .send_modify(|acked| acked.entry(doc).or_default().extend_from_slice(hashes));
}

fn ready_to_kill(acked: &Acked) -> bool {
    acked.len() == PEERS * DOCUMENTS_PER_PEER
        && acked
            .values()
            .all(|hashes| hashes.len() >= MIN_ACKED_PER_DOCUMENT)
        && total(acked) >= MIN_ACKED_TOTAL
}

fn total(acked: &Acked) -> usize {
    acked.values().map(Vec::len).sum()
}
