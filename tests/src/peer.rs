//! A protocol peer that speaks the wire directly, for suites and benchmarks that need exact
//! control over what is sent and when.
//!
//! A [`RawPeer`] is one WebSocket connection. It joins, then holds Automerge replicas of the
//! documents it created or opened, with one `automerge::sync::State` each. Every local change and
//! every sync message from the server is answered at once with whatever
//! `generate_sync_message` produces, so the peer behaves like an automerge-repo client without
//! storage of its own.
//!
//! The peer runs no background task: frames are read, and answered, only while one of its
//! methods is awaited. That keeps runs deterministic and lets the caller decide how much work
//! is in flight (create a hundred documents, then wait for each). The flip side: a peer left
//! idle for longer than the server's ping window (three ping intervals) misses its pongs and is
//! disconnected.
//!
//! Durable acknowledgement: the server only advertises heads whose changes are on disk, so the
//! heads of its latest sync message for a document ([`RawPeer::acknowledged`]) are what a crash
//! cannot take away. [`RawPeer::wait_acknowledged`] waits for those to cover given heads.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use automerge::sync::{self, SyncDoc};
use automerge::transaction::CommitOptions;
use automerge::{AutoCommit, Automerge, ChangeHash};
use futures_util::{SinkExt, StreamExt};
use syncline_shared::ids::{DocumentId, PeerId, StorageId};
use syncline_shared::protocol::{Join, Message, PeerMetadata, SyncMessage};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long [`RawPeer::connect`] waits for the WebSocket handshake and the server's `peer`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// WebSocket read and write buffers, as small as the server's: tungstenite zeroes the free part
/// of its read buffer on every read, which at its default of 128 KiB cost a load generator with
/// a thousand peers most of its CPU. A larger message still arrives whole.
const SOCKET_BUFFER_BYTES: usize = 8 * 1024;

/// How long [`RawPeer::close`] waits for the server to finish the closing handshake.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The connection is gone: the server closed it, or the socket broke (for example because the
/// server was killed). Methods that read or write return it inside their `anyhow::Error`; tell it
/// from other failures with `error.downcast_ref::<Disconnected>()`.
#[derive(Debug)]
pub struct Disconnected {
    /// What was seen: the close frame's code and reason, or the transport error.
    pub detail: String,
}

impl fmt::Display for Disconnected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "disconnected from the server: {}", self.detail)
    }
}

impl std::error::Error for Disconnected {}

/// One document as this peer holds it.
#[derive(Debug)]
struct Replica {
    doc: AutoCommit,
    state: sync::State,
    /// Heads of the server's latest sync message for this document: durable on the server.
    acknowledged: Vec<ChangeHash>,
    /// The server answered `doc-unavailable`.
    unavailable: bool,
}

impl Replica {
    fn new(doc: AutoCommit) -> Self {
        Self {
            doc,
            state: sync::State::new(),
            acknowledged: Vec::new(),
            unavailable: false,
        }
    }

    /// Whether the server's latest advertised heads equal ours, or it has nothing to give.
    fn settled(&mut self) -> bool {
        self.unavailable || self.state.their_heads.as_ref() == Some(&self.doc.get_heads())
    }

    /// Whether the server's acknowledged heads include every one of `heads` or descend from it.
    fn covers(&mut self, heads: &[ChangeHash]) -> bool {
        if heads.iter().all(|head| self.acknowledged.contains(head)) {
            return true;
        }
        let acknowledged = self.acknowledged.clone();
        if !acknowledged
            .iter()
            .all(|hash| self.doc.get_change_by_hash(hash).is_some())
        {
            return false;
        }
        // Changes outside the history of the acknowledged heads; ours must not be among them.
        let outside = self.doc.get_changes(&acknowledged);
        heads.iter().all(|head| {
            self.doc.get_change_by_hash(head).is_some()
                && !outside.iter().any(|change| change.hash() == *head)
        })
    }
}

