//! Hostile peers: malformed, out-of-order and oversized input on one raw WebSocket.
//!
//! Each test starts its own server and sends one kind of bad input on one connection. The
//! protocol's answer to invalid input is checked as a whole: a `warn!` line, an `error` message
//! naming the problem, a close with code 1008 (policy violation) of that connection only, and a
//! count in `syncline_protocol_errors_total` under the matching reason. A bystander peer joins
//! before the hostile connection and must still be served after it, a latecomer must be able to
//! join afterwards, and the server must still answer `/healthz` without having logged a panic.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use automerge::sync::SyncDoc;
use automerge::transaction::Transactable;
use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use syncline_shared::ids::{DocumentId, PeerId};
use syncline_shared::protocol::{ErrorMessage, Join, Message, PeerMetadata, SyncMessage};
use syncline_tests::server::{ServerOptions, ServerProcess, http_get};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Bound on every wait for the server: a connection, a frame, a close, a log line.
const WAIT: Duration = Duration::from_secs(5);

/// The warning the server logs for every rejected frame.
const REJECT_WARNING: &str = "invalid input from peer; closing connection";

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Random bytes are refused as not CBOR, on that connection only.
#[tokio::test]
async fn random_bytes_are_rejected() -> Result<()> {
    // 1. Start a server with a bystander joined.
    let harness = Harness::start().await?;
    let mut bystander = harness.bystander().await?;

    // 2. Send seeded random bytes. The first byte is a reserved CBOR initial byte (major type 0,
    //    additional information 28), so the frame is ill-formed whatever the rest holds.
    let mut bytes = vec![0u8; 1024];
    rand::rngs::StdRng::seed_from_u64(0x5eed).fill(&mut bytes[..]);
    bytes[0] = 0x1c;
    let mut hostile = harness.connect().await?;
    hostile.send(Frame::binary(bytes)).await?;

    // 3. The hostile connection gets an error naming CBOR, then a close.
    let error = expect_rejection(&mut hostile).await?;
    ensure!(
        error.message.contains("CBOR"),
        "error should name CBOR: {error:?}"
    );

    // 4. The server warned, counted it, and still serves everyone else.
    harness.expect_rejected("not_cbor").await?;
    harness.expect_still_serving(&mut bystander).await
}

/// Well-formed CBOR that is not a map is refused as such.
#[tokio::test]
async fn cbor_that_is_not_a_map_is_rejected() -> Result<()> {
    // 1. Start a server with a bystander joined.
    let harness = Harness::start().await?;
    let mut bystander = harness.bystander().await?;

    // 2. Send a CBOR array of three integers.
    let mut encoder = minicbor::Encoder::new(Vec::new());
    encoder.array(3)?.u8(1)?.u8(2)?.u8(3)?;
    let mut hostile = harness.connect().await?;
    hostile.send(Frame::binary(encoder.into_writer())).await?;

    // 3. The hostile connection gets an error saying it is not a map, then a close.
    let error = expect_rejection(&mut hostile).await?;
    ensure!(
        error.message.contains("not a CBOR map"),
        "error should say not a map: {error:?}"
    );

    // 4. The server warned, counted it, and still serves everyone else.
    harness.expect_rejected("not_a_map").await?;
    harness.expect_still_serving(&mut bystander).await
}

/// A valid `sync` before `join` is refused: `join` must come first.
#[tokio::test]
async fn sync_before_join_is_rejected() -> Result<()> {
    // 1. Start a server with a bystander joined.
    let harness = Harness::start().await?;
    let mut bystander = harness.bystander().await?;

    // 2. Without joining, send a well-formed sync for a new document.
    let mut hostile = harness.connect().await?;
    let sync = sync_message("alice", "server", random_document(), valid_sync_data()?);
    hostile.send(binary(&sync)).await?;

    // 3. The hostile connection gets an error naming join, then a close.
    let error = expect_rejection(&mut hostile).await?;
    ensure!(
        error.message.contains("join"),
        "error should name join: {error:?}"
    );

    // 4. The server warned, counted it, and still serves everyone else.
    harness.expect_rejected("not_joined").await?;
    harness.expect_still_serving(&mut bystander).await
}

