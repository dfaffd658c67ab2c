//! Connection lifecycle against the real server binary: duplicate joins, stuck and silent peers,
//! the operational endpoints, and documents that appear after someone asked for them.

use std::time::Duration;

use automerge::{ReadDoc, ScalarValue, Value};
use syncline_tests::peer::{Disconnected, RawPeer};
use syncline_tests::server::{ServerOptions, ServerProcess, http_get, http_get_status};

const WAIT: Duration = Duration::from_secs(10);

async fn start(config: &str) -> (tempfile::TempDir, ServerProcess) {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = ServerOptions {
        config: config.to_owned(),
        ..Default::default()
    };
    let server = ServerProcess::start(&dir.path().join("data"), &options)
        .await
        .expect("server starts");
    (dir, server)
}

fn is_disconnected(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|cause| cause.downcast_ref::<Disconnected>().is_some())
}

/// Reads the value of `key` at the document root as an i64, if it is an integer.
fn root_int(peer: &mut RawPeer, doc: syncline_shared::ids::DocumentId, key: &str) -> Option<i64> {
    match peer.document(doc).get(automerge::ROOT, key).ok()?? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Int(n) => Some(*n),
            _ => None,
        },
        _ => None,
    }
}

/// A second join with the same peer id replaces the first connection, which is closed.
#[tokio::test]
async fn duplicate_join_replaces_the_older_connection() {
    let (_dir, server) = start("").await;

    // 1. The first connection joins as "dup" and creates a document.
    let mut first = RawPeer::connect(&server.ws_url(), "dup")
        .await
        .expect("first connects");
    let doc = first
        .create_document(|d| put_int(d, "n", 1))
        .await
        .expect("create");
    let heads = first.heads(doc);
    first
        .wait_acknowledged(doc, &heads, WAIT)
        .await
        .expect("first acknowledged");

    // 2. A second connection joins with the same peer id.
    let mut second = RawPeer::connect(&server.ws_url(), "dup")
        .await
        .expect("second connects");

    // 3. The first connection is closed by the server.
    let closed = loop {
        match first.recv(WAIT).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the older connection was not closed within {WAIT:?}"),
            Err(err) => break err,
        }
    };
    assert!(is_disconnected(&closed), "unexpected error: {closed:#}");
    server
        .log
        .wait_for(WAIT, |l| l.contains("peer joined again"))
        .await
        .expect("replacement is logged");

    // 4. The new connection syncs normally and sees the document.
    second.open(doc).await.expect("open");
    second.sync_until_quiet(WAIT).await.expect("sync");
    assert_eq!(root_int(&mut second, doc, "n"), Some(1));
}

/// A peer that stops reading is disconnected after the send timeout, without holding the
/// document's other peers back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_peer_is_disconnected_and_others_keep_syncing() {
    let config = "[sync]\nsend_timeout_ms = 300\nping_interval_ms = 60000\n";
    let (_dir, server) = start(config).await;

    // 1. A writer creates a document; a second peer opens it, then never reads again.
    let mut writer = RawPeer::connect(&server.ws_url(), "writer")
        .await
        .expect("writer");
    let doc = writer
        .create_document(|d| put_int(d, "n", 0))
        .await
        .expect("create");
    let heads = writer.heads(doc);
    writer
        .wait_acknowledged(doc, &heads, WAIT)
        .await
        .expect("acknowledged");
    let mut stuck = RawPeer::connect(&server.ws_url(), "stuck")
        .await
        .expect("stuck");
    stuck.open(doc).await.expect("open");

    // 2. The writer keeps making large changes, each acknowledged, until the server gives up on
    //    the stuck peer (its socket buffers fill). Bounded in count.
    let mut gave_up = false;
    for i in 0..400 {
        // Random text: Automerge compresses change chunks, so a repeated letter would be tiny.
        let blob: String = (0..256 * 1024)
            .map(|_| rand::random_range(b'a'..=b'z') as char)
            .collect();
        let hash = writer
            .change(doc, |d| {
                use automerge::transaction::Transactable;
                d.put(automerge::ROOT, "blob", blob.as_str())
                    .expect("put blob");
                d.put(automerge::ROOT, "n", i as i64).expect("put n");
            })
            .await
            .expect("change");
        writer
            .wait_acknowledged(doc, &[hash], WAIT)
            .await
            .expect("writer is never held back");
        if server
            .log
            .lines()
            .iter()
            .any(|l| l.contains("peer too slow to receive"))
        {
            gave_up = true;
            break;
        }
    }
    assert!(
        gave_up,
        "the stuck peer was never disconnected; log:\n{}",
        server.log.lines().join("\n")
    );

    // 3. Only the writer's connection remains.
    let mut connections = f64::NAN;
    for _ in 0..100 {
        connections = server.metric("syncline_connections").await.expect("metric");
        if connections == 1.0 {
            break;
        }
        writer
            .recv(Duration::from_millis(50))
            .await
            .expect("writer stays connected");
    }
    assert_eq!(connections, 1.0, "stuck connection still counted");
    drop(stuck);
}

/// A peer that answers no pings is dropped after three ping intervals.
#[tokio::test]
async fn silent_peer_is_dropped_by_keepalive() {
    let (_dir, server) = start("[sync]\nping_interval_ms = 100\n").await;

    // 1. A peer joins and then does not read at all, so it never answers a ping.
    let silent = RawPeer::connect(&server.ws_url(), "silent")
        .await
        .expect("connect");

    // 2. The server notices and closes it.
    server
        .log
        .wait_for(WAIT, |l| l.contains("peer stopped answering pings"))
        .await
        .expect("keepalive closes the connection");
    drop(silent);
}