/// One connection to a Syncline server, joined and ready for per-document sync.
///
/// Methods that take a [`DocumentId`] panic if the peer neither created nor opened that
/// document: that is a bug in the calling test, not a condition to handle.
#[derive(Debug)]
pub struct RawPeer {
    socket: Socket,
    peer_id: PeerId,
    server_peer_id: PeerId,
    server_storage_id: Option<StorageId>,
    documents: HashMap<DocumentId, Replica>,
}

impl RawPeer {
    /// Opens a WebSocket to `url` (`ws://host:port/`), sends `join` as `peer_id` and waits for
    /// the server's `peer`. The peer announces no storage of its own, so the server keeps no
    /// sync state for it between connections.
    pub async fn connect(url: &str, peer_id: impl Into<PeerId>) -> Result<Self> {
        let peer_id = peer_id.into();
        let (socket, _) = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_tungstenite::connect_async_with_config(
                url,
                Some(
                    WebSocketConfig::default()
                        .read_buffer_size(SOCKET_BUFFER_BYTES)
                        .write_buffer_size(SOCKET_BUFFER_BYTES),
                ),
                false,
            ),
        )
        .await
        .with_context(|| format!("WebSocket handshake with {url} took over {CONNECT_TIMEOUT:?}"))?
        .with_context(|| format!("connect to {url}"))?;
        let mut peer = Self {
            socket,
            peer_id: peer_id.clone(),
            server_peer_id: PeerId::from(""),
            server_storage_id: None,
            documents: HashMap::new(),
        };

