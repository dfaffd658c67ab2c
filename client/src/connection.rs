//! One server connection: connect, join, keep every loaded document in sync, reconnect.
//!
//! [`run`] is the task behind [`Client::connect`](crate::Client::connect). Each attempt asks the
//! token provider for a token, opens the WebSocket, sends `join` with the store's storage id and
//! waits for the server's `peer`. It then attaches every loaded document, and every stored
//! document whose heads differ from what this server acknowledged (edits made offline, perhaps
//! by an earlier process), and loops: frames from the server go to their document's session;
//! documents marked dirty get their next sync message, generated when the socket can take it,
//! so a slow server costs at most one pending message per document. When the connection drops
//! the attempt ends and [`reconnect_loop`](crate::backoff::reconnect_loop) waits before the
//! next one.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use automerge::sync;
use futures_util::{SinkExt, StreamExt};
use rand::SeedableRng;
use rand::rngs::StdRng;
use syncline_shared::ids::{DocumentId, PeerId, StorageId};
use syncline_shared::protocol::{Join, Message, PeerMetadata, SyncMessage};
use syncline_shared::session::{ConnectionId, SessionEffect, SyncKind};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Request};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as Frame};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::{Attempt, Backoff, reconnect_loop};
use crate::client::Inner;
use crate::document::Entry;
use crate::error::ClientError;
use crate::store::writer::durable;

/// The largest message accepted, as the JavaScript client allows.
const MAX_MESSAGE_BYTES: usize = 100 * 1024 * 1024;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a live connection ended.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("the client disconnected")]
    Shutdown,
    #[error("the server closed the connection")]
    Closed,
    #[error("nothing received for {0:?}")]
    Idle(std::time::Duration),
    #[error("the server sent an error: {0}")]
    ServerError(String),
    #[error("the server sent invalid data: {0}")]
    Invalid(String),
    #[error("transport: {0}")]
    Transport(#[from] tungstenite::Error),
    #[error("{0}")]
    Client(#[from] ClientError),
}

/// What a connection owes the server: documents whose next sync message may be due.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// The server's storage id, under which its acknowledgements are kept.
    pub server: StorageId,
    server_peer: PeerId,
    dirty: Mutex<BTreeSet<DocumentId>>,
    wake: Notify,
}

impl Outbox {
    fn new(server: StorageId, server_peer: PeerId) -> Self {
        Self {
            server,
            server_peer,
            dirty: Mutex::new(BTreeSet::new()),
            wake: Notify::new(),
        }
    }

    /// Notes that `doc` may have a sync message to send.
    pub fn mark(&self, doc: DocumentId) {
        self.dirty_set().insert(doc);
        self.wake.notify_one();
    }

    /// Attaches the document to this connection (once) and marks it.
    pub fn attach(&self, entry: &Entry, conn: ConnectionId) {
        let mut state = entry.lock();
        if !state.session.attached().any(|c| c == conn) {
            state
                .session
                .attach(conn, self.server_peer.clone(), None, None);
        }
        drop(state);
        self.mark(entry.id);
    }

    fn take(&self) -> BTreeSet<DocumentId> {
        std::mem::take(&mut *self.dirty_set())
    }

    fn dirty_set(&self) -> std::sync::MutexGuard<'_, BTreeSet<DocumentId>> {
        self.dirty.lock().expect("outbox lock holders do not panic")
    }
}