/// A peer that reads keeps answering pings and is not dropped, however long it stays.
#[tokio::test]
async fn reading_peer_survives_many_ping_intervals() {
    let (_dir, server) = start("[sync]\nping_interval_ms = 50\n").await;

    // 1. A peer joins and keeps reading for twenty ping intervals.
    let mut peer = RawPeer::connect(&server.ws_url(), "alive")
        .await
        .expect("connect");
    let message = peer
        .recv(Duration::from_millis(1000))
        .await
        .expect("still connected");
    assert!(
        message.is_none(),
        "nothing but pings expected, got {message:?}"
    );

    // 2. It can still create a document and get it acknowledged.
    let doc = peer
        .create_document(|d| put_int(d, "n", 1))
        .await
        .expect("create");
    let heads = peer.heads(doc);
    peer.wait_acknowledged(doc, &heads, WAIT)
        .await
        .expect("acknowledged");
    assert!(
        !server
            .log
            .lines()
            .iter()
            .any(|l| l.contains("stopped answering pings"))
    );
}

/// A peer that asked for a document nobody had receives it once another peer uploads it.
#[tokio::test]
async fn document_uploaded_after_a_request_reaches_the_asker() {
    let (_dir, server) = start("").await;

    // 1. The asker requests an id nobody has and is told it is unavailable.
    let mut uploader = RawPeer::connect(&server.ws_url(), "uploader")
        .await
        .expect("uploader");
    let doc = syncline_shared::ids::DocumentId::random_from(rand::random());
    let mut asker = RawPeer::connect(&server.ws_url(), "asker")
        .await
        .expect("asker");
    asker.open(doc).await.expect("request");
    asker.sync_until_quiet(WAIT).await.expect("answered");
    assert!(asker.is_unavailable(doc));

    // 2. The uploader creates a document under exactly that id.
    uploader
        .adopt(doc, |d| put_int(d, "n", 7))
        .await
        .expect("upload");
    let heads = uploader.heads(doc);
    uploader
        .wait_acknowledged(doc, &heads, WAIT)
        .await
        .expect("acknowledged");

    // 3. The asker receives it without asking again.
    asker
        .wait_heads(doc, &heads, WAIT)
        .await
        .expect("asker receives the document");
    assert!(!asker.is_unavailable(doc));
    assert_eq!(root_int(&mut asker, doc, "n"), Some(7));
}

/// Health, readiness and metrics answer on the sync port; metric names carry the prefix.
#[tokio::test]
async fn operational_endpoints_answer() {
    let (_dir, server) = start("").await;

    // 1. Health and readiness answer 200 while serving.
    assert_eq!(
        http_get_status(server.addr, "/healthz")
            .await
            .expect("healthz")
            .0,
        200
    );
    assert_eq!(
        http_get_status(server.addr, "/readyz")
            .await
            .expect("readyz")
            .0,
        200
    );

    // 2. After one acknowledged change, the required counters are present and counted.
    let mut peer = RawPeer::connect(&server.ws_url(), "metrics")
        .await
        .expect("connect");
    let doc = peer
        .create_document(|d| put_int(d, "n", 1))
        .await
        .expect("create");
    let heads = peer.heads(doc);
    peer.wait_acknowledged(doc, &heads, WAIT)
        .await
        .expect("acknowledged");
    let text = http_get(server.addr, "/metrics").await.expect("metrics");
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(
            line.starts_with("syncline_"),
            "metric without prefix: {line}"
        );
    }
    assert!(
        server
            .metric("syncline_messages_received_total")
            .await
            .expect("received")
            >= 2.0
    );
    assert!(
        server
            .metric("syncline_changes_committed_total")
            .await
            .expect("committed")
            >= 1.0
    );
}

fn put_int(doc: &mut automerge::AutoCommit, key: &str, value: i64) {
    use automerge::transaction::Transactable;
    doc.put(automerge::ROOT, key, value).expect("put");
}

/// Many changes sent back to back, without waiting for answers, land in one worker turn with
/// several persist batches; every one is confirmed, so the peer is still answered and sees all
/// of them acknowledged.
#[tokio::test]
async fn a_burst_of_changes_without_waiting_is_acknowledged() {
    let (_dir, server) = start("").await;
    let mut peer = RawPeer::connect(&server.ws_url(), "burst")
        .await
        .expect("connects");
    let doc = peer
        .create_document(|d| put_int(d, "n", 0))
        .await
        .expect("create");
    let created = peer.heads(doc);
    peer.wait_acknowledged(doc, &created, WAIT)
        .await
        .expect("created");

    // 1. Fifty changes, each sent at once with its change; no frame is read in between.
    for n in 1..=50 {
        peer.change(doc, |d| put_int(d, "n", n))
            .await
            .expect("change sent");
    }

    // 2. The server acknowledges the last one (and so everything before it).
    let heads = peer.heads(doc);
    if let Err(err) = peer.wait_acknowledged(doc, &heads, WAIT).await {
        let acked = peer.acknowledged(doc);
        panic!("the burst is not acknowledged: {err:#}; heads {heads:?}, acknowledged {acked:?}");
    }
    assert_eq!(root_int(&mut peer, doc, "n"), Some(50));
}
