//! One WebSocket connection: validates what a peer sends and routes it to document workers.
//!
//! The task splits the socket. The reader half (this task) decodes each frame, applies the
//! protocol's validation order (binary frame, CBOR map, known type, `join` first, matching
//! `senderId`, well-formed `documentId`, decodable sync data) and forwards messages to the
//! document workers. The writer half (a second task) owns the sink: it sends queued control
//! messages, pulls sync messages from workers for documents marked ready in [`Outbound`], and
//! pings. Invalid input closes this connection only, after an `error` message that names it.
//!
//! The reader also enforces the connection's limits: `join` within the handshake timeout, a
//! token bucket on incoming messages (a fast peer is read more slowly, not dropped), a cap on
//! attached documents, and the token's expiry. A document the token cannot read is answered
//! `doc-unavailable`, exactly like a missing one, without loading it when the grants alone
//! decide; otherwise the document's worker decides, since only it knows the creator.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use syncline_shared::ids::{DocumentId, PeerId, StorageId};
use syncline_shared::protocol::{
    DecodeError, DocUnavailable, Ephemeral, ErrorMessage, Join, Message, Peer, PeerMetadata,
    SyncMessage,
};
use syncline_shared::session::{ConnectionId, SyncKind};
use tokio::time::Instant;
use tracing::{Instrument, debug, field, info, info_span, warn};

use super::NetState;
use super::outbound::{CloseReason, Outbound, OutboundReceiver};
use crate::auth::{Access, Principal};
use crate::documents::{DocumentCommand, DocumentHandle};

/// The protocol version this server speaks.
const PROTOCOL_VERSION: &str = "1";

/// Documents this connection is attached to. The reader inserts; the writer looks up handles
/// to pull sync messages. Held only for one lookup or insert.
type Attached = Arc<Mutex<HashMap<DocumentId, DocumentHandle>>>;

/// Input that ends the connection: a metrics label and the text sent in the `error` message.
#[derive(Debug)]
struct Reject {
    reason: &'static str,
    message: String,
}

impl Reject {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// What the reader does after one frame.
enum Next {
    Continue,
    Close,
}

/// The joined peer of a connection.
#[derive(Debug, Clone)]
struct Joined {
    peer: PeerId,
    /// Set when the peer keeps a durable copy, so its sync state is worth keeping.
    storage_id: Option<StorageId>,
}

struct Connection {
    id: ConnectionId,
    state: Arc<NetState>,
    principal: Arc<Principal>,
    /// Paces incoming messages.
    bucket: Bucket,
    outbound: Arc<Outbound>,
    attached: Attached,
    joined: Option<Joined>,
    last_seen: Arc<Mutex<Instant>>,
    /// The joined peer id, shared with the writer, which addresses sync messages to it.
    peer: Arc<OnceLock<PeerId>>,
}

/// A token bucket: `rate` tokens a second, holding at most `burst`. A message takes one token;
/// when none is left the reader waits until one has accrued.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            at: Instant::now(),
        }
    }

    /// Takes a token; how long to wait before using it (zero if one was there).
    fn take(&mut self, now: Instant) -> Duration {
        let accrued = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + accrued).min(self.burst) - 1.0;
        self.at = now;
        match self.tokens >= 0.0 {
            true => Duration::ZERO,
            false => Duration::from_secs_f64(-self.tokens / self.rate),
        }
    }
}

/// Whether a frame is a message the peer sent (as opposed to a ping, pong or close).
fn is_message(frame: &WsMessage) -> bool {
    matches!(frame, WsMessage::Binary(_) | WsMessage::Text(_))
}

/// Serves one upgraded socket until either side closes it.
pub async fn run(socket: WebSocket, state: Arc<NetState>, principal: Arc<Principal>) {
    let id = state.next_connection_id();
    let span = info_span!("conn", conn = %id, peer = field::Empty, subject = field::Empty);
    if let Some(subject) = principal.subject() {
        span.record("subject", subject);
    }
    async move {
        state.metrics.connections.inc();
        let (sink, stream) = socket.split();
        let (outbound, receiver) = Outbound::new();
        let limits = &state.limits;
        let mut connection = Connection {
            id,
            bucket: Bucket::new(limits.max_messages_per_second, limits.message_burst),
            principal,
            state: state.clone(),
            outbound: Arc::new(outbound),
            attached: Attached::default(),
            joined: None,
            last_seen: Arc::new(Mutex::new(Instant::now())),
            peer: Arc::default(),
        };
        let writer = tokio::spawn(connection.writer(sink, receiver).in_current_span());
        connection.read(stream).await;
        if writer.await.is_err() {
            warn!("connection writer panicked");
        }
        connection.finish().await;
        state.metrics.connections.dec();
    }
    .instrument(span)
    .await
}