/// A joined peer cannot send in another peer's name.
#[tokio::test]
async fn sync_with_another_sender_id_is_rejected() -> Result<()> {
    // 1. Start a server with a bystander joined, and join the hostile connection as alice.
    let harness = Harness::start().await?;
    let mut bystander = harness.bystander().await?;
    let (mut hostile, server) = harness.join("alice").await?;

    // 2. Send a well-formed sync that claims to come from mallory.
    let sync = sync_message(
        "mallory",
        server.as_str(),
        random_document(),
        valid_sync_data()?,
    );
    hostile.send(binary(&sync)).await?;

    // 3. The hostile connection gets an error naming senderId, then a close.
    let error = expect_rejection(&mut hostile).await?;
    ensure!(
        error.message.contains("senderId"),
        "error should name senderId: {error:?}"
    );

    // 4. The server warned, counted it, and still serves everyone else.
    harness.expect_rejected("sender_mismatch").await?;
    harness.expect_still_serving(&mut bystander).await
}

/// A document id whose bs58check checksum fails is refused before any document is touched.
#[tokio::test]
async fn sync_with_invalid_document_id_is_rejected() -> Result<()> {
    // 1. Start a server with a bystander joined, and join the hostile connection as alice.
    let harness = Harness::start().await?;
    let mut bystander = harness.bystander().await?;
    let (mut hostile, server) = harness.join("alice").await?;

    // 2. Send a sync whose documentId is a bad-checksum id from the fixtures. The codec will
    //    not encode an invalid id, so the frame is written by hand.
    let document_id = bad_checksum_document_id()?;
    let frame = raw_sync_frame("alice", server.as_str(), &document_id, &valid_sync_data()?)?;
    hostile.send(Frame::binary(frame)).await?;

    // 3. The hostile connection gets an error naming documentId, then a close.
    let error = expect_rejection(&mut hostile).await?;
    ensure!(
        error.message.contains("documentId"),
        "error should name documentId: {error:?}"
    );

    // 4. The server warned, counted it, and still serves everyone else.
    harness.expect_rejected("invalid_document_id").await?;
    harness.expect_still_serving(&mut bystander).await
}

/// Sync data that is not an Automerge sync message is refused.
#[tokio::test]
async fn sync_with_garbage_data_is_rejected() -> Result<()> {
    // 1. Start a server with a bystander joined, and join the hostile connection as alice.
    let harness = Harness::start().await?;
    let mut bystander = harness.bystander().await?;
    let (mut hostile, server) = harness.join("alice").await?;

    // 2. Send a well-formed sync whose data is text, not an Automerge sync message.
    let data = b"this is not an automerge sync message".to_vec();
    let sync = sync_message("alice", server.as_str(), random_document(), data);
    hostile.send(binary(&sync)).await?;

    // 3. The hostile connection gets an error naming the sync data, then a close.
    let error = expect_rejection(&mut hostile).await?;
    ensure!(
        error.message.contains("sync data"),
        "error should name the sync data: {error:?}"
    );

    // 4. The server warned, counted it, and still serves everyone else.
    harness.expect_rejected("invalid_sync_data").await?;
    harness.expect_still_serving(&mut bystander).await
}

/// Changes in a chunk format that Automerge 0.12 panics on (a malformed bundle the fuzzer found)
/// are refused before Automerge parses them; the document and everyone else are unharmed.
#[tokio::test]
async fn a_bundle_chunk_that_panics_automerge_is_refused() -> Result<()> {
    // 1. Start a server with a bystander joined, and join the hostile connection as alice.
    let harness = Harness::start().await?;
    let mut bystander = harness.bystander().await?;
    let (mut hostile, server) = harness.join("alice").await?;

    // 2. Send a sync whose changes are the fuzzer's crasher: a 92-byte bundle chunk.
    let saved = include_bytes!(
        "../../fuzz/regressions/stored_records/automerge-0.12-bundle-chunk-hexane-lib354-unwrap-panic"
    );
    let length = usize::from(u16::from_le_bytes([saved[1], saved[2]]));
    let chunk = saved[3..3 + length].to_vec();
    let mut doc = automerge::AutoCommit::new();
    doc.put(automerge::ROOT, "title", "hostile")?;
    let mut message = doc
        .sync()
        .generate_sync_message(&mut automerge::sync::State::new())
        .context("a first message")?;
    message.changes = automerge::sync::ChunkList::from(vec![chunk]);
    let sync = sync_message(
        "alice",
        server.as_str(),
        random_document(),
        message.encode(),
    );
    hostile.send(binary(&sync)).await?;

    // 3. The hostile connection gets an error naming the chunk type, then a close.
    let error = expect_rejection(&mut hostile).await?;
    ensure!(error.message.contains("type 3"), "{error:?}");

    // 4. Nothing panicked, and the server still serves everyone else.
    harness.expect_still_serving(&mut bystander).await
}

