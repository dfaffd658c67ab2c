//! The network edge: one HTTP listener that serves WebSocket sync and the operational endpoints.
//!
//! `GET /` and `GET /sync` upgrade to the automerge-repo WebSocket protocol; each upgraded socket
//! becomes a [`connection`] task. `/healthz` and `/readyz` answer 200 while sync traffic is
//! accepted (storage is open before the listener starts), and `/metrics` serves Prometheus text.

pub mod connection;
pub mod outbound;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use syncline_shared::ids::{PeerId, StorageId};
use syncline_shared::session::ConnectionId;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::SyncLimits;
use crate::documents::Registry;
use crate::metrics::Metrics;
use outbound::{CloseReason, Outbound};

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
    accepting: AtomicBool,
    next_connection: AtomicU64,
    peers: PeerTable,
}

impl NetState {
    /// Shared state for a listener.
    pub fn new(
        server_peer: PeerId,
        storage_id: StorageId,
        registry: Registry,
        metrics: Arc<Metrics>,
        limits: SyncLimits,
    ) -> Self {
        Self {
            server_peer,
            storage_id,
            registry,
            metrics,
            limits,
            shutdown: CancellationToken::new(),
            connections: TaskTracker::new(),
            accepting: AtomicBool::new(true),
            next_connection: AtomicU64::new(1),
            peers: PeerTable::default(),
        }
    }

    /// Stops answering ready and stops taking new sync connections.
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::SeqCst);
    }

    fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    fn next_connection_id(&self) -> ConnectionId {
        ConnectionId(self.next_connection.fetch_add(1, Ordering::Relaxed))
    }
}

/// Which connection each joined peer id is on, so a second join replaces the first.
#[derive(Debug, Default)]
struct PeerTable {
    /// Held only to read or swap one entry.
    by_peer: Mutex<HashMap<PeerId, (ConnectionId, Arc<Outbound>)>>,
}

impl PeerTable {
    /// Registers a joined peer; an older connection of the same peer is asked to close.
    fn join(&self, peer: &PeerId, conn: ConnectionId, outbound: Arc<Outbound>) {
        let previous = self
            .by_peer
            .lock()
            .expect("peer table lock is never poisoned")
            .insert(peer.clone(), (conn, outbound));
        if let Some((old_conn, old)) = previous
            && old_conn != conn
        {
            tracing::info!(peer = %peer, old = %old_conn, new = %conn, "peer joined again; closing its older connection");
            old.close(CloseReason::Replaced);
        }
    }

    /// Forgets a peer's entry if it still belongs to this connection.
    fn leave(&self, peer: &PeerId, conn: ConnectionId) {
        let mut by_peer = self
            .by_peer
            .lock()
            .expect("peer table lock is never poisoned");
        if by_peer.get(peer).is_some_and(|(c, _)| *c == conn) {
            by_peer.remove(peer);
        }
    }
}

/// The HTTP routes.
pub fn router(state: Arc<NetState>) -> Router {
    Router::new()
        .route("/", get(upgrade))
        .route("/sync", get(upgrade))
        .route("/healthz", get(health))
        .route("/readyz", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn upgrade(State(state): State<Arc<NetState>>, ws: WebSocketUpgrade) -> Response {
    if !state.is_accepting() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let limits = &state.limits;
    ws.max_message_size(limits.max_message_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .on_upgrade(move |socket| {
            let tracker = state.connections.clone();
            tracker.track_future(connection::run(socket, state))
        })
}

async fn health(State(state): State<Arc<NetState>>) -> Response {
    if state.is_accepting() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

async fn metrics(State(state): State<Arc<NetState>>) -> Response {
    let body = state.metrics.render();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