impl Connection {
    async fn read(&mut self, mut stream: SplitStream<WebSocket>) {
        let shutdown = self.state.shutdown.clone();
        let handshake_deadline = Instant::now() + self.state.limits.handshake_timeout;
        let expiry = self.principal.expires_at().map(|at| {
            let left = at.duration_since(SystemTime::now()).unwrap_or_default();
            Instant::now() + left
        });
        let expired = async {
            match expiry {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expired);
        loop {
            let frame = tokio::select! {
                frame = stream.next() => frame,
                () = self.outbound.closed() => break,
                () = shutdown.cancelled() => {
                    self.outbound.close(CloseReason::Shutdown);
                    break;
                }
                () = tokio::time::sleep_until(handshake_deadline), if self.joined.is_none() => {
                    self.state.metrics.limit_hit("handshake_timeout");
                    let timeout = self.state.limits.handshake_timeout;
                    self.reject(Reject::new(
                        "handshake_timeout",
                        format!("no join within {} ms of connecting", timeout.as_millis()),
                    ));
                    break;
                }
                () = &mut expired => {
                    self.expire();
                    break;
                }
            };
            let next = match frame {
                None => Next::Close,
                Some(Err(err)) => self.on_transport_error(err),
                Some(Ok(frame)) => {
                    if is_message(&frame) && !self.pace(&shutdown).await {
                        break;
                    }
                    self.on_frame(frame).await
                }
            };
            if let Next::Close = next {
                break;
            }
        }
        // Let the writer flush any error message and send a close frame.
        self.outbound.close(CloseReason::Finished);
    }

    /// Waits, if the peer is over its message rate, until the bucket has a token; false if the
    /// connection closed meanwhile.
    async fn pace(&mut self, shutdown: &tokio_util::sync::CancellationToken) -> bool {
        let wait = self.bucket.take(Instant::now());
        if wait.is_zero() {
            return true;
        }
        self.state.metrics.limit_hit("message_rate");
        debug!(
            wait_ms = wait.as_millis() as u64,
            "peer over its message rate; reading slower"
        );
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = self.outbound.closed() => false,
            () = shutdown.cancelled() => {
                self.outbound.close(CloseReason::Shutdown);
                false
            }
        }
    }

    /// The token ran out: say so and close.
    fn expire(&self) {
        info!("token expired; closing connection");
        self.state.metrics.access_denied("expired");
        self.outbound.try_send(Message::Error(ErrorMessage {
            sender_id: Some(self.state.server_peer.clone()),
            target_id: self.joined.as_ref().map(|j| j.peer.clone()),
            message: "the connection's token has expired; reconnect with a new token".into(),
        }));
        self.outbound.close(CloseReason::Expired);
    }

    async fn on_frame(&mut self, frame: WsMessage) -> Next {
        self.touch();
        let bytes = match frame {
            WsMessage::Binary(bytes) => bytes,
            WsMessage::Text(_) => {
                return self.reject(Reject::new("text_frame", "expected a binary frame"));
            }
            WsMessage::Ping(_) | WsMessage::Pong(_) => return Next::Continue,
            WsMessage::Close(_) => return Next::Close,
        };
        self.state.metrics.messages_received.inc();
        self.state.metrics.bytes_received.inc_by(bytes.len() as u64);
        match self.validate(&bytes) {
            Ok(Some(message)) => match self.dispatch(message).await {
                Ok(next) => next,
                Err(reject) => self.reject(reject),
            },
            Ok(None) => Next::Continue,
            Err(reject) => self.reject(reject),
        }
    }

    /// Decodes a frame and checks it in the protocol's order. `Ok(None)` means ignore it.
    fn validate(&self, bytes: &[u8]) -> Result<Option<Message>, Reject> {
        let message = Message::decode(bytes).map_err(|err| self.decode_reject(err))?;
        if let Message::Unknown { message_type, .. } = &message {
            debug!(%message_type, "ignoring message of unknown type");
            return Ok(None);
        }
        if matches!(message, Message::Join(_)) {
            return Ok(Some(message));
        }
        let Some(joined) = &self.joined else {
            return Err(Reject::new("not_joined", "the first message must be join"));
        };
        // Relayed ephemeral messages keep their original author as senderId, and clients send
        // back what they receive, so only other messages must carry the joined peer's id.
        let sender_ok = matches!(message, Message::Ephemeral(_))
            || message
                .sender_id()
                .is_none_or(|sender| *sender == joined.peer);
        if !sender_ok {
            return Err(Reject::new(
                "sender_mismatch",
                "senderId does not match the joined peer",
            ));
        }
        Ok(Some(message))
    }