/// A frame over the configured size limit ends the connection, without hurting others.
#[tokio::test]
async fn oversized_frame_ends_the_connection() -> Result<()> {
    // 1. Start a server limited to 64 KiB frames, with a bystander joined, and join the hostile
    //    connection as alice.
    let config = "[sync]\nmax_message_bytes = 65536\nmax_frame_bytes = 65536\n";
    let harness = Harness::start_with(config).await?;
    let mut bystander = harness.bystander().await?;
    let (mut hostile, _server) = harness.join("alice").await?;

    // 2. Send a 1 MiB frame that the server would ignore if it took it in whole (a message of
    //    unknown type), so only the size limit can end the connection. The server may reset
    //    the socket while the frame is still being written, so a failed send is accepted.
    let frame = padded_unknown_message("alice", 1 << 20)?;
    ensure!(frame.len() > 1 << 20, "the frame must exceed 1 MiB");
    let sent = hostile.send(Frame::binary(frame)).await;

    // 3. The connection ends within the wait, with or without an error message first.
    let ending = read_until_end(&mut hostile).await?;
    eprintln!("oversized frame: send result {sent:?}; connection ended with {ending:?}");

    // 4. If the error message arrived before the reset, it names the limit.
    if let Some(error) = &ending.error {
        ensure!(
            error.message.contains("65536"),
            "error should name the limit: {error:?}"
        );
    }

    // 5. The server warned and counted it as too large, and still serves everyone else.
    harness.expect_rejected("too_large").await?;
    harness.expect_still_serving(&mut bystander).await
}

/// A message of an unknown type is ignored, and the connection stays usable.
#[tokio::test]
async fn unknown_message_type_is_ignored() -> Result<()> {
    // 1. Start a server with a bystander joined, and join the connection under test as alice.
    let harness = Harness::start().await?;
    let mut bystander = harness.bystander().await?;
    let (mut alice, server) = harness.join("alice").await?;

    // 2. Send a message of a type a newer client might use.
    let unknown = Message::Unknown {
        message_type: "future-thing".to_owned(),
        sender_id: Some(PeerId::from("alice")),
    };
    alice.send(binary(&unknown)).await?;

    // 3. The same connection still works: a request for an unknown document is answered.
    expect_doc_unavailable(&mut alice, "alice", &server).await?;

    // 4. Nothing was counted as a protocol error, and the server still serves everyone else.
    let errors = harness.protocol_errors().await?;
    ensure!(
        errors.is_empty(),
        "an unknown type must not count as an error: {errors:?}"
    );
    harness.expect_still_serving(&mut bystander).await
}

