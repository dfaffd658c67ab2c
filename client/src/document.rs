//! One document held by the client: its replica, what servers acknowledged, and its watchers.
//!
//! An [`Entry`] wraps the shared [`DocumentSession`] (the same sans-IO sync core the server
//! runs), with one attached connection per live server connection. Every path that changes the
//! replica, a local edit or a sync message from a server, goes the same way: apply under the
//! entry's lock, queue the store write under the same lock (so writes keep the replica's order),
//! let go, wait until the write is durable, then confirm it to the session, which only then lets
//! sync messages advertise the new heads. [`Document`] is the public handle.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use automerge::transaction::Transaction;
use automerge::{Automerge, ChangeHash, Patch, ReadDoc};
use syncline_shared::ids::{DocumentId, StorageId};
use syncline_shared::session::{ConnectionId, DocumentSession, SessionEffect};
use tokio::sync::{broadcast, watch};

use crate::client::Inner;
use crate::error::ClientError;
use crate::store::writer::{DocumentWrite, durable};

/// Change rows after which a document's log is folded into a fresh snapshot.
pub(crate) const COMPACT_AFTER: usize = 500;

/// How many versions a slow subscriber may fall behind before it skips ahead.
const EVENT_BUFFER: usize = 256;

/// A new version of a document.
#[derive(Debug, Clone)]
pub struct DocumentEvent {
    /// The document's heads after the change.
    pub heads: Vec<ChangeHash>,
    /// What changed since the previous event, as Automerge patches.
    pub patches: Vec<Patch>,
    /// Whether this client made the change (rather than receiving it from a server).
    pub local: bool,
}

/// Where one document stands: its local heads and what each server has made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatus {
    /// The local replica's heads.
    pub local_heads: Vec<ChangeHash>,
    /// Per server storage id, the heads that server advertised: everything behind them is on
    /// its disk.
    pub acknowledged: BTreeMap<StorageId, Vec<ChangeHash>>,
}

/// The mutable part of an entry, behind one short-held lock.
#[derive(Debug)]
pub(crate) struct EntryState {
    pub session: DocumentSession,
    pub acknowledged: BTreeMap<StorageId, Vec<ChangeHash>>,
    /// Connections whose server said it does not have the document.
    pub unavailable: HashSet<ConnectionId>,
    /// Connections whose server has sent a sync message for the document: only those tell
    /// where the server stands now (the acknowledged heads may come from an earlier run).
    pub heard: HashSet<ConnectionId>,
    /// Change rows written since the last snapshot.
    pub rows: usize,
}

/// One loaded document.
#[derive(Debug)]
pub(crate) struct Entry {
    pub id: DocumentId,
    /// A std mutex: it guards Automerge work only and is never held across an await.
    state: Mutex<EntryState>,
    /// Bumped whenever heads, acknowledgements or availability change; waiters re-check.
    changed: watch::Sender<u64>,
    events: broadcast::Sender<DocumentEvent>,
}