    /// Turns a decode failure into a rejection, honouring the validation order: a message that
    /// is not `join` before joining, or from another sender, is reported as such first.
    fn decode_reject(&self, err: DecodeError) -> Reject {
        let is_join = err.message_type.as_deref() == Some("join");
        if err.message_type.is_some() && !is_join {
            match &self.joined {
                None => return Reject::new("not_joined", "the first message must be join"),
                Some(joined) if err.sender_id.as_ref().is_some_and(|s| *s != joined.peer) => {
                    return Reject::new(
                        "sender_mismatch",
                        "senderId does not match the joined peer",
                    );
                }
                Some(_) => {}
            }
        }
        Reject::new(err.kind.reason(), format!("invalid message: {err}"))
    }

    async fn dispatch(&mut self, message: Message) -> Result<Next, Reject> {
        match message {
            Message::Join(join) => self.handle_join(join).await,
            Message::Sync(sync) => self.handle_sync(sync, SyncKind::Sync).await,
            Message::Request(sync) => self.handle_sync(sync, SyncKind::Request).await,
            Message::Ephemeral(ephemeral) => self.handle_ephemeral(ephemeral).await,
            Message::Leave(_) => {
                debug!("peer left");
                Ok(Next::Close)
            }
            other => {
                debug!(message_type = other.type_name(), "ignoring message");
                Ok(Next::Continue)
            }
        }
    }

    async fn handle_join(&mut self, join: Join) -> Result<Next, Reject> {
        if self.joined.is_some() {
            return Err(Reject::new(
                "second_join",
                "this connection has already joined",
            ));
        }
        let versions = join.supported_protocol_versions.as_deref();
        if versions.is_some_and(|v| !v.iter().any(|v| v == PROTOCOL_VERSION)) {
            return Err(Reject::new(
                "protocol_version",
                "unsupported protocol version",
            ));
        }
        let metadata = join.peer_metadata.unwrap_or(PeerMetadata {
            storage_id: None,
            is_ephemeral: true,
        });
        let storage_id = metadata.storage_id.filter(|_| !metadata.is_ephemeral);
        tracing::Span::current().record("peer", field::display(&join.sender_id));
        info!(storage = storage_id.is_some(), "peer joined");

        self.state.peers.join(
            self.peer_key(&join.sender_id),
            self.id,
            self.outbound.clone(),
        );
        let reply = Message::Peer(Peer {
            sender_id: self.state.server_peer.clone(),
            target_id: join.sender_id.clone(),
            peer_metadata: PeerMetadata {
                storage_id: Some(self.state.storage_id.clone()),
                is_ephemeral: false,
            },
            selected_protocol_version: PROTOCOL_VERSION.to_owned(),
        });
        let _ = self.peer.set(join.sender_id.clone());
        self.joined = Some(Joined {
            peer: join.sender_id,
            storage_id,
        });
        self.outbound.send(reply).await;
        Ok(Next::Continue)
    }

    async fn handle_sync(&mut self, sync: SyncMessage, kind: SyncKind) -> Result<Next, Reject> {
        if self.unreadable(&sync.document_id) {
            self.answer_unavailable(sync.document_id);
            return Ok(Next::Continue);
        }
        let message = automerge::sync::Message::decode(&sync.data)
            .map_err(|err| Reject::new("invalid_sync_data", format!("invalid sync data: {err}")))?;
        let command = DocumentCommand::Sync {
            conn: self.id,
            kind,
            message: Box::new(message),
        };
        self.send_to_document(sync.document_id, command).await
    }

    async fn handle_ephemeral(&mut self, message: Ephemeral) -> Result<Next, Reject> {
        if self.unreadable(&message.document_id) {
            return Ok(Next::Continue);
        }
        let command = DocumentCommand::Ephemeral {
            conn: self.id,
            message: Box::new(message.clone()),
        };
        self.send_to_document(message.document_id, command).await
    }

    /// Sends a command to a document's worker, attaching this connection first if needed.
    async fn send_to_document(
        &mut self,
        document: DocumentId,
        command: DocumentCommand,
    ) -> Result<Next, Reject> {
        let handle = self.attach(document).await?;
        if handle.send(command).await {
            Ok(Next::Continue)
        } else {
            // The worker stopped (its storage failed); the peer resyncs after reconnecting.
            warn!(doc = %document, "document worker stopped; closing connection");
            Ok(Next::Close)
        }
    }