/// A text frame is refused: every message travels in a binary frame.
#[tokio::test]
async fn text_frame_is_rejected() -> Result<()> {
    // 1. Start a server with a bystander joined.
    let harness = Harness::start().await?;
    let mut bystander = harness.bystander().await?;

    // 2. Send a join as JSON in a text frame, as a confused client might.
    let mut hostile = harness.connect().await?;
    hostile
        .send(Frame::text(r#"{"type":"join","senderId":"alice"}"#))
        .await?;

    // 3. The hostile connection gets an error naming binary frames, then a close.
    let error = expect_rejection(&mut hostile).await?;
    ensure!(
        error.message.contains("binary"),
        "error should name binary frames: {error:?}"
    );

    // 4. The server warned, counted it, and still serves everyone else.
    harness.expect_rejected("text_frame").await?;
    harness.expect_still_serving(&mut bystander).await
}

/// One server on its own data directory, for one test.
struct Harness {
    server: ServerProcess,
    /// Keeps the data directory until the server is dropped (and killed) first.
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Result<Self> {
        Self::start_with("").await
    }

    async fn start_with(config: &str) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let options = ServerOptions {
            config: config.to_owned(),
            ..ServerOptions::default()
        };
        let server = ServerProcess::start(&dir.path().join("data"), &options).await?;
        Ok(Self { server, _dir: dir })
    }

    async fn connect(&self) -> Result<Socket> {
        let url = self.server.ws_url();
        let (socket, _response) =
            within("connect", tokio_tungstenite::connect_async(url)).await??;
        Ok(socket)
    }

    /// Connects and joins as `peer`; returns the socket and the server's peer id.
    async fn join(&self, peer: &str) -> Result<(Socket, PeerId)> {
        let mut socket = self.connect().await?;
        let join = Message::Join(Join {
            sender_id: PeerId::from(peer),
            peer_metadata: Some(PeerMetadata {
                storage_id: None,
                is_ephemeral: true,
            }),
            supported_protocol_versions: Some(vec!["1".to_owned()]),
        });
        socket.send(binary(&join)).await?;

        let reply = next_message(&mut socket).await?;
        let Message::Peer(reply) = reply else {
            bail!("{peer} expected peer, got {reply:?}")
        };
        ensure!(
            reply.target_id.as_str() == peer,
            "peer reply addressed to {}",
            reply.target_id
        );
        Ok((socket, reply.sender_id))
    }

    /// A well-behaved peer that joins before the hostile connection and stays connected.
    async fn bystander(&self) -> Result<Bystander> {
        let (socket, server) = self.join("bystander").await?;
        Ok(Bystander { socket, server })
    }

    /// The hostile connection was warned about and counted under `reason`.
    async fn expect_rejected(&self, reason: &str) -> Result<()> {
        let field = format!("reason={reason}");
        let quoted = format!("reason=\"{reason}\"");
        let line = self
            .server
            .log
            .wait_for(WAIT, |line| {
                line.contains("WARN")
                    && line.contains(REJECT_WARNING)
                    && (line.contains(&field) || line.contains(&quoted))
            })
            .await?;
        eprintln!("rejection logged: {line}");

        let errors = self.protocol_errors().await?;
        let count = errors.get(reason).copied().unwrap_or_default();
        ensure!(
            count >= 1.0,
            "no protocol error counted as {reason}: {errors:?}"
        );
        Ok(())
    }

    /// The bystander is still served, a latecomer can join, `/healthz` answers and no panic
    /// was logged.
    async fn expect_still_serving(&self, bystander: &mut Bystander) -> Result<()> {
        expect_doc_unavailable(&mut bystander.socket, "bystander", &bystander.server).await?;
        self.join("latecomer").await?;
        within("healthz", http_get(self.server.addr, "/healthz")).await??;

        let lines = self.server.log.lines();
        let panics: Vec<_> = lines.iter().filter(|l| l.contains("panicked")).collect();
        ensure!(
            panics.is_empty(),
            "server logged a panic:\n{}",
            lines.join("\n")
        );
        Ok(())
    }

    /// `syncline_protocol_errors_total` per `reason` label; reasons never counted are absent.
    async fn protocol_errors(&self) -> Result<HashMap<String, f64>> {
        let text = within("metrics", http_get(self.server.addr, "/metrics")).await??;
        let mut counts = HashMap::new();
        for line in text.lines() {
            let Some(sample) = line.strip_prefix("syncline_protocol_errors_total{") else {
                continue;
            };
            let (labels, value) = sample.rsplit_once("} ").context("sample without a value")?;
            let reason = labels
                .strip_prefix("reason=\"")
                .and_then(|rest| rest.strip_suffix('"'))
                .with_context(|| format!("unexpected labels in {line}"))?;
            counts.insert(reason.to_owned(), value.parse()?);
        }
        Ok(counts)
    }
}

/// A well-behaved peer that stays connected while a hostile one misbehaves.
struct Bystander {
    socket: Socket,
    server: PeerId,
}

/// The next frame, ping and pong skipped; `None` when the stream has ended.
async fn next_frame(socket: &mut Socket) -> Result<Option<Frame>> {
    loop {
        match within("a frame", socket.next()).await? {
            Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => continue,
            Some(frame) => return Ok(Some(frame?)),
            None => return Ok(None),
        }
    }
}

/// The next frame, which must be a binary frame holding a protocol message.
async fn next_message(socket: &mut Socket) -> Result<Message> {
    match next_frame(socket).await? {
        Some(Frame::Binary(bytes)) => Ok(Message::decode(&bytes)?),
        other => bail!("expected a binary message frame, got {other:?}"),
    }
}

/// The server's answer to invalid input: an `error` message, then a close with code 1008, then
/// the end of the stream.
async fn expect_rejection(socket: &mut Socket) -> Result<ErrorMessage> {
    let message = next_message(socket).await?;
    let Message::Error(error) = message else {
        bail!("expected an error, got {message:?}")
    };

    match next_frame(socket).await? {
        Some(Frame::Close(Some(close))) if close.code == CloseCode::Policy => {}
        other => bail!("expected a close with code 1008 after {error:?}, got {other:?}"),
    }
    match next_frame(socket).await {
        Ok(None) | Err(_) => Ok(error),
        Ok(Some(frame)) => bail!("frame after the close: {frame:?}"),
    }
}

/// How a connection ended, as far as the client saw it.
#[derive(Debug, Default)]
struct Ending {
    error: Option<ErrorMessage>,
    close: Option<Frame>,
    transport_error: Option<String>,
}

/// Reads until the stream ends, noting an error message, a close frame or a transport error.
/// Any other frame, or no end within the wait, fails.
async fn read_until_end(socket: &mut Socket) -> Result<Ending> {
    let mut ending = Ending::default();
    loop {
        let frame = match within("the end of the connection", socket.next()).await? {
            None => return Ok(ending),
            Some(Err(err)) => {
                ending.transport_error = Some(err.to_string());
                return Ok(ending);
            }
            Some(Ok(frame)) => frame,
        };
        match frame {
            Frame::Ping(_) | Frame::Pong(_) => {}
            Frame::Close(_) => ending.close = Some(frame),
            Frame::Binary(bytes) => match Message::decode(&bytes)? {
                Message::Error(error) => ending.error = Some(error),
                other => bail!("unexpected message before the end: {other:?}"),
            },
            other => bail!("unexpected frame before the end: {other:?}"),
        }
    }
}

/// Sends a `request` for a document the server has never seen and expects `doc-unavailable`.
async fn expect_doc_unavailable(socket: &mut Socket, peer: &str, server: &PeerId) -> Result<()> {
    let document = random_document();
    let request = Message::Request(SyncMessage {
        sender_id: PeerId::from(peer),
        target_id: server.clone(),
        document_id: document,
        data: empty_document_sync_data()?,
    });
    socket.send(binary(&request)).await?;

    match next_message(socket).await? {
        Message::DocUnavailable(reply) if reply.document_id == document => Ok(()),
        other => bail!("{peer} expected doc-unavailable for {document}, got {other:?}"),
    }
}

async fn within<F: Future>(what: &str, future: F) -> Result<F::Output> {
    tokio::time::timeout(WAIT, future)
        .await
        .with_context(|| format!("no {what} within {WAIT:?}"))
}

fn binary(message: &Message) -> Frame {
    Frame::binary(message.encode())
}

fn sync_message(sender: &str, target: &str, document: DocumentId, data: Vec<u8>) -> Message {
    Message::Sync(SyncMessage {
        sender_id: PeerId::from(sender),
        target_id: PeerId::from(target),
        document_id: document,
        data,
    })
}

fn random_document() -> DocumentId {
    DocumentId::random_from(rand::random())
}

/// The first sync message of a peer holding a document with one change.
fn valid_sync_data() -> Result<Vec<u8>> {
    let mut doc = automerge::AutoCommit::new();
    doc.put(automerge::ROOT, "title", "hostile")?;
    let message = doc
        .sync()
        .generate_sync_message(&mut automerge::sync::State::new());
    Ok(message
        .context("a fresh sync state always has a first message")?
        .encode())
}

/// The first sync message of a peer with no copy, as sent in a `request`.
fn empty_document_sync_data() -> Result<Vec<u8>> {
    let doc = automerge::Automerge::new();
    let message = doc.generate_sync_message(&mut automerge::sync::State::new());
    Ok(message
        .context("a fresh sync state always has a first message")?
        .encode())
}

/// The first id in the fixtures that fails only its bs58check checksum.
fn bad_checksum_document_id() -> Result<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/automerge-repo/documents/ids.json"
    );
    let text = std::fs::read_to_string(path).with_context(|| format!("read {path}"))?;
    let ids: serde_json::Value = serde_json::from_str(&text)?;
    let invalid = ids["invalid_document_ids"]
        .as_array()
        .context("invalid_document_ids")?;
    let id = invalid
        .iter()
        .find(|entry| {
            entry["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("bad checksum"))
        })
        .and_then(|entry| entry["value"].as_str())
        .context("no bad-checksum id in the fixtures")?;
    ensure!(
        DocumentId::from_bs58check(id).is_err(),
        "fixture id {id} should be invalid"
    );
    Ok(id.to_owned())
}

/// A `sync` frame with any text as its documentId.
fn raw_sync_frame(
    sender: &str,
    target: &str,
    document_id: &str,
    data: &[u8],
) -> Result<Vec<u8>, minicbor::encode::Error<Infallible>> {
    let mut encoder = minicbor::Encoder::new(Vec::new());
    encoder.map(5)?;
    encoder.str("type")?.str("sync")?;
    encoder.str("senderId")?.str(sender)?;
    encoder.str("targetId")?.str(target)?;
    encoder.str("documentId")?.str(document_id)?;
    encoder.str("data")?.bytes(data)?;
    Ok(encoder.into_writer())
}

/// A message of an unknown type carrying `padding` bytes in an extra field.
fn padded_unknown_message(
    sender: &str,
    padding: usize,
) -> Result<Vec<u8>, minicbor::encode::Error<Infallible>> {
    let mut encoder = minicbor::Encoder::new(Vec::new());
    encoder.map(3)?;
    encoder.str("type")?.str("future-thing")?;
    encoder.str("senderId")?.str(sender)?;
    encoder.str("padding")?.bytes(&vec![0u8; padding])?;
    Ok(encoder.into_writer())
}
