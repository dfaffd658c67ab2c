//! Every configurable limit, hit on purpose against the real server binary: the peer gets a
//! clear answer, `syncline_limit_hits_total` counts it under the limit's name, and the server
//! goes on serving. Also sockets that hold a connection without speaking (slow-loris), and a
//! storm of a thousand reconnections after which nothing acknowledged is lost and memory is
//! back near where it started.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use automerge::transaction::Transactable;
use futures_util::StreamExt;
use syncline_shared::ids::DocumentId;
use syncline_shared::protocol::Message;
use syncline_tests::peer::RawPeer;
use syncline_tests::server::{ServerOptions, ServerProcess, http_get};
use syncline_tests::tokens::{AUTH_CONFIG, Grant, mint, with_token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame as RawFrame, FrameHeader};

/// Bound on every wait for the server.
const WAIT: Duration = Duration::from_secs(10);

async fn start(sync: &str) -> Result<(tempfile::TempDir, ServerProcess)> {
    let dir = tempfile::tempdir()?;
    let options = ServerOptions {
        config: format!("[sync]\n{sync}\n"),
        ..ServerOptions::default()
    };
    let server = ServerProcess::start(&dir.path().join("data"), &options).await?;
    Ok((dir, server))
}

async fn hits(server: &ServerProcess, limit: &str) -> Result<f64> {
    server
        .metric_with("syncline_limit_hits_total", &format!("limit=\"{limit}\""))
        .await
}

/// Reads until the server closes the connection; the text of its `error` message, if any.
async fn read_to_end(peer: &mut RawPeer) -> Result<Option<String>> {
    let deadline = Instant::now() + WAIT;
    let mut error = None;
    loop {
        ensure!(Instant::now() < deadline, "the connection stayed open");
        match peer.recv(WAIT).await {
            Ok(Some(Message::Error(e))) => error = Some(e.message),
            Ok(_) => {}
            Err(_) => return Ok(error),
        }
    }
}

fn random_document() -> DocumentId {
    DocumentId::random_from(rand::random())
}

/// A frame over `max_frame_bytes`, and a message over `max_message_bytes` sent as frames that
/// are each within the frame limit, both close the connection with an error naming the key.
#[tokio::test]
async fn frame_and_message_sizes_are_limited() -> Result<()> {
    let (_dir, server) = start("max_frame_bytes = 2048\nmax_message_bytes = 4096").await?;

    let mut peer = RawPeer::connect(&server.ws_url(), "big-frame").await?;
    peer.send_frame(Frame::binary(vec![0u8; 3000])).await?;
    let error = read_to_end(&mut peer).await?.context("no error message")?;
    ensure!(error.contains("sync.max_frame_bytes"), "{error}");
    ensure!(hits(&server, "frame_size").await? == 1.0);

    let mut peer = RawPeer::connect(&server.ws_url(), "big-message").await?;
    let part = |opcode, last| {
        let header = FrameHeader {
            opcode,
            is_final: last,
            ..FrameHeader::default()
        };
        Frame::Frame(RawFrame::from_payload(header, vec![0u8; 2000].into()))
    };
    peer.send_frame(part(OpCode::Data(Data::Binary), false))
        .await?;
    peer.send_frame(part(OpCode::Data(Data::Continue), false))
        .await?;
    peer.send_frame(part(OpCode::Data(Data::Continue), true))
        .await?;
    let error = read_to_end(&mut peer).await?.context("no error message")?;
    ensure!(error.contains("sync.max_message_bytes"), "{error}");
    ensure!(hits(&server, "message_size").await? == 1.0);

    RawPeer::connect(&server.ws_url(), "after").await?;
    Ok(())
}

/// A connection that asks for one document more than it may attach is closed.
#[tokio::test]
async fn documents_per_connection_are_limited() -> Result<()> {
    let (_dir, server) = start("max_documents_per_connection = 3").await?;
    let mut peer = RawPeer::connect(&server.ws_url(), "collector").await?;
    for _ in 0..3 {
        peer.open(random_document()).await?;
    }
    peer.sync_until_quiet(WAIT).await?;
    peer.open(random_document()).await?;
    let error = read_to_end(&mut peer).await?.context("no error message")?;
    ensure!(error.contains("max_documents_per_connection"), "{error}");
    ensure!(hits(&server, "documents_per_connection").await? == 1.0);
    Ok(())
}

