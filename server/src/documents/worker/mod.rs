//! The document worker: the one task that owns a loaded document.
//!
//! Each turn of its loop takes every command already queued (up to a bound), applies them to
//! the [`DocumentSession`], hands all resulting changes to the storage writer as one write, and
//! waits for the commit. Only then does it answer requests for sync messages and tell connections
//! that a message is ready, so nothing a peer hears of can still be lost. While it waits, more
//! commands queue up and are taken together on the next turn: under load a document batches
//! itself, just as the storage writer batches documents.
//!
//! Beside the loop: `imports` (the calendar feeds a document imports), `merge` (the merge
//! policy's pass after a merge) and `requests` (the HTTP API's requests, answered from the same
//! document).

mod imports;
mod merge;
mod requests;

use std::collections::{BTreeSet, HashMap};

use crate::bridges::import::Feed;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use syncline_shared::ids::{DocumentId, PeerId, StorageId};
use syncline_shared::policy;
use syncline_shared::protocol::{DocUnavailable, Ephemeral, ErrorMessage, Message};
use syncline_shared::session::{ConnectionId, DocumentSession, SessionEffect, SyncKind};
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::api::ApiReply;
use super::{DocumentCommand, Registry, Status, WorkerContext};
use crate::auth::{Access, Principal};
use crate::metrics::Metrics;
use crate::net::outbound::{CloseReason, Outbound};
use crate::storage::{
    BookingEvent, DocumentMeta, DocumentWrite, NewChange, OutboxRequest, Snapshot,
};

/// Most commands taken in one turn; bounds the latency a single turn adds for the others.
const MAX_TURN_COMMANDS: usize = 256;

/// Sync messages carrying more change bytes than this are applied off the async threads.
const LARGE_SYNC_BYTES: usize = 256 * 1024;

/// Runs a document's worker until it unloads, the server shuts down, or storage fails.
pub(super) async fn run(
    id: DocumentId,
    rx: mpsc::Receiver<DocumentCommand>,
    registry: Registry,
    context: WorkerContext,
    status: Arc<Status>,
) {
    let span = info_span!("doc", doc = %id);
    async move {
        let metrics = context.services.metrics.clone();
        metrics.documents_loaded.inc();
        // Both boxed, so the task itself stays small: the loaded worker lives in one allocation
        // of its own size, and loading's temporaries are gone once it is done.
        match Box::pin(Worker::load(id, &context, status.clone())).await {
            Ok(worker) => Box::pin(worker.run(rx, registry, context)).await,
            Err(message) => {
                error!(%message, "cannot load document; refusing its peers");
                registry.remove(id);
                refuse_all(rx).await;
            }
        }
        let attached = status.set_peers(0);
        metrics
            .peers
            .dec_by(i64::try_from(attached).unwrap_or(i64::MAX));
        metrics.documents_loaded.dec();
    }
    .instrument(span)
    .await
}

/// One attached connection, as the worker sees it.
#[derive(Debug)]
struct Peer {
    id: PeerId,
    outbound: Arc<Outbound>,
    principal: Arc<Principal>,
    /// What the connection may do here. `Access::None` connections are not attached to the
    /// session: whatever they send is answered as for a missing document.
    access: Access,
}