impl Entry {
    pub fn new(id: DocumentId, state: EntryState) -> Self {
        Self {
            id,
            state: Mutex::new(state),
            changed: watch::Sender::new(0),
            events: broadcast::Sender::new(EVENT_BUFFER),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, EntryState> {
        self.state
            .lock()
            .expect("a document lock holder does not panic: Automerge calls return errors")
    }

    /// Wakes everyone waiting on this document.
    pub fn touch(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Tells subscribers about the move from `before` to the current heads.
    pub fn publish(&self, before: &[ChangeHash], local: bool) {
        self.touch();
        if self.events.receiver_count() == 0 {
            return;
        }
        let state = self.lock();
        let doc = state.session.document();
        let heads = doc.get_heads();
        if heads == before {
            return;
        }
        let patches = doc.diff(before, &heads);
        drop(state);
        let _ = self.events.send(DocumentEvent {
            heads,
            patches,
            local,
        });
    }

    /// Queues the durable write for a session's `Persist` effect (called under the lock, so
    /// writes keep the replica's order); `acknowledged` rides along when a server's message
    /// brought the changes.
    pub fn queue_persist(
        &self,
        inner: &Inner,
        state: &mut EntryState,
        effects: &[SessionEffect],
        acknowledged: Option<(StorageId, Vec<ChangeHash>)>,
    ) -> Option<crate::store::writer::Pending> {
        let changes: Vec<Vec<u8>> = effects
            .iter()
            .filter_map(|effect| match effect {
                SessionEffect::Persist(changes) => Some(changes),
                _ => None,
            })
            .flatten()
            .map(|change| change.bytes.clone())
            .collect();
        if changes.is_empty() && acknowledged.is_none() {
            return None;
        }
        let mut write = DocumentWrite::new(self.id);
        if !changes.is_empty() {
            state.rows += changes.len();
            write.changes = changes;
            write.local_heads = Some(state.session.heads());
        }
        write.acknowledged = acknowledged;
        if state.rows >= COMPACT_AFTER {
            // Limit: saving is proportional to the document's size and runs on the caller's
            // thread, once per COMPACT_AFTER changes.
            write.snapshot = Some(state.session.document().save());
            state.rows = 0;
        }
        Some(inner.writer.queue(write))
    }

    /// Waits until `done` holds for the state, re-checking whenever the document changes.
    pub async fn wait_until(
        &self,
        what: &'static str,
        timeout: Duration,
        mut done: impl FnMut(&mut EntryState) -> Option<Result<(), ClientError>>,
    ) -> Result<(), ClientError> {
        let mut changed = self.changed.subscribe();
        let check = async {
            loop {
                if let Some(result) = done(&mut self.lock()) {
                    return result;
                }
                if changed.changed().await.is_err() {
                    return Err(ClientError::Closed);
                }
            }
        };
        tokio::time::timeout(timeout, check)
            .await
            .unwrap_or(Err(ClientError::Timeout {
                what,
                after: timeout,
            }))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DocumentEvent> {
        self.events.subscribe()
    }
}

impl EntryState {
    /// Whether the server behind `storage` has made every local change durable: its advertised
    /// heads contain each local head or descend from it.
    pub fn covered_by(&self, storage: &StorageId) -> bool {
        let Some(acked) = self.acknowledged.get(storage) else {
            return false;
        };
        let doc = self.session.document();
        let local = doc.get_heads();
        if local.iter().all(|head| acked.contains(head)) {
            return true;
        }
        if acked
            .iter()
            .any(|hash| doc.get_change_by_hash(hash).is_none())
        {
            return false;
        }
        let outside = doc.get_changes(acked);
        !local
            .iter()
            .any(|head| outside.iter().any(|change| change.hash() == *head))
    }

    /// Whether the server behind `storage` holds exactly what we hold.
    pub fn in_step_with(&self, storage: &StorageId) -> bool {
        self.acknowledged
            .get(storage)
            .is_some_and(|acked| *acked == self.session.heads())
    }

    pub fn status(&self) -> SyncStatus {
        SyncStatus {
            local_heads: self.session.heads(),
            acknowledged: self.acknowledged.clone(),
        }
    }
}

/// A handle to one document of a [`Client`](crate::Client). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Document {
    pub(crate) entry: Arc<Entry>,
    pub(crate) inner: Arc<Inner>,
}

impl Document {
    /// The document's id.
    pub fn id(&self) -> DocumentId {
        self.entry.id
    }

    /// The `automerge:` URL that names it.
    pub fn url(&self) -> String {
        self.entry.id.url()
    }

    /// Whether the local store holds the document (false while it is still being looked for).
    pub fn exists(&self) -> bool {
        self.entry.lock().session.exists()
    }

    /// The current heads.
    pub fn heads(&self) -> Vec<ChangeHash> {
        self.entry.lock().session.heads()
    }

    /// Reads the document. `f` runs under the document's lock: keep it short.
    pub fn read<R>(&self, f: impl FnOnce(&Automerge) -> R) -> R {
        f(self.entry.lock().session.document())
    }

    /// The document as JSON, as `syncline get` prints it.
    pub fn to_json(&self) -> serde_json::Value {
        self.read(syncline_shared::json::to_json)
    }

    /// Local heads and what each server acknowledged.
    pub fn status(&self) -> SyncStatus {
        self.entry.lock().status()
    }

    /// New versions from now on, local or received. A subscriber that falls more than a few
    /// hundred versions behind skips ahead (see [`DocumentEvents::next`]).
    pub fn subscribe(&self) -> DocumentEvents {
        DocumentEvents {
            events: self.entry.subscribe(),
        }
    }

    /// Changes the document with `f` in one transaction stamped with the current time, and
    /// returns once the change is durable in the local store; connected servers are sent it
    /// right after. If `f` fails, nothing is changed.
    pub async fn change<O, E>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<O, E>,
    ) -> Result<O, ClientError>
    where
        E: Into<ClientError>,
    {
        let (result, before, effects, pending) = {
            let mut state = self.entry.lock();
            let before = state.session.heads();
            let (result, effects) = state
                .session
                .change(
                    automerge::transaction::CommitOptions::default()
                        .with_time(crate::client::now_seconds()),
                    f,
                )
                .map_err(Into::into)?;
            let pending = self
                .entry
                .queue_persist(&self.inner, &mut state, &effects, None);
            (result, before, effects, pending)
        };
        if let Some(pending) = pending {
            durable(pending).await?;
            self.inner.confirm(&self.entry, effects);
            self.entry.publish(&before, true);
        }
        Ok(result)
    }

    /// Waits until some connected server has acknowledged every local change as durable.
    pub async fn wait_acknowledged(&self, timeout: Duration) -> Result<(), ClientError> {
        let inner = Arc::clone(&self.inner);
        self.entry
            .wait_until("a server to acknowledge the document", timeout, |state| {
                let servers = inner.connected_servers();
                servers
                    .iter()
                    .any(|server| state.covered_by(server))
                    .then_some(Ok(()))
            })
            .await
    }

    /// Waits until a connected server, having answered on this connection, holds exactly the
    /// local version (both sides' changes exchanged), or fails with
    /// [`ClientError::Unavailable`] if the document exists nowhere.
    pub async fn wait_synced(&self, timeout: Duration) -> Result<(), ClientError> {
        let inner = Arc::clone(&self.inner);
        let id = self.entry.id;
        self.entry
            .wait_until("the document to sync with a server", timeout, |state| {
                let connections = inner.connection_ids();
                if !state.session.exists()
                    && !connections.is_empty()
                    && connections.iter().all(|c| state.unavailable.contains(c))
                {
                    return Some(Err(ClientError::Unavailable(id)));
                }
                let in_step = inner
                    .connected()
                    .iter()
                    .any(|(conn, server)| state.heard.contains(conn) && state.in_step_with(server));
                (state.session.exists() && in_step).then_some(Ok(()))
            })
            .await
    }
}

/// The versions of one document, as they happen.
#[derive(Debug)]
pub struct DocumentEvents {
    events: broadcast::Receiver<DocumentEvent>,
}

impl DocumentEvents {
    /// The next version; `None` once the client is closed. A subscriber that fell too far
    /// behind skips the versions it missed and gets the next one (its patches then describe
    /// only that last step; read the document for the whole state).
    pub async fn next(&mut self) -> Option<DocumentEvent> {
        loop {
            match self.events.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