/// A peer over its message rate is read more slowly, not disconnected: sixty messages at 50 a
/// second with a burst of ten take about a second, and all are answered.
#[tokio::test]
async fn the_message_rate_is_paced() -> Result<()> {
    let (_dir, server) = start("max_messages_per_second = 50\nmessage_burst = 10").await?;
    let mut peer = RawPeer::connect(&server.ws_url(), "chatty").await?;
    let started = Instant::now();
    let docs: Vec<DocumentId> = (0..60).map(|_| random_document()).collect();
    for doc in &docs {
        peer.open(*doc).await?;
    }
    let deadline = Instant::now() + WAIT;
    let mut answered = 0;
    while answered < docs.len() {
        ensure!(Instant::now() < deadline, "only {answered} answers");
        match peer.recv(WAIT).await? {
            Some(Message::DocUnavailable(_)) => answered += 1,
            Some(other) => bail!("unexpected {other:?}"),
            None => bail!("no answer within {WAIT:?}"),
        }
    }
    let took = started.elapsed();
    eprintln!("60 messages at 50/s with a burst of 10 took {took:?}");
    // The join used one token too: 50 messages over the burst at 50 a second is one second.
    ensure!(took >= Duration::from_millis(900), "not paced: {took:?}");
    ensure!(hits(&server, "message_rate").await? >= 1.0);
    Ok(())
}

/// A change that would take a document past its size limit is refused with an error to its
/// sender and not stored; what was stored before stays.
#[tokio::test]
async fn document_size_is_limited() -> Result<()> {
    let (_dir, server) = start("max_document_bytes = 4096").await?;
    let mut peer = RawPeer::connect(&server.ws_url(), "grower").await?;
    let (doc, heads) = peer
        .create_acknowledged(
            |d| {
                d.put(automerge::ROOT, "note", "small").expect("put");
            },
            WAIT,
        )
        .await?;
    // Random letters, about 7 KiB once Automerge compresses the change (a pattern would
    // shrink below the limit).
    let noise: String = (0..12_000)
        .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
        .collect();
    peer.change(doc, |d| {
        d.put(automerge::ROOT, "note", noise.as_str()).expect("put");
    })
    .await?;
    let error = read_to_end(&mut peer).await?.context("no error message")?;
    ensure!(error.contains("max_document_bytes"), "{error}");
    ensure!(hits(&server, "document_size").await? == 1.0);

    let mut fresh = RawPeer::connect(&server.ws_url(), "reader").await?;
    fresh.open(doc).await?;
    fresh.wait_heads(doc, &heads, WAIT).await?;
    fresh.sync_until_quiet(WAIT).await?;
    ensure!(fresh.heads(doc) == heads, "the refused change was stored");
    Ok(())
}