/// Checks that `url` is a WebSocket URL before a task is started for it.
pub(crate) fn check_url(url: &str) -> Result<String, ClientError> {
    let invalid = |why: &str| ClientError::InvalidUrl {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    if !(url.starts_with("ws://") || url.starts_with("wss://")) {
        return Err(invalid("it must start with ws:// or wss://"));
    }
    url.into_client_request()
        .map_err(|error| invalid(&error.to_string()))?;
    Ok(url.to_owned())
}

/// The connection task: attempts until `stop` is cancelled (by a disconnect or a close).
pub(crate) async fn run(inner: Arc<Inner>, url: String, stop: CancellationToken) {
    let backoff = Backoff::new(inner.config.backoff, StdRng::from_os_rng());
    reconnect_loop(backoff, stop.clone(), || attempt(&inner, &url, &stop)).await;
}

/// One attempt: connect, and if that works, serve the connection until it ends.
async fn attempt(inner: &Arc<Inner>, url: &str, stop: &CancellationToken) -> Attempt {
    let connected = tokio::select! {
        connected = connect(inner, url) => connected,
        () = stop.cancelled() => return Attempt::Failed,
    };
    let (socket, server_peer, server) = match connected {
        Ok(connected) => connected,
        Err(error) => {
            warn!(%url, %error, "cannot connect to the server; will retry");
            inner.set_last_error(Some(format!("{url}: {error}")));
            return Attempt::Failed;
        }
    };
    inner.set_last_error(None);
    info!(%url, server = %server, "connected");

    let outbox = Arc::new(Outbox::new(server, server_peer));
    let conn = inner.add_connection(Arc::clone(&outbox));
    let mut live = Live {
        inner,
        socket,
        outbox,
        conn,
        stop,
    };
    let ended = live.serve().await;
    inner.remove_connection(conn);
    match ended {
        Ended::Shutdown => debug!(%url, "connection closed"),
        other => {
            warn!(%url, reason = %other, "disconnected from the server; reconnecting");
            inner.set_last_error(Some(format!("{url}: {other}")));
        }
    }
    Attempt::Connected
}

/// Opens the socket, joins, and waits for the server's `peer`.
async fn connect(
    inner: &Inner,
    url: &str,
) -> Result<(Socket, PeerId, StorageId), Box<dyn std::error::Error + Send + Sync>> {
    let mut request: Request<()> = url.into_client_request()?;
    if let Some(provider) = &inner.config.token
        && let Some(token) = provider().await
    {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))?;
        request.headers_mut().insert("authorization", value);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES));
    let timeout = inner.config.connect_timeout;
    let handshake = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    let (mut socket, _) = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| format!("no WebSocket handshake within {timeout:?}"))??;

    let join = Message::Join(Join {
        sender_id: inner.peer_id.clone(),
        peer_metadata: Some(PeerMetadata {
            storage_id: Some(inner.store.storage_id().clone()),
            is_ephemeral: false,
        }),
        supported_protocol_versions: Some(vec!["1".to_owned()]),
    });
    socket.send(Frame::binary(join.encode())).await?;
    let answer = tokio::time::timeout(timeout, wait_for_peer(&mut socket))
        .await
        .map_err(|_| format!("no answer to join within {timeout:?}"))??;
    Ok((socket, answer.0, answer.1))
}

async fn wait_for_peer(
    socket: &mut Socket,
) -> Result<(PeerId, StorageId), Box<dyn std::error::Error + Send + Sync>> {
    while let Some(frame) = socket.next().await {
        let Frame::Binary(bytes) = frame? else {
            continue;
        };
        match Message::decode(&bytes)? {
            Message::Peer(peer) => {
                // A server without storage still gets a name to file its acknowledgements under.
                let server = peer
                    .peer_metadata
                    .storage_id
                    .unwrap_or_else(|| StorageId(format!("peer:{}", peer.sender_id)));
                return Ok((peer.sender_id, server));
            }
            Message::Error(error) => {
                return Err(format!("server refused: {}", error.message).into());
            }
            other => debug!(kind = other.type_name(), "ignoring a message before peer"),
        }
    }
    Err("the server closed the connection before answering join".into())
}

/// A connection after its handshake.
struct Live<'a> {
    inner: &'a Arc<Inner>,
    socket: Socket,
    outbox: Arc<Outbox>,
    conn: ConnectionId,
    stop: &'a CancellationToken,
}

