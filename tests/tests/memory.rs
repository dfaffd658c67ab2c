//! Memory: documents nobody is attached to leave memory, and the server does not grow from one
//! wave of documents to the next.
//!
//! Each round creates many small documents over a few connections, closes the connections and
//! waits for every document to unload. If unloading leaked, the second round would start from
//! the first round's leftovers and peak higher; the suite bounds how much higher it may go.

use std::time::{Duration, Instant};

use anyhow::Result;
use automerge::ROOT;
use automerge::transaction::Transactable;
use syncline_tests::peer::RawPeer;
use syncline_tests::server::{ServerOptions, ServerProcess};
use tokio::task::JoinSet;

const DOCUMENTS_PER_ROUND: usize = 10_000;
const PEERS: usize = 8;
/// Documents a peer creates before it waits for their acknowledgements: enough in flight to
/// keep the server busy, few enough that no wait gets long.
const BATCH: usize = 125;
/// Unload quickly once the connections close.
const CONFIG: &str = "[sync]\nidle_unload_ms = 300\n";
/// Longest wait for one batch's acknowledgements.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the creation half of a round may take.
const CREATE_TIMEOUT: Duration = Duration::from_secs(180);
/// Longest wait for every document to unload after the connections closed.
const UNLOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the server's RSS (and, while unloading, its loaded count) is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// Round two may peak this much above round one, relatively and absolutely.
const GROWTH_FACTOR: f64 = 1.25;
const GROWTH_SLACK_BYTES: u64 = 20 * 1024 * 1024;

/// What one round measured.
#[derive(Debug)]
struct Round {
    peak_rss: u64,
    rss_after_unload: u64,
    create_time: Duration,
    unload_time: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_documents_unload_and_memory_does_not_grow() {
    // Unloaded documents give their memory back for reuse: a second wave peaks no higher.
    // 1. Start the server with a 300 ms idle unload.
    // 2. Round one: eight peers create 10 000 documents, each acknowledged, then disconnect;
    //    sample the server's RSS throughout and wait until no document is loaded.
    // 3. Round two: the same with 10 000 new documents.
    // 4. Round two's peak RSS is at most round one's times 1.25 plus 20 MiB, and the server
    //    logged no warning or error: every peer behaved.
    let dir = tempfile::tempdir().expect("temp dir");
    let options = ServerOptions {
        config: CONFIG.to_owned(),
        ..ServerOptions::default()
    };
    let server = ServerProcess::start(&dir.path().join("data"), &options)
        .await
        .expect("start");
    eprintln!(
        "server started, RSS {}",
        mib(server.rss_bytes().expect("rss"))
    );

    let first = run_round(&server, 1).await;
    let second = run_round(&server, 2).await;

    let limit = (first.peak_rss as f64 * GROWTH_FACTOR) as u64 + GROWTH_SLACK_BYTES;
    assert!(
        second.peak_rss <= limit,
        "round two peaked at {}, above the limit of {} (round one peaked at {})",
        mib(second.peak_rss),
        mib(limit),
        mib(first.peak_rss)
    );
    let complaints: Vec<String> = server
        .log
        .lines()
        .into_iter()
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        // Said once at start-up: this test runs without access control.
        .filter(|line| !line.contains("access control is off"))
        .collect();
    assert!(
        complaints.is_empty(),
        "server complained:\n{}",
        complaints.join("\n")
    );
}

/// Creates a round's documents, disconnects, and waits until they have all unloaded.
async fn run_round(server: &ServerProcess, round: usize) -> Round {
    let mut peak_rss = server.rss_bytes().expect("rss");
    let started = Instant::now();
    let mut clients = JoinSet::new();
    for index in 0..PEERS {
        let peer_id = format!("memory-round{round}-peer{index}");
        clients.spawn(create_documents(
            server.ws_url(),
            peer_id,
            DOCUMENTS_PER_ROUND / PEERS,
        ));
    }
    let created = tokio::time::timeout(CREATE_TIMEOUT, async {
        let mut ticker = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = ticker.tick() => peak_rss = peak_rss.max(server.rss_bytes().expect("rss")),
                joined = clients.join_next() => match joined {
                    Some(outcome) => outcome.expect("client task").expect("client creates its documents"),
                    None => break,
                },
            }
        }
    });
    created.await.expect("documents created in time");
    let create_time = started.elapsed();

    let started = Instant::now();
    let unload_peak = wait_until_unloaded(server).await;
    let measured = Round {
        peak_rss: peak_rss.max(unload_peak),
        rss_after_unload: server.rss_bytes().expect("rss"),
        create_time,
        unload_time: started.elapsed(),
    };
    eprintln!(
        "round {round}: {DOCUMENTS_PER_ROUND} documents created in {:?}, unloaded in {:?}; \
         peak RSS {}, after unload {}; {}",
        measured.create_time,
        measured.unload_time,
        mib(measured.peak_rss),
        mib(measured.rss_after_unload),
        commit_counters(server).await
    );
    measured
}

/// One peer's share of a round: creates `count` documents of one change each, waits for every
/// acknowledgement, and closes the connection.
async fn create_documents(url: String, peer_id: String, count: usize) -> Result<()> {
    let mut peer = RawPeer::connect(&url, peer_id).await?;
    let mut created = 0;
    while created < count {
        let mut batch = Vec::with_capacity(BATCH);
        for n in created..count.min(created + BATCH) {
            let doc = peer.create_document(|d| put_number(d, n)).await?;
            batch.push((doc, peer.heads(doc)));
        }
        for (doc, heads) in &batch {
            peer.wait_acknowledged(*doc, heads, ACK_TIMEOUT).await?;
        }
        created += batch.len();
    }
    peer.close().await
}

fn put_number(doc: &mut automerge::AutoCommit, n: usize) {
    doc.put(ROOT, "n", n as u64)
        .expect("put on a fresh document");
}

/// Polls the loaded-documents gauge until it reads zero; returns the peak RSS seen meanwhile.
async fn wait_until_unloaded(server: &ServerProcess) -> u64 {
    let deadline = Instant::now() + UNLOAD_TIMEOUT;
    let mut peak_rss = 0;
    let mut ticker = tokio::time::interval(SAMPLE_EVERY);
    loop {
        ticker.tick().await;
        peak_rss = peak_rss.max(server.rss_bytes().expect("rss"));
        let loaded = server
            .metric("syncline_documents_loaded")
            .await
            .expect("metric");
        if loaded == 0.0 {
            return peak_rss;
        }
        assert!(
            Instant::now() < deadline,
            "{loaded} documents still loaded {UNLOAD_TIMEOUT:?} after every connection closed"
        );
    }
}

/// The server's commit counters, for the round's report.
async fn commit_counters(server: &ServerProcess) -> String {
    let changes = server
        .metric("syncline_changes_committed_total")
        .await
        .expect("metric");
    let commits = server
        .metric("syncline_commits_total")
        .await
        .expect("metric");
    format!("{changes} changes in {commits} commits so far")
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