        peer.send(Message::Join(Join {
            sender_id: peer_id,
            peer_metadata: Some(PeerMetadata {
                storage_id: None,
                is_ephemeral: true,
            }),
            supported_protocol_versions: Some(vec!["1".to_owned()]),
        }))
        .await?;
        match peer.recv(CONNECT_TIMEOUT).await? {
            Some(Message::Peer(answer)) => {
                peer.server_peer_id = answer.sender_id;
                peer.server_storage_id = answer.peer_metadata.storage_id;
                Ok(peer)
            }
            Some(other) => bail!(
                "server answered join with {:?} instead of peer",
                other.type_name()
            ),
            None => bail!("no peer message within {CONNECT_TIMEOUT:?} of join"),
        }
    }

    /// The peer id this connection joined as.
    pub fn peer_id(&self) -> &PeerId {
        &self.peer_id
    }

    /// The server's peer id, from its `peer` answer.
    pub fn server_peer_id(&self) -> &PeerId {
        &self.server_peer_id
    }

    /// The server's storage id, from its `peer` answer.
    pub fn server_storage_id(&self) -> Option<&StorageId> {
        self.server_storage_id.as_ref()
    }

    /// Creates a document with a random id, lets `initial` write its first change, and sends the
    /// first sync message. The change is committed even if `initial` does nothing, because a
    /// document the server has never seen is only created by a sync message carrying changes.
    pub async fn create_document(
        &mut self,
        initial: impl FnOnce(&mut AutoCommit),
    ) -> Result<DocumentId> {
        let id = DocumentId::random_from(rand::random());
        self.adopt(id, initial).await?;
        Ok(id)
    }

    /// [`create_document`](Self::create_document), then waits at most `timeout` for the server
    /// to acknowledge it; returns the id and the acknowledged heads.
    pub async fn create_acknowledged(
        &mut self,
        initial: impl FnOnce(&mut AutoCommit),
        timeout: Duration,
    ) -> Result<(DocumentId, Vec<ChangeHash>)> {
        let id = self.create_document(initial).await?;
        let heads = self.heads(id);
        self.wait_acknowledged(id, &heads, timeout).await?;
        Ok((id, heads))
    }

    /// Like [`create_document`](Self::create_document), under an id the caller chose: for
    /// uploading a document somebody else already asked for.
    pub async fn adopt(
        &mut self,
        id: DocumentId,
        initial: impl FnOnce(&mut AutoCommit),
    ) -> Result<()> {
        if self.documents.contains_key(&id) {
            bail!("{id} is already held by this peer");
        }
        let mut doc = AutoCommit::new();
        initial(&mut doc);
        commit_stamped(&mut doc);
        self.documents.insert(id, Replica::new(doc));
        self.send_sync(id).await
    }

    /// Makes one change to a held document with `f` and sends it; returns the change's hash. Like
    /// [`create_document`](Self::create_document), an empty change is committed if `f` does
    /// nothing, so every call yields a change to wait for.
    pub async fn change(
        &mut self,
        doc: DocumentId,
        f: impl FnOnce(&mut AutoCommit),
    ) -> Result<ChangeHash> {
        let replica = self.replica(doc);
        f(&mut replica.doc);
        let hash = commit_stamped(&mut replica.doc);
        self.send_sync(doc).await?;
        Ok(hash)
    }

    /// Starts holding `doc` with an empty copy and sends `request` for it. The server answers
    /// with the document, or with `doc-unavailable` (see [`is_unavailable`](Self::is_unavailable)).
    pub async fn open(&mut self, doc: DocumentId) -> Result<()> {
        if self.documents.contains_key(&doc) {
            bail!("{doc} is already held by this peer");
        }
        let replica = self
            .documents
            .entry(doc)
            .or_insert_with(|| Replica::new(AutoCommit::new()));
        let data = replica
            .doc
            .sync()
            .generate_sync_message(&mut replica.state)
            .expect("a fresh sync state always has a first message to send")
            .encode();
        let request = self.sync_message(doc, data);
        self.send(Message::Request(request)).await
    }

    /// Reads and answers frames until the server has acknowledged `heads` of `doc`: its
    /// advertised heads contain each of them or descend from it.
    pub async fn wait_acknowledged(
        &mut self,
        doc: DocumentId,
        heads: &[ChangeHash],
        timeout: Duration,
    ) -> Result<()> {
        self.pump_until(timeout, |peer| peer.replica(doc).covers(heads))
            .await
            .with_context(|| format!("waiting for the server to acknowledge {heads:?} of {doc}"))
    }

    /// Reads and answers frames until our own copy of `doc` contains every one of `heads`.
    pub async fn wait_heads(
        &mut self,
        doc: DocumentId,
        heads: &[ChangeHash],
        timeout: Duration,
    ) -> Result<()> {
        self.pump_until(timeout, |peer| {
            let replica = peer.replica(doc);
            heads
                .iter()
                .all(|h| replica.doc.get_change_by_hash(h).is_some())
        })
        .await
        .with_context(|| format!("waiting to receive {heads:?} of {doc}"))
    }

    /// Reads and answers frames until every held document is in sync with the server (its latest
    /// advertised heads equal ours) or was reported unavailable.
    pub async fn sync_until_quiet(&mut self, timeout: Duration) -> Result<()> {
        self.pump_until(timeout, |peer| {
            peer.documents.values_mut().all(Replica::settled)
        })
        .await
        .context("waiting for every document to be in sync with the server")
    }

    /// Reads and answers frames until the server has said `doc` is unavailable.
    pub async fn wait_unavailable(&mut self, doc: DocumentId, timeout: Duration) -> Result<()> {
        self.pump_until(timeout, |peer| peer.replica(doc).unavailable)
            .await
            .with_context(|| format!("waiting for the server to call {doc} unavailable"))
    }

    /// Our current heads of `doc`.
    pub fn heads(&mut self, doc: DocumentId) -> Vec<ChangeHash> {
        self.replica(doc).doc.get_heads()
    }

    /// The heads of the server's latest sync message for `doc`: changes it has made durable.
    pub fn acknowledged(&mut self, doc: DocumentId) -> Vec<ChangeHash> {
        self.replica(doc).acknowledged.clone()
    }

    /// Whether the server answered `doc-unavailable` for `doc`.
    pub fn is_unavailable(&mut self, doc: DocumentId) -> bool {
        self.replica(doc).unavailable
    }

    /// Changes `doc` and sends the change although the server marked this connection
    /// read-only, as a peer that ignores Automerge's read-only flag would: the change goes in a
    /// sync message of its own, whatever the sync state says. Returns its hash.
    pub async fn change_ignoring_read_only(
        &mut self,
        doc: DocumentId,
        f: impl FnOnce(&mut AutoCommit),
    ) -> Result<ChangeHash> {
        let replica = self.replica(doc);
        f(&mut replica.doc);
        let hash = commit_stamped(&mut replica.doc);
        let change = replica
            .doc
            .get_change_by_hash(&hash)
            .context("the change just made")?
            .raw_bytes()
            .to_vec();
        let mut message = replica
            .doc
            .sync()
            .generate_sync_message(&mut sync::State::new())
            .context("a fresh sync state always has a first message")?;
        message.changes = sync::ChunkList::from(vec![change]);
        let sync = self.sync_message(doc, message.encode());
        self.send(Message::Sync(sync)).await?;
        Ok(hash)
    }

    /// Our copy of `doc`, for reads (`get_change_by_hash`, `hydrate`, ...).
    pub fn document(&mut self, doc: DocumentId) -> &Automerge {
        self.replica(doc).doc.document()
    }

    /// Sends one message as it is: no checks, no bookkeeping. With [`recv`](Self::recv), this is
    /// the way to send what a well-behaved peer would not.
    pub async fn send(&mut self, message: Message) -> Result<()> {
        self.send_frame(Frame::binary(message.encode())).await
    }

    /// Sends one raw WebSocket frame, for input that is not a valid message at all.
    pub async fn send_frame(&mut self, frame: Frame) -> Result<()> {
        self.socket.send(frame).await.map_err(disconnected)
    }

    /// The next message from the server, handed over untouched (the peer's replicas do not see
    /// it); `None` if nothing arrives within `timeout`. Pings and pongs are skipped. Fails with
    /// [`Disconnected`] once the connection is gone, or if a binary frame does not decode.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Option<Message>> {
        let deadline = Instant::now() + timeout;
        loop {
            let Ok(next) = tokio::time::timeout_at(deadline, self.socket.next()).await else {
                return Ok(None);
            };
            if let Some(message) = decode_frame(next)? {
                return Ok(Some(message));
            }
        }
    }

    /// Hands a message taken with [`recv`](Self::recv) to the peer after all, as if it had been
    /// pumped: for callers that time a message's arrival apart from its handling.
    pub async fn accept(&mut self, message: Message) -> Result<()> {
        self.handle_message(message).await
    }

    /// Closes the connection politely and waits, at most a few seconds, for the server to
    /// finish the closing handshake. The server detaches the peer from its documents, which may
    /// then unload.
    pub async fn close(mut self) -> Result<()> {
        self.socket.close(None).await.map_err(disconnected)?;
        let drained = tokio::time::timeout(CLOSE_TIMEOUT, async {
            while let Some(Ok(_)) = self.socket.next().await {}
        });
        drained
            .await
            .map_err(|_| anyhow!("server did not close within {CLOSE_TIMEOUT:?}"))
    }

    /// Reads and answers at most one frame, waiting for it until `deadline`; false if none came.
    /// For callers that interleave their own work with the server's messages.
    pub async fn pump_until_deadline(&mut self, deadline: Instant) -> Result<bool> {
        let Ok(next) = tokio::time::timeout_at(deadline, self.socket.next()).await else {
            return Ok(false);
        };
        if let Some(message) = decode_frame(next)? {
            self.handle_message(message).await?;
        }
        Ok(true)
    }

    /// Whether the server has acknowledged `heads` of `doc` (see
    /// [`wait_acknowledged`](Self::wait_acknowledged)), without reading anything.
    pub fn is_acknowledged(&mut self, doc: DocumentId, heads: &[ChangeHash]) -> bool {
        self.replica(doc).covers(heads)
    }

    /// Whether our copy of `doc` holds the change `hash`.
    pub fn has_change(&mut self, doc: DocumentId, hash: &ChangeHash) -> bool {
        self.replica(doc).doc.get_change_by_hash(hash).is_some()
    }

    /// Reads frames, answering each, until `done` holds; fails after `timeout`.
    async fn pump_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            let next = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .map_err(|_| anyhow!("timed out after {timeout:?}"))?;
            if let Some(message) = decode_frame(next)? {
                self.handle_message(message).await?;
            }
        }
        Ok(())
    }

    async fn handle_message(&mut self, message: Message) -> Result<()> {
        match message {
            Message::Sync(sync) | Message::Request(sync) => self.handle_sync(sync).await,
            Message::DocUnavailable(answer) => {
                self.handle_unavailable(answer.document_id);
                Ok(())
            }
            Message::Error(error) => bail!("server sent error: {}", error.message),
            // Ephemeral data, heads gossip and unknown types carry nothing this peer tracks.
            _ => Ok(()),
        }
    }

    /// Applies the server's sync message, records its heads as acknowledged, and answers.
    async fn handle_sync(&mut self, message: SyncMessage) -> Result<()> {
        let doc = message.document_id;
        let Some(replica) = self.documents.get_mut(&doc) else {
            bail!("server sent sync for {doc}, which this peer never created or opened");
        };
        let decoded = sync::Message::decode(&message.data)
            .with_context(|| format!("server sent undecodable sync data for {doc}"))?;
        replica.acknowledged.clone_from(&decoded.heads);
        // A document reported unavailable can still arrive later, once somebody uploads it.
        replica.unavailable &= decoded.heads.is_empty();
        replica
            .doc
            .sync()
            .receive_sync_message(&mut replica.state, decoded)
            .with_context(|| format!("server's sync message for {doc} does not apply"))?;
        self.send_sync(doc).await
    }

    fn handle_unavailable(&mut self, doc: DocumentId) {
        if let Some(replica) = self.documents.get_mut(&doc) {
            replica.unavailable = true;
        }
    }

    /// Sends the next sync message for `doc`, if the sync protocol has one to send.
    async fn send_sync(&mut self, doc: DocumentId) -> Result<()> {
        let replica = self.replica(doc);
        let Some(message) = replica.doc.sync().generate_sync_message(&mut replica.state) else {
            return Ok(());
        };
        let sync = self.sync_message(doc, message.encode());
        self.send(Message::Sync(sync)).await
    }

    /// A `sync` or `request` body from this peer to the server.
    fn sync_message(&self, doc: DocumentId, data: Vec<u8>) -> SyncMessage {
        SyncMessage {
            sender_id: self.peer_id.clone(),
            target_id: self.server_peer_id.clone(),
            document_id: doc,
            data,
        }
    }

    fn replica(&mut self, doc: DocumentId) -> &mut Replica {
        self.documents
            .get_mut(&doc)
            .unwrap_or_else(|| panic!("{doc} is not held by this peer: create or open it first"))
    }
}