/// One address may hold only so many connections; the next is answered 429 until one closes.
#[tokio::test]
async fn connections_per_address_are_limited() -> Result<()> {
    let (_dir, server) = start("max_connections_per_ip = 3").await?;
    let mut held = Vec::new();
    for n in 0..3 {
        held.push(RawPeer::connect(&server.ws_url(), format!("holder-{n}")).await?);
    }
    let refused = tokio_tungstenite::connect_async(server.ws_url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            ensure!(response.status() == 429, "status {}", response.status());
        }
        other => bail!(
            "the fourth connection was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    ensure!(hits(&server, "connections_per_ip").await? == 1.0);

    held.pop().context("a held peer")?.close().await?;
    let deadline = Instant::now() + WAIT;
    loop {
        match RawPeer::connect(&server.ws_url(), "newcomer").await {
            Ok(_) => return Ok(()),
            Err(err) if Instant::now() < deadline => {
                eprintln!("not yet: {err:#}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => return Err(err.context("no slot came free")),
        }
    }
}

/// A WebSocket that never sends `join`, a request whose headers never finish, and a joined
/// peer that goes silent are all closed, each after its own timeout.
#[tokio::test]
async fn sockets_that_hold_without_speaking_are_closed() -> Result<()> {
    let (_dir, server) = start("handshake_timeout_ms = 300\nping_interval_ms = 100").await?;

    // 1. Upgraded, never joins.
    let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url()).await?;
    let started = Instant::now();
    let mut error = None;
    while let Some(frame) = tokio::time::timeout(WAIT, socket.next()).await? {
        if let Ok(Frame::Binary(bytes)) = frame
            && let Ok(Message::Error(e)) = Message::decode(&bytes)
        {
            error = Some(e.message);
        }
    }
    let error = error.context("no error before the close")?;
    ensure!(error.contains("no join"), "{error}");
    ensure!(
        started.elapsed() >= Duration::from_millis(250),
        "closed too early"
    );
    ensure!(hits(&server, "handshake_timeout").await? == 1.0);

    // 2. Request headers trickle and never end.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await?;
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: loris\r\n").await?;
    let started = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(WAIT, tcp.read(&mut buf)).await? {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    ensure!(
        started.elapsed() >= Duration::from_millis(250),
        "dropped too early"
    );

    // 3. Joins, then neither reads nor answers pings.
    let peer_socket = RawPeer::connect(&server.ws_url(), "silent").await?;
    let deadline = Instant::now() + WAIT;
    while server.metric("syncline_connections").await? > 0.0 {
        ensure!(
            Instant::now() < deadline,
            "the silent peer is still connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(peer_socket);
    RawPeer::connect(&server.ws_url(), "after").await?;
    Ok(())
}

/// A thousand connections arrive and leave (a quarter with bad tokens) while a writer's changes
/// are acknowledged. Afterwards every acknowledged change is there, a normal client is served,
/// no connection is left open, and memory is back near its starting point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_storm_loses_nothing() -> Result<()> {
    const STORM: usize = 1000;
    const CONCURRENCY: usize = 50;
    let dir = tempfile::tempdir()?;
    let options = ServerOptions {
        config: AUTH_CONFIG.to_owned(),
        log_filter: "warn".into(),
        ..ServerOptions::default()
    };
    let server = ServerProcess::start(&dir.path().join("data"), &options).await?;
    let token = mint(&server.config_path(), "storm", &Grant::write(&["*"]))?;
    let url = with_token(&server.ws_url(), &token);
    let mut writer = RawPeer::connect(&url, "writer").await?;
    let (doc, _) = writer.create_acknowledged(|_| {}, WAIT).await?;
    // Warm up, so the baseline includes what the first connections allocate for good.
    storm(
        server.ws_url(),
        token.clone(),
        CONCURRENCY,
        doc,
        CONCURRENCY,
    )
    .await?;
    let baseline = server.rss_bytes()?;

    let started = Instant::now();
    let storm_task = tokio::spawn(storm(
        server.ws_url(),
        token.clone(),
        STORM,
        doc,
        CONCURRENCY,
    ));
    let mut acknowledged = Vec::new();
    for n in 0..50_i64 {
        let hash = writer
            .change(doc, |d| {
                d.put(automerge::ROOT, "n", n).expect("put");
            })
            .await?;
        writer.wait_acknowledged(doc, &[hash], WAIT).await?;
        acknowledged.push(hash);
    }
    let refused = storm_task.await??;
    eprintln!(
        "storm of {STORM} connections ({refused} refused) in {:?}",
        started.elapsed()
    );
    ensure!(
        refused == STORM / 4,
        "{refused} refused, expected {}",
        STORM / 4
    );
    writer.close().await?;

    let deadline = Instant::now() + WAIT;
    while server.metric("syncline_connections").await? > 0.0 {
        ensure!(
            Instant::now() < deadline,
            "connections left open after the storm"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut reader = RawPeer::connect(&url, "reader").await?;
    reader.open(doc).await?;
    reader.wait_heads(doc, &acknowledged, WAIT).await?;
    http_get(server.addr, "/healthz").await?;

    let after = server.rss_bytes()?;
    let mib = |b: u64| b as f64 / 1048576.0;
    eprintln!(
        "RSS before the storm {:.1} MiB, after {:.1} MiB",
        mib(baseline),
        mib(after)
    );
    ensure!(
        after <= baseline + 32 * 1024 * 1024,
        "memory grew from {:.1} MiB to {:.1} MiB",
        mib(baseline),
        mib(after)
    );
    let panics = server
        .log
        .lines()
        .into_iter()
        .filter(|l| l.contains("panicked"))
        .count();
    ensure!(panics == 0, "the server panicked");
    Ok(())
}

/// Opens `count` connections, `concurrency` at a time: each joins, reads `doc` and leaves;
/// every fourth presents a forged token and must be refused. Returns how many were refused.
async fn storm(
    ws_url: String,
    token: String,
    count: usize,
    doc: DocumentId,
    concurrency: usize,
) -> Result<usize> {
    let mut tasks = JoinSet::new();
    let mut refused = 0;
    for n in 0..count {
        if tasks.len() >= concurrency {
            refused += tasks.join_next().await.context("a task")???;
        }
        let forged = n % 4 == 3;
        let url = match forged {
            true => with_token(&ws_url, &format!("{token}x")),
            false => with_token(&ws_url, &token),
        };
        tasks.spawn(async move {
            let connected = RawPeer::connect(&url, format!("storm-{n}")).await;
            match (forged, connected) {
                (true, Err(_)) => Ok::<_, anyhow::Error>(1),
                (true, Ok(_)) => bail!("a forged token was accepted"),
                (false, Err(err)) => Err(err.context(format!("storm connection {n}"))),
                (false, Ok(mut peer)) => {
                    peer.open(doc).await?;
                    match peer.recv(WAIT).await? {
                        Some(Message::Sync(_)) => {}
                        other => bail!("storm connection {n} got {other:?}"),
                    }
                    peer.close().await?;
                    Ok(0)
                }
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        refused += result??;
    }
    Ok(refused)
}