#[derive(Debug)]
struct Worker {
    id: DocumentId,
    session: DocumentSession,
    next_seq: u64,
    changes_since_snapshot: u64,
    /// The token subject that created the document, for `own` grants.
    created_by: Option<String>,
    /// Bytes of every change ever logged, against `sync.max_document_bytes`.
    bytes_logged: u64,
    peers: HashMap<ConnectionId, Peer>,
    /// What the current turn will make durable.
    pending: DocumentWrite,
    /// Persist batches the session handed out that `pending` holds: one turn may apply several
    /// sync messages, and each of their batches is confirmed to the session once it is durable.
    pending_batches: usize,
    /// Connections to tell, after the commit, that a sync message may be waiting.
    ready: BTreeSet<ConnectionId>,
    /// This server's peer id, the sender of everything it sends.
    server_peer: PeerId,
    /// Receipt times (seconds) of changes stamped further ahead of their receipt than the
    /// allowed clock skew; the conflict policy counts them as stamped then, plus the skew.
    /// Limit: kept in memory only, so after an unload such a change competes under its own
    /// stamp in conflicts not yet resolved.
    future_stamped: HashMap<automerge::ChangeHash, i64>,
    /// The feeds this calendar imports, as last registered with the importer.
    imports: Option<Vec<Feed>>,
    /// The calendar problems reported last, so an unchanged problem is not logged every turn.
    reported_problems: Vec<String>,
    /// Bookings the policy confirmed or rejected this turn, to announce to bridges.
    decided: Vec<BookingEvent>,
    /// Applying a message panicked: the in-memory document cannot be trusted, so the turn's
    /// writes are dropped (nobody was told of them) and the worker stops; the next load reads
    /// the durable state.
    poisoned: bool,
    /// The document was deleted: every peer and request is refused, for ever.
    deleted: bool,
    /// HTTP API answers that wait for this turn's commit; `heads` is filled in then.
    replies: Vec<(ApiReply, serde_json::Value)>,
    /// What the worker shows of itself to the HTTP API.
    status: Arc<Status>,
    metrics: Arc<Metrics>,
}

impl Worker {
    async fn load(
        id: DocumentId,
        context: &WorkerContext,
        status: Arc<Status>,
    ) -> Result<Self, String> {
        let storage = context.services.storage.clone();
        let stored = tokio::task::spawn_blocking(move || load_stored(&storage, id))
            .await
            .map_err(|e| format!("load task failed: {e}"))??;
        let (mut session, next_seq, changes_since_snapshot, meta) = match stored {
            Some((session, next_seq, logged, meta)) => (session, next_seq, logged, meta),
            None => (DocumentSession::absent(), 0, 0, DocumentMeta::default()),
        };
        let deleted = meta.deleted_at_ms.is_some();
        if deleted {
            session = DocumentSession::absent();
        }
        session.set_author(context.author.clone());
        status.set_heads(session.heads());
        debug!(
            exists = session.exists(),
            deleted, next_seq, "document loaded"
        );
        Ok(Self {
            id,
            session,
            metrics: context.services.metrics.clone(),
            next_seq,
            changes_since_snapshot,
            created_by: meta.created_by,
            bytes_logged: meta.bytes_logged,
            peers: HashMap::new(),
            pending: DocumentWrite::new(id),
            pending_batches: 0,
            future_stamped: HashMap::new(),
            imports: None,
            reported_problems: Vec::new(),
            decided: Vec::new(),
            poisoned: false,
            deleted,
            replies: Vec::new(),
            status,
            ready: BTreeSet::new(),
            server_peer: context.services.server_peer.clone(),
        })
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<DocumentCommand>,
        registry: Registry,
        context: WorkerContext,
    ) {
        let idle = context.services.limits.idle_unload;
        loop {
            let first = tokio::select! {
                command = rx.recv() => command,
                () = tokio::time::sleep(idle), if self.peers.is_empty() => {
                    if registry.try_unload(self.id) {
                        debug!("idle; unloading");
                        self.metrics.documents_unloaded.inc();
                        break;
                    }
                    continue;
                }
            };
            let Some(first) = first else {
                // Every handle is gone: the server is shutting down.
                self.detach_all();
                let _ = Box::pin(self.flush(&context)).await;
                break;
            };
            // Boxed: a turn's state (commits, compaction) is large, and it would otherwise sit in
            // every idle worker's future too.
            if !Box::pin(self.turn(first, &mut rx, &context)).await {
                registry.remove(self.id);
                self.fail_peers();
                refuse_all(rx).await;
                break;
            }
        }
    }

