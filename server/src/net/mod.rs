//! The network edge: one HTTP listener ([`serve`]) that serves WebSocket sync beside the HTTP
//! routes of [`crate::http`].
//!
//! `GET /` and `GET /sync` upgrade to the automerge-repo WebSocket protocol; each upgraded socket
//! becomes a [`connection`] task. The upgrade is where access control and the per-address
//! connection limit apply: a missing or bad token is refused with 401, a token that grants
//! nothing with 403, one connection too many from an address with 429.

pub mod connection;
pub mod outbound;
pub mod serve;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use syncline_shared::ids::{PeerId, StorageId};
use syncline_shared::session::ConnectionId;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::http::{Gate, forbidden, unauthorized};
use crate::config::SyncLimits;
use crate::documents::Registry;
use crate::metrics::Metrics;
use outbound::{CloseReason, Outbound};
use tracing::{debug, warn};

/// Read and write buffer of each WebSocket. tungstenite's default of 128 KiB each is most of
/// what an idle connection costs; a larger message still arrives whole, it is only read and
/// written in more steps.
const SOCKET_BUFFER_BYTES: usize = 8 * 1024;

/// Everything the listener and its connections share.
#[derive(Debug)]
pub struct NetState {
    /// This server's peer id, the `senderId` of everything it sends.
    pub server_peer: PeerId,
    /// The durable storage id announced in `peer` messages.
    pub storage_id: StorageId,
    /// Loaded documents.
    pub registry: Registry,
    /// Server-wide metrics.
    pub metrics: Arc<Metrics>,
    /// Limits and timeouts.
    pub limits: SyncLimits,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks, so shutdown can wait for them.
    pub connections: TaskTracker,
    /// Who a request is.
    pub gate: Gate,
    accepting: AtomicBool,
    next_connection: AtomicU64,
    peers: PeerTable,
    per_address: Arc<AddressTable>,
}

impl NetState {
    /// Shared state for a listener.
    pub fn new(
        server_peer: PeerId,
        storage_id: StorageId,
        registry: Registry,
        metrics: Arc<Metrics>,
        limits: SyncLimits,
        gate: Gate,
    ) -> Self {
        Self {
            server_peer,
            storage_id,
            registry,
            metrics,
            limits,
            shutdown: CancellationToken::new(),
            connections: TaskTracker::new(),
            gate,
            accepting: AtomicBool::new(true),
            next_connection: AtomicU64::new(1),
            peers: PeerTable::default(),
            per_address: Arc::default(),
        }
    }

    /// Stops answering ready and stops taking new sync connections.
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::SeqCst);
    }

    /// Whether sync connections are taken (from start-up, once storage is open, to shutdown).
    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    fn next_connection_id(&self) -> ConnectionId {
        ConnectionId(self.next_connection.fetch_add(1, Ordering::Relaxed))
    }
}

/// Which connection each joined peer id is on, so a second join replaces the first. Peers are
/// told apart by token subject too: a token holder cannot close another subject's connection by
/// joining under its peer id.
#[derive(Debug, Default)]
struct PeerTable {
    /// Held only to read or swap one entry.
    by_peer: Mutex<HashMap<PeerKey, (ConnectionId, Arc<Outbound>)>>,
}

/// A joined peer: the token subject (`None` without access control) and the peer id.
type PeerKey = (Option<String>, PeerId);

impl PeerTable {
    /// Registers a joined peer; an older connection of the same peer is asked to close.
    fn join(&self, key: PeerKey, conn: ConnectionId, outbound: Arc<Outbound>) {
        let previous = self
            .by_peer
            .lock()
            .expect("peer table lock is never poisoned")
            .insert(key.clone(), (conn, outbound));
        if let Some((old_conn, old)) = previous
            && old_conn != conn
        {
            tracing::info!(peer = %key.1, old = %old_conn, new = %conn, "peer joined again; closing its older connection");
            old.close(CloseReason::Replaced);
        }
    }

    /// Forgets a peer's entry if it still belongs to this connection.
    fn leave(&self, key: &PeerKey, conn: ConnectionId) {
        let mut by_peer = self
            .by_peer
            .lock()
            .expect("peer table lock is never poisoned");
        if by_peer.get(key).is_some_and(|(c, _)| *c == conn) {
            by_peer.remove(key);
        }
    }
}

/// Open WebSocket connections per remote address.
#[derive(Debug, Default)]
struct AddressTable {
    /// Held only to change one count.
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl AddressTable {
    /// Counts one more connection from `ip`, unless it already has `limit`.
    fn admit(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<AddressSlot> {
        let mut open = self
            .open
            .lock()
            .expect("address table lock is never poisoned");
        let count = open.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            table: self.clone(),
            ip,
        })
    }
}

/// One counted connection; dropping it frees the slot.
#[derive(Debug)]
pub struct AddressSlot {
    table: Arc<AddressTable>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self
            .table
            .open
            .lock()
            .expect("address table lock is never poisoned");
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A JSON error body, `{"error": {"code", "message"}}`, the shape of every HTTP error.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    (status, Json(body)).into_response()
}

/// The sync endpoint's routes.
pub fn router(state: Arc<NetState>) -> Router {
    Router::new()
        .route("/", get(upgrade))
        .route("/sync", get(upgrade))
        .with_state(state)
}

async fn upgrade(
    State(state): State<Arc<NetState>>,
    ws: WebSocketUpgrade,
    request: Request,
) -> Response {
    if !state.is_accepting() {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down",
        );
    }
    let principal = match state.gate.identify(request.headers(), request.uri()) {
        Ok(principal) => principal,
        Err(err) => {
            debug!(reason = err.reason(), "websocket upgrade refused: {err}");
            return unauthorized(&err);
        }
    };
    if !principal.grants_anything() {
        return forbidden("the token grants no documents");
    }
    let limits = &state.limits;
    let ip = serve::remote_addr(request.extensions()).map(|addr| addr.ip());
    let slot = match ip {
        Some(ip) => match state.per_address.admit(ip, limits.max_connections_per_ip) {
            Some(slot) => Some(slot),
            None => {
                state.metrics.limit_hit("connections_per_ip");
                warn!(%ip, limit = limits.max_connections_per_ip, "too many connections from one address; refusing");
                return json_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_connections",
                    "too many open connections from this address (sync.max_connections_per_ip)",
                );
            }
        },
        None => None,
    };
    ws.max_message_size(limits.max_message_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            let tracker = state.connections.clone();
            tracker.track_future(async move {
                connection::run(socket, state, principal).await;
                drop(slot);
            })
        })
}