impl Live<'_> {
    async fn serve(&mut self) -> Ended {
        if let Err(error) = self.attach_documents().await {
            return error;
        }
        let idle = self.inner.config.idle_timeout;
        let mut last_heard = Instant::now();
        loop {
            let step = tokio::select! {
                biased;
                () = self.stop.cancelled() => {
                    let _ = self.socket.close(None).await;
                    return Ended::Shutdown;
                }
                frame = self.socket.next() => {
                    last_heard = Instant::now();
                    self.handle_frame(frame).await
                }
                () = self.outbox.wake.notified() => self.flush().await,
                () = tokio::time::sleep_until(last_heard + idle) => Err(Ended::Idle(idle)),
            };
            if let Err(ended) = step {
                return ended;
            }
        }
    }

    /// Attaches what is loaded, and what the store holds that this server may not have.
    async fn attach_documents(&mut self) -> Result<(), Ended> {
        for entry in self.inner.loaded() {
            self.outbox.attach(&entry, self.conn);
        }
        let store = self.inner.store.clone();
        let server = self.outbox.server.clone();
        let pending = tokio::task::spawn_blocking(move || store.pending_for(&server))
            .await
            .map_err(|_| ClientError::Closed)?
            .map_err(ClientError::from)?;
        for id in pending {
            let entry = self.inner.entry(id).await?;
            self.outbox.attach(&entry, self.conn);
        }
        Ok(())
    }

    async fn handle_frame(
        &mut self,
        frame: Option<Result<Frame, tungstenite::Error>>,
    ) -> Result<(), Ended> {
        match frame {
            None | Some(Ok(Frame::Close(_))) => Err(Ended::Closed),
            Some(Err(error)) => Err(error.into()),
            Some(Ok(Frame::Binary(bytes))) => match Message::decode(&bytes) {
                Ok(message) => self.handle_message(message).await,
                Err(error) => Err(Ended::Invalid(error.to_string())),
            },
            // tungstenite queues the pong; flushing sends it now rather than with the next
            // message.
            Some(Ok(Frame::Ping(_))) => Ok(self.socket.flush().await?),
            Some(Ok(_)) => Ok(()),
        }
    }

    async fn handle_message(&mut self, message: Message) -> Result<(), Ended> {
        match message {
            Message::Sync(sync) | Message::Request(sync) => self.handle_sync(sync).await,
            Message::DocUnavailable(answer) => {
                self.handle_unavailable(answer.document_id);
                Ok(())
            }
            Message::Error(error) => Err(Ended::ServerError(error.message)),
            other => {
                debug!(kind = other.type_name(), "ignoring message");
                Ok(())
            }
        }
    }

    /// Applies a server's sync message: the new changes are made durable locally, and the
    /// heads it advertised recorded as acknowledged, before anything is answered.
    async fn handle_sync(&mut self, message: SyncMessage) -> Result<(), Ended> {
        let Some(entry) = self.inner.loaded_entry(message.document_id) else {
            debug!(doc = %message.document_id, "sync for a document not loaded; ignoring");
            return Ok(());
        };
        let decoded = sync::Message::decode(&message.data)
            .map_err(|error| Ended::Invalid(format!("sync data: {error}")))?;
        let advertised = decoded.heads.clone();
        let server = self.outbox.server.clone();
        tracing::trace!(
            doc = %message.document_id,
            conn = %self.conn,
            heads = ?advertised,
            changes = decoded.changes.len(),
            "sync received",
        );

        let (before, effects, pending) = {
            let mut state = entry.lock();
            let before = state.session.heads();
            let effects = state
                .session
                .receive(self.conn, SyncKind::Sync, decoded)
                .map_err(|error| Ended::Invalid(error.to_string()))?;
            let acknowledged = (state.acknowledged.get(&server) != Some(&advertised))
                .then(|| (server.clone(), advertised.clone()));
            if let Some((server, heads)) = &acknowledged {
                state.acknowledged.insert(server.clone(), heads.clone());
            }
            if !advertised.is_empty() {
                state.unavailable.remove(&self.conn);
            }
            state.heard.insert(self.conn);
            let pending = entry.queue_persist(self.inner, &mut state, &effects, acknowledged);
            (before, effects, pending)
        };

        let persisted = effects
            .iter()
            .any(|effect| matches!(effect, SessionEffect::Persist(_)));
        if let Some(pending) = pending {
            durable(pending).await.map_err(ClientError::from)?;
        }
        if persisted {
            self.inner.confirm(&entry, effects);
            entry.publish(&before, false);
        } else {
            self.inner.route(entry.id, effects);
            entry.touch();
        }
        Ok(())
    }

    fn handle_unavailable(&mut self, doc: DocumentId) {
        if let Some(entry) = self.inner.loaded_entry(doc) {
            entry.lock().unavailable.insert(self.conn);
            entry.touch();
        }
    }

    /// Sends the next sync message of every dirty document.
    async fn flush(&mut self) -> Result<(), Ended> {
        for doc in self.outbox.take() {
            let Some(message) = self.next_message(doc) else {
                tracing::trace!(%doc, conn = %self.conn, "nothing to send");
                continue;
            };
            tracing::trace!(%doc, conn = %self.conn, kind = message.type_name(), "sync sent");
            self.socket.send(Frame::binary(message.encode())).await?;
        }
        Ok(())
    }

    fn next_message(&self, doc: DocumentId) -> Option<Message> {
        let entry = self.inner.loaded_entry(doc)?;
        let mut state = entry.lock();
        let data = state.session.generate(self.conn)?;
        let sync = SyncMessage {
            sender_id: self.inner.peer_id.clone(),
            target_id: self.outbox.server_peer.clone(),
            document_id: doc,
            data,
        };
        // A document we do not have yet is asked for, so the server may answer unavailable.
        Some(match state.session.exists() {
            true => Message::Sync(sync),
            false => Message::Request(sync),
        })
    }
}