    /// Handles one batch of commands; false if storage failed and the worker must stop.
    async fn turn(
        &mut self,
        first: DocumentCommand,
        rx: &mut mpsc::Receiver<DocumentCommand>,
        context: &WorkerContext,
    ) -> bool {
        let mut generates = Vec::new();
        let before = self.session.heads();
        self.handle(first, &mut generates, context).await;
        while generates.len() + 1 < MAX_TURN_COMMANDS && !self.poisoned {
            let Ok(command) = rx.try_recv() else { break };
            self.handle(command, &mut generates, context).await;
        }
        self.metrics
            .document_turn_commands
            .observe((generates.len() + 1) as f64);
        if self.poisoned {
            self.answer_replies(false);
            return false;
        }
        if !self.pending.changes.is_empty() {
            self.apply_policy(&before, context);
        }
        if !self.deleted {
            self.track_imports(context);
        }
        let bridges = self.request_deliveries(context);

        let durable = self.flush(context).await.is_ok();
        self.answer_replies(durable);
        if !durable {
            return false;
        }
        for bridge in bridges {
            context.services.dispatcher.notify(bridge, self.id);
        }
        self.notify_ready();
        for (conn, reply) in generates {
            let _ = reply.send(self.session.generate(conn));
        }
        self.publish_status();
        self.maybe_compact(context).await
    }

    /// Publishes the durable heads and the attached peer count.
    fn publish_status(&self) {
        self.status.set_heads(self.session.heads());
        let attached = self
            .peers
            .values()
            .filter(|peer| peer.access > Access::None)
            .count();
        let before = self.status.set_peers(attached);
        let delta =
            i64::try_from(attached).unwrap_or(i64::MAX) - i64::try_from(before).unwrap_or(i64::MAX);
        self.metrics.peers.inc_by(delta);
    }

    async fn handle(
        &mut self,
        command: DocumentCommand,
        generates: &mut Vec<(ConnectionId, oneshot::Sender<Option<Vec<u8>>>)>,
        context: &WorkerContext,
    ) {
        match command {
            DocumentCommand::Attach {
                conn,
                peer,
                storage_id,
                outbound,
                principal,
            } => {
                let peer = Peer {
                    id: peer,
                    outbound,
                    principal,
                    access: Access::None,
                };
                self.handle_attach(conn, peer, storage_id, context).await;
            }
            DocumentCommand::Sync {
                conn,
                kind,
                message,
            } => {
                self.handle_sync(conn, kind, *message, context);
            }
            DocumentCommand::Ephemeral { conn, message } => {
                if self.access(conn) > Access::None {
                    let effects = self.session.ephemeral(conn, *message);
                    self.apply(effects);
                }
            }
            DocumentCommand::Generate { conn, reply } => generates.push((conn, reply)),
            DocumentCommand::Detach { conn } => {
                self.peers.remove(&conn);
                let effect = self.session.detach(conn);
                self.apply(effect.into_iter().collect());
            }
            DocumentCommand::Import { channel, nights } => self.handle_import(&channel, &nights),
            DocumentCommand::Api {
                principal,
                request,
                reply,
            } => self.handle_api(&principal, *request, reply, context),
        }
    }

    async fn handle_attach(
        &mut self,
        conn: ConnectionId,
        mut peer: Peer,
        storage_id: Option<StorageId>,
        context: &WorkerContext,
    ) {
        peer.access = self.access_for(&peer.principal);
        if peer.access == Access::None {
            debug!(%conn, peer = %peer.id, "peer may not read this document; answering as missing");
            self.peers.insert(conn, peer);
            return;
        }
        let saved = match &storage_id {
            Some(storage_id) if self.session.exists() => {
                load_sync_state(context, self.id, storage_id).await
            }
            _ => None,
        };
        debug!(%conn, peer = %peer.id, access = ?peer.access, resumed = saved.is_some(), "peer attached");
        self.session
            .attach(conn, peer.id.clone(), storage_id, saved.as_deref());
        self.session
            .set_read_only(conn, peer.access < Access::Write);
        self.peers.insert(conn, peer);
    }

    /// A principal's access to this document. A document nobody has created yet counts as the
    /// principal's own, since its upload would make it so.
    fn access_for(&self, principal: &Principal) -> Access {
        if self.deleted {
            return Access::None;
        }
        let creator = match self.session.exists() {
            true => self.created_by.as_deref(),
            false => principal.subject(),
        };
        principal.access(&self.id, creator)
    }

    fn access(&self, conn: ConnectionId) -> Access {
        self.peers
            .get(&conn)
            .map_or(Access::None, |peer| peer.access)
    }