    fn peer_key(&self, peer: &PeerId) -> (Option<String>, PeerId) {
        (self.principal.subject().map(str::to_owned), peer.clone())
    }

    /// Whether the token's grants alone rule the document out; the peer is then answered as if
    /// the document did not exist, without loading it.
    fn unreadable(&self, document: &DocumentId) -> bool {
        let denied = self.principal.access_if_known(document) == Some(Access::None);
        if denied {
            self.state.metrics.access_denied("unreadable");
        }
        denied
    }

    fn answer_unavailable(&self, document: DocumentId) {
        let Some(joined) = &self.joined else { return };
        self.outbound
            .try_send(Message::DocUnavailable(DocUnavailable {
                sender_id: self.state.server_peer.clone(),
                target_id: joined.peer.clone(),
                document_id: document,
            }));
    }

    async fn attach(&mut self, document: DocumentId) -> Result<DocumentHandle, Reject> {
        let existing = self.attached().get(&document).cloned();
        if let Some(handle) = existing {
            return Ok(handle);
        }
        let limit = self.state.limits.max_documents_per_connection;
        if self.attached().len() >= limit {
            self.state.metrics.limit_hit("documents_per_connection");
            return Err(Reject::new(
                "too_many_documents",
                format!(
                    "more than {limit} documents on one connection (sync.max_documents_per_connection)"
                ),
            ));
        }
        let joined = self
            .joined
            .clone()
            .expect("validation admits only joined peers here");
        let handle = self.state.registry.open(document);
        let attach = DocumentCommand::Attach {
            conn: self.id,
            peer: joined.peer,
            storage_id: joined.storage_id,
            outbound: self.outbound.clone(),
            principal: self.principal.clone(),
        };
        handle.send(attach).await;
        self.attached().insert(document, handle.clone());
        Ok(handle)
    }

    fn attached(&self) -> std::sync::MutexGuard<'_, HashMap<DocumentId, DocumentHandle>> {
        self.attached
            .lock()
            .expect("attached-documents lock is never poisoned")
    }

    /// Logs invalid input, queues an `error` naming it, and ends the connection.
    fn reject(&self, reject: Reject) -> Next {
        let peer = self.joined.as_ref().map(|j| j.peer.clone());
        warn!(reason = reject.reason, message = %reject.message, "invalid input from peer; closing connection");
        self.state.metrics.protocol_error(reject.reason);
        self.outbound.try_send(Message::Error(ErrorMessage {
            sender_id: Some(self.state.server_peer.clone()),
            target_id: peer,
            message: reject.message,
        }));
        self.outbound.close(CloseReason::InvalidInput);
        Next::Close
    }

    /// A peer that goes away without a close handshake is ordinary (a phone loses signal); a
    /// message over the size limit or a broken WebSocket frame is invalid input.
    fn on_transport_error(&self, err: axum::Error) -> Next {
        let err = match err.into_inner().downcast::<tungstenite::Error>() {
            Ok(err) => *err,
            Err(other) => {
                return self.reject(Reject::new(
                    "transport",
                    format!("websocket error: {other}"),
                ));
            }
        };
        match err {
            tungstenite::Error::Capacity(limit) => {
                let limits = &self.state.limits;
                let frame = matches!(
                    limit,
                    tungstenite::error::CapacityError::MessageTooLong { max_size, .. }
                        if max_size == limits.max_frame_bytes && max_size != limits.max_message_bytes
                );
                let (metric, key) = match frame {
                    true => ("frame_size", "sync.max_frame_bytes"),
                    false => ("message_size", "sync.max_message_bytes"),
                };
                self.state.metrics.limit_hit(metric);
                self.reject(Reject::new(
                    "too_large",
                    format!("{limit}; the server's limit is {key}"),
                ))
            }
            tungstenite::Error::Protocol(_) | tungstenite::Error::Utf8(_) => {
                self.reject(Reject::new("transport", format!("websocket error: {err}")))
            }
            other => {
                debug!(error = %other, "connection ended without a close handshake");
                Next::Close
            }
        }
    }

    fn touch(&self) {
        *self
            .last_seen
            .lock()
            .expect("last-seen lock is never poisoned") = Instant::now();
    }

    /// Detaches from every document and forgets the peer.
    async fn finish(&mut self) {
        let handles: Vec<_> = self.attached().drain().map(|(_, h)| h).collect();
        for handle in handles {
            handle.send(DocumentCommand::Detach { conn: self.id }).await;
        }
        if let Some(joined) = &self.joined {
            self.state
                .peers
                .leave(&self.peer_key(&joined.peer), self.id);
        }
        debug!(reason = ?self.outbound.close_reason(), "connection closed");
    }

    fn writer(
        &self,
        sink: SplitSink<WebSocket, WsMessage>,
        receiver: OutboundReceiver,
    ) -> impl Future<Output = ()> + Send + 'static {
        let writer = Writer {
            conn: self.id,
            sink,
            receiver,
            outbound: self.outbound.clone(),
            attached: self.attached.clone(),
            state: self.state.clone(),
            last_seen: self.last_seen.clone(),
            peer: self.peer.clone(),
        };
        writer.run()
    }
}