/// Commit options stamped with the current time in seconds, as Syncline's own writers stamp
/// their changes (Automerge's default of 0 would lose every timestamp comparison).
pub fn stamped_now() -> CommitOptions {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CommitOptions::default().with_time(i64::try_from(now).unwrap_or(i64::MAX))
}

/// Commits pending operations as one change stamped with the current time, or an empty change
/// if there are none, and returns its hash.
fn commit_stamped(doc: &mut AutoCommit) -> ChangeHash {
    match doc.commit_with(stamped_now()) {
        Some(hash) => hash,
        None => doc.empty_change(stamped_now()),
    }
}

/// Turns what the socket yielded into a message: `None` for control frames, [`Disconnected`]
/// for a close or a broken socket.
fn decode_frame(
    next: Option<Result<Frame, tokio_tungstenite::tungstenite::Error>>,
) -> Result<Option<Message>> {
    match next {
        None => Err(Disconnected {
            detail: "the stream ended".to_owned(),
        }
        .into()),
        Some(Err(error)) => Err(disconnected(error)),
        Some(Ok(Frame::Close(frame))) => {
            let detail = frame.map_or_else(
                || "close frame without a reason".to_owned(),
                |f| format!("close code {}: {}", u16::from(f.code), f.reason),
            );
            Err(Disconnected { detail }.into())
        }
        Some(Ok(Frame::Binary(bytes))) => Message::decode(&bytes)
            .map(Some)
            .context("server sent a frame that does not decode"),
        Some(Ok(Frame::Text(text))) => bail!("server sent a text frame: {text}"),
        Some(Ok(_)) => Ok(None),
    }
}

fn disconnected(error: tokio_tungstenite::tungstenite::Error) -> anyhow::Error {
    Disconnected {
        detail: error.to_string(),
    }
    .into()
}