    /// The document was just created by `conn`'s upload: record its creator, and detach
    /// connections whose access counted on creating it themselves.
    fn on_created(&mut self, conn: ConnectionId) {
        let creator = self
            .peers
            .get(&conn)
            .and_then(|peer| peer.principal.subject().map(str::to_owned));
        self.pending.created_by.clone_from(&creator);
        self.created_by = creator;
        let conns: Vec<ConnectionId> = self.peers.keys().copied().collect();
        for other in conns {
            let access = self.access_for(&self.peers[&other].principal);
            let peer = self.peers.get_mut(&other).expect("listed above");
            if access == peer.access {
                continue;
            }
            let was = std::mem::replace(&mut peer.access, access);
            if access == Access::None {
                let effect = self.session.detach(other);
                self.apply(effect.into_iter().collect());
                continue;
            }
            if was == Access::None {
                // Not reachable with today's grants (a creator can only narrow access), but an
                // attached session is what every later message of a permitted peer needs.
                let id = peer.id.clone();
                self.session.attach(other, id, None, None);
            }
            self.session.set_read_only(other, access < Access::Write);
        }
    }

    fn handle_sync(
        &mut self,
        conn: ConnectionId,
        kind: SyncKind,
        message: automerge::sync::Message,
        context: &WorkerContext,
    ) {
        let access = self.access(conn);
        if access == Access::None {
            if !self.deleted {
                self.metrics.access_denied("unreadable");
            }
            self.send_unavailable(conn);
            return;
        }
        let incoming = message.changes.iter().map(<[u8]>::len).sum::<usize>();
        let limit = context.services.limits.max_document_bytes;
        if access == Access::Write && self.bytes_logged.saturating_add(incoming as u64) > limit {
            self.metrics.limit_hit("document_size");
            let reason = format!(
                "the document would exceed its limit of {limit} bytes (sync.max_document_bytes); \
                 these changes were not applied"
            );
            self.refuse(conn, &reason);
            return;
        }
        let large = incoming > LARGE_SYNC_BYTES;
        let started = std::time::Instant::now();
        let session = &mut self.session;
        // Automerge has panicked on malformed input before; a panic must not take the worker
        // down with a half-applied document, so it is caught and the document reloaded.
        let received = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match large {
            true => off_async_threads(|| session.receive(conn, kind, message)),
            false => session.receive(conn, kind, message),
        }));
        self.metrics
            .sync_message_seconds
            .observe(started.elapsed().as_secs_f64());
        match received {
            Ok(Ok(effects)) => {
                if effects.contains(&SessionEffect::Created) {
                    self.on_created(conn);
                }
                self.apply(effects);
            }
            Ok(Err(err)) => self.reject(conn, &err.to_string()),
            Err(_) => {
                error!(
                    %conn,
                    "applying a sync message panicked inside Automerge; refusing the peer and \
                     reloading the document from storage",
                );
                self.reject(conn, "the changes could not be applied");
                self.poisoned = true;
            }
        }
    }

    /// Carries out the session's effects. Sync messages wait for the turn's commit; everything
    /// else is queued to its connection at once.
    fn apply(&mut self, effects: Vec<SessionEffect>) {
        for effect in effects {
            match effect {
                SessionEffect::Persist(changes) => self.log_changes(changes),
                SessionEffect::SyncReady(conn) => {
                    self.ready.insert(conn);
                }
                SessionEffect::Relay { to, message } => self.relay(to, message),
                SessionEffect::SaveSyncState { storage_id, state } => {
                    self.pending.sync_states.push((storage_id.0, state));
                }
                SessionEffect::Unavailable(conn) => self.send_unavailable(conn),
                SessionEffect::RefusedWrite(conn) => {
                    self.metrics.access_denied("read_only");
                    debug!(%conn, "a read-only peer sent changes; not applied");
                }
                SessionEffect::Created => {
                    debug!("document created by upload");
                    self.pending.created_at_ms = Some(now_ms());
                }
            }
        }
    }

    fn relay(&mut self, to: ConnectionId, message: Ephemeral) {
        let peer = self.peers.get(&to);
        if peer.is_some_and(|p| p.outbound.try_send(Message::Ephemeral(message))) {
            self.metrics.ephemeral_relayed.inc();
        } else {
            self.metrics.ephemeral_dropped.inc();
        }
    }

    fn log_changes(&mut self, changes: Vec<syncline_shared::session::NewChange>) {
        self.pending_batches += 1;
        let received_at_ms = now_ms();
        let received_at = i64::try_from(received_at_ms / 1000).unwrap_or(i64::MAX);
        for change in changes {
            self.bytes_logged += change.bytes.len() as u64;
            if change.timestamp > received_at {
                self.future_stamped.insert(change.hash, received_at);
            }
            self.pending.changes.push(NewChange {
                seq: self.next_seq,
                hash: change.hash.0,
                received_at_ms,
                author: change.author,
                bytes: change.bytes,
            });
            self.next_seq += 1;
            self.changes_since_snapshot += 1;
        }
    }

    /// Adds an outbox row request for every bridge that wants this turn's changes; returns the
    /// bridges to wake once the turn is durable.
    fn request_deliveries<'c>(&mut self, context: &'c WorkerContext) -> Vec<&'c str> {
        if self.pending.changes.is_empty() {
            return Vec::new();
        }
        let doc = self.session.document();
        let kind = policy::calendar::text_at(doc, &automerge::ROOT, "type", None);
        let decided = std::mem::take(&mut self.decided);
        let mut woken = Vec::new();
        for bridge in context.services.dispatcher.configs() {
            if !bridge.documents.matches(&self.id, kind.as_deref()) {
                continue;
            }
            let request = |booking| OutboxRequest {
                bridge: bridge.name.clone(),
                events: bridge.mode.is_events(),
                booking,
            };
            self.pending.outbox.push(request(None));
            // A CalDAV collection shows decisions through the state; only webhooks get events.
            if bridge.caldav.is_none() {
                self.pending
                    .outbox
                    .extend(decided.iter().cloned().map(|event| request(Some(event))));
            }
            woken.push(bridge.name.as_str());
        }
        woken
    }

    /// Makes the turn's writes durable and confirms them to the session. Confirming may release
    /// sync states held back until now, which are written in a following transaction.
    async fn flush(&mut self, context: &WorkerContext) -> Result<(), ()> {
        while !is_empty(&self.pending) {
            let write = std::mem::replace(&mut self.pending, DocumentWrite::new(self.id));
            let batches = std::mem::take(&mut self.pending_batches);
            let changes = write.changes.len();
            if let Err(err) = context.services.writer.write(write).await {
                error!(
                    error = %err,
                    changes,
                    "storage write failed; unloading document and disconnecting its peers so they resync",
                );
                return Err(());
            }
            for _ in 0..batches {
                let effects = self.session.committed();
                self.apply(effects);
            }
        }
        Ok(())
    }

    fn notify_ready(&mut self) {
        for conn in std::mem::take(&mut self.ready) {
            if let Some(peer) = self.peers.get(&conn) {
                peer.outbound.sync_ready(self.id);
            }
        }
    }

    /// Folds the change log into a snapshot once enough changes accumulated.
    async fn maybe_compact(&mut self, context: &WorkerContext) -> bool {
        if self.changes_since_snapshot < context.services.limits.compact_after_changes {
            return true;
        }
        let document = self.session.document();
        let snapshot = Snapshot {
            heads: document.get_heads().iter().map(|h| h.0).collect(),
            covered_seq: self.next_seq.saturating_sub(1),
            bytes: off_async_threads(|| document.save()),
        };
        let mut write = DocumentWrite::new(self.id);
        write.snapshot = Some(snapshot);
        match context.services.writer.write(write).await {
            Ok(_) => {
                debug!(covered_seq = self.next_seq.saturating_sub(1), "compacted");
                self.changes_since_snapshot = 0;
                true
            }
            Err(err) => {
                error!(error = %err, "compaction failed; unloading document");
                false
            }
        }
    }

    fn send_unavailable(&mut self, conn: ConnectionId) {
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        let message = Message::DocUnavailable(DocUnavailable {
            sender_id: self.server_peer.clone(),
            target_id: peer.id.clone(),
            document_id: self.id,
        });
        peer.outbound.try_send(message);
    }

    /// A peer sent sync data that cannot be applied: tell it why and close its connection.
    fn reject(&mut self, conn: ConnectionId, reason: &str) {
        if let Some(peer) = self.peers.get(&conn) {
            warn!(%conn, peer = %peer.id, %reason, "invalid sync message; closing connection");
        }
        self.refuse(conn, &format!("invalid sync message: {reason}"));
    }

    /// Sends `conn` an `error` saying why its message was not applied, and closes it: its peer
    /// would otherwise take the changes as delivered.
    fn refuse(&mut self, conn: ConnectionId, message: &str) {
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        info!(%conn, peer = %peer.id, %message, "refusing a sync message; closing connection");
        peer.outbound.try_send(Message::Error(ErrorMessage {
            sender_id: Some(self.server_peer.clone()),
            target_id: Some(peer.id.clone()),
            message: message.to_owned(),
        }));
        peer.outbound.close(CloseReason::InvalidInput);
    }

    fn detach_all(&mut self) {
        let conns: Vec<_> = self.peers.drain().map(|(conn, _)| conn).collect();
        for conn in conns {
            if let Some(SessionEffect::SaveSyncState { storage_id, state }) =
                self.session.detach(conn)
            {
                self.pending.sync_states.push((storage_id.0, state));
            }
        }
    }

    fn fail_peers(&mut self) {
        for peer in self.peers.values() {
            peer.outbound.close(CloseReason::StorageFailed);
        }
    }
}