/// The sending half of a connection.
struct Writer {
    conn: ConnectionId,
    sink: SplitSink<WebSocket, WsMessage>,
    receiver: OutboundReceiver,
    outbound: Arc<Outbound>,
    attached: Attached,
    state: Arc<NetState>,
    last_seen: Arc<Mutex<Instant>>,
    peer: Arc<OnceLock<PeerId>>,
}

impl Writer {
    async fn run(mut self) {
        let ping_every = self.state.limits.ping_interval;
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let outbound = self.outbound.clone();
        loop {
            let sent = tokio::select! {
                biased;
                () = outbound.closed() => break,
                message = self.receiver.control.recv() => match message {
                    Some(message) => self.send(&message).await,
                    None => break,
                },
                () = outbound.ready_changed() => self.send_ready().await,
                _ = ping.tick() => self.ping(ping_every).await,
            };
            if !sent {
                outbound.close(CloseReason::Shutdown);
                return;
            }
        }
        self.close().await;
    }

    /// Sends a sync message for every document marked ready.
    async fn send_ready(&mut self) -> bool {
        while let Some(document) = self.outbound.next_ready() {
            let handle = self
                .attached
                .lock()
                .expect("attached lock is never poisoned")
                .get(&document)
                .cloned();
            let Some(handle) = handle else { continue };
            let Some(data) = handle.generate(self.conn).await else {
                continue;
            };
            let Some(peer) = self.peer() else { continue };
            let message = Message::Sync(SyncMessage {
                sender_id: self.state.server_peer.clone(),
                target_id: peer,
                document_id: document,
                data,
            });
            if !self.send(&message).await {
                return false;
            }
        }
        true
    }

    fn peer(&self) -> Option<PeerId> {
        self.peer.get().cloned()
    }

    async fn ping(&mut self, interval: Duration) -> bool {
        let silent = self
            .last_seen
            .lock()
            .expect("last-seen lock is never poisoned")
            .elapsed();
        if silent > interval * 3 {
            warn!(
                silent_ms = silent.as_millis() as u64,
                "peer stopped answering pings; closing connection"
            );
            return false;
        }
        self.send_frame(WsMessage::Ping(Default::default())).await
    }

    async fn send(&mut self, message: &Message) -> bool {
        let encoded = message.encode();
        let len = encoded.len() as u64;
        let sent = self.send_frame(WsMessage::Binary(encoded.into())).await;
        if sent {
            self.state.metrics.messages_sent.inc();
            self.state.metrics.bytes_sent.inc_by(len);
        }
        sent
    }

    /// Sends one frame; a peer that does not take it within the send timeout is dropped.
    async fn send_frame(&mut self, frame: WsMessage) -> bool {
        let timeout = self.state.limits.send_timeout;
        match tokio::time::timeout(timeout, self.sink.send(frame)).await {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                debug!(error = %err, "send failed; connection is gone");
                false
            }
            Err(_) => {
                warn!(
                    timeout_ms = timeout.as_millis() as u64,
                    "peer too slow to receive; closing connection, it resyncs on reconnect"
                );
                false
            }
        }
    }

    /// Flushes queued control messages (an `error`, say), then closes the socket.
    async fn close(&mut self) {
        while let Ok(message) = self.receiver.control.try_recv() {
            if !self.send(&message).await {
                return;
            }
        }
        let (code, reason) = match self.outbound.close_reason() {
            Some(CloseReason::InvalidInput) => (1008, ""),
            Some(CloseReason::Expired) => (1008, "token expired"),
            Some(CloseReason::StorageFailed) => (1011, ""),
            Some(CloseReason::Shutdown) => (1001, ""),
            _ => (1000, ""),
        };
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.send_frame(WsMessage::Close(Some(frame))).await;
    }
}