/// A stored document's session, next seq, changes since its snapshot, and bookkeeping row.
type Loaded = (DocumentSession, u64, u64, DocumentMeta);

fn load_stored(
    storage: &crate::storage::Storage,
    id: DocumentId,
) -> Result<Option<Loaded>, String> {
    let Some(stored) = storage.load_document(&id).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let doc = stored
        .load()
        .map_err(|e| format!("stored document does not load: {e}"))?;
    let logged = stored.changes.len() as u64;
    Ok(Some((
        DocumentSession::new(doc),
        stored.next_seq,
        logged,
        stored.meta,
    )))
}

async fn load_sync_state(
    context: &WorkerContext,
    id: DocumentId,
    storage_id: &StorageId,
) -> Option<Vec<u8>> {
    let storage = context.services.storage.clone();
    let key = storage_id.0.clone();
    let loaded = tokio::task::spawn_blocking(move || storage.load_sync_state(&id, &key)).await;
    match loaded {
        Ok(Ok(state)) => state,
        Ok(Err(err)) => {
            warn!(error = %err, "cannot read saved sync state; starting afresh");
            None
        }
        Err(err) => {
            warn!(error = %err, "sync state read task failed; starting afresh");
            None
        }
    }
}

/// Answers whatever is still queued for a worker that cannot serve: connections that try to
/// attach are closed so their peers reconnect to a fresh worker.
async fn refuse_all(mut rx: mpsc::Receiver<DocumentCommand>) {
    rx.close();
    while let Some(command) = rx.recv().await {
        match command {
            DocumentCommand::Attach { outbound, .. } => outbound.close(CloseReason::StorageFailed),
            DocumentCommand::Generate { reply, .. } => {
                let _ = reply.send(None);
            }
            _ => {}
        }
    }
}

fn is_empty(write: &DocumentWrite) -> bool {
    write.created_at_ms.is_none()
        && write.created_by.is_none()
        && write.changes.is_empty()
        && write.sync_states.is_empty()
        && write.snapshot.is_none()
        && write.outbox_updates.is_empty()
        && write.imports.is_none()
        && write.lifecycle.is_none()
}

/// Now in whole seconds, the unit of Automerge's change timestamps.
fn now_s() -> i64 {
    i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs CPU-heavy Automerge work (saving a snapshot, applying a large upload) without stalling
/// the other tasks of an async worker thread. The document stays owned by this worker, so the
/// work cannot move to the blocking pool; instead the current thread is handed over for it. On
/// a single-threaded runtime (some tests) it simply runs inline.
fn off_async_threads<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}
