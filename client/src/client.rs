//! [`Client`]: the front end of the library, and the state its connections share.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use automerge::transaction::{CommitOptions, Transaction};
use automerge::{AutoCommit, Automerge};
use syncline_shared::ids::{DocumentId, PeerId, StorageId};
use syncline_shared::session::{ConnectionId, DocumentSession, SessionEffect};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backoff::BackoffConfig;
use crate::connection::{self, Outbox};
use crate::document::{COMPACT_AFTER, Document, Entry, EntryState};
use crate::error::ClientError;
use crate::store::writer::{DocumentWrite, Writer, durable};
use crate::store::{Store, StoredDocument};

/// Produces the bearer token for the next connection attempt, or `None` to connect without
/// one. It is called before every attempt, so an expired token is replaced by reconnecting.
pub type TokenProvider =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync>;

/// How the client connects.
#[derive(Clone)]
pub struct ClientConfig {
    /// Delays between reconnect attempts.
    pub backoff: BackoffConfig,
    /// Called before each connection attempt; its token goes in `Authorization: Bearer`.
    pub token: Option<TokenProvider>,
    /// How long the WebSocket handshake and the server's `peer` answer may take.
    pub connect_timeout: Duration,
    /// A connection that receives nothing for this long (servers ping every few seconds) is
    /// considered dead and replaced.
    pub idle_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            backoff: BackoffConfig::default(),
            token: None,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(20),
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("backoff", &self.backoff)
            .field("token", &self.token.as_ref().map(|_| "<provider>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

/// An offline-first Automerge client over a local store. Cheap to clone.
///
/// Every document the client touches lives in the local store; [`connect`](Self::connect)
/// adds a server that the client keeps in sync with for as long as it runs, reconnecting by
/// itself. Edits made while no server is reachable stay in the store and are uploaded on the
/// next connection, even by another process.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// What the client's handles and connection tasks share.
#[derive(Debug)]
pub(crate) struct Inner {
    pub store: Store,
    pub writer: Writer,
    pub peer_id: PeerId,
    pub config: ClientConfig,
    /// Loaded documents. Locks here and in `connections` are short and never nested.
    entries: Mutex<HashMap<DocumentId, Arc<Entry>>>,
    /// Live server connections, once they completed the handshake.
    connections: Mutex<HashMap<ConnectionId, Arc<Outbox>>>,
    next_connection: AtomicU64,
    /// The newest connection failure, for messages such as "server unreachable".
    last_error: Mutex<Option<String>>,
    /// Cancelled by `close`; each connection task runs under a child of it.
    shutdown: CancellationToken,
    /// Connection tasks and the tokens that stop them.
    tasks: Mutex<Vec<(CancellationToken, JoinHandle<()>)>>,
}

impl Client {
    /// Opens (or creates) the store in `dir`. Fails if another process has it open.
    pub async fn open(dir: impl AsRef<Path>, config: ClientConfig) -> Result<Client, ClientError> {
        let dir = dir.as_ref().to_path_buf();
        let store = tokio::task::spawn_blocking(move || Store::open(&dir))
            .await
            .map_err(|_| ClientError::Closed)??;
        let writer = Writer::start(store.database())?;
        // Fresh per process: a server that keeps a peer's sync state in memory across
        // reconnects (the reference automerge-repo server does) would otherwise think a new
        // process already has what the last one had, and stay silent.
        let suffix: u32 = rand::random();
        let peer_id = PeerId(format!("syncline-{}-{suffix:08x}", store.storage_id()));
        let inner = Inner {
            store,
            writer,
            peer_id,
            config,
            entries: Mutex::new(HashMap::new()),
            connections: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(1),
            last_error: Mutex::new(None),
            shutdown: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
        };
        Ok(Client {
            inner: Arc::new(inner),
        })
    }

    /// The storage id this client announces; servers keep sync state under it.
    pub fn storage_id(&self) -> &StorageId {
        self.inner.store.storage_id()
    }

    /// The peer id this client joins servers as (one per process).
    pub fn peer_id(&self) -> &PeerId {
        &self.inner.peer_id
    }

    /// Keeps in sync with the server at `url` (`ws://host:port/`) from now until
    /// [`close`](Self::close), reconnecting with backoff whenever the connection drops.
    pub fn connect(&self, url: &str) -> Result<(), ClientError> {
        let request = connection::check_url(url)?;
        let stop = self.inner.shutdown.child_token();
        let task = tokio::spawn(connection::run(
            Arc::clone(&self.inner),
            request,
            stop.clone(),
        ));
        lock(&self.inner.tasks).push((stop, task));
        Ok(())
    }

    /// Creates a document with a fresh id. Its first change is empty, as the JavaScript
    /// client's is, so the document exists even if `init` writes nothing.
    pub async fn create<E: Into<ClientError>>(
        &self,
        init: impl FnOnce(&mut Transaction<'_>) -> Result<(), E>,
    ) -> Result<Document, ClientError> {
        let id = DocumentId::random_from(rand::random());
        let mut first = AutoCommit::new();
        first.empty_change(CommitOptions::default().with_time(now_seconds()));
        let doc = Automerge::load(&first.save())?;
        let entry = Arc::new(Entry::new(
            id,
            EntryState {
                session: DocumentSession::new(doc),
                acknowledged: Default::default(),
                unavailable: Default::default(),
                heard: Default::default(),
                rows: 0,
            },
        ));
        let mut write = DocumentWrite::new(id);
        write.changes = vec![first.save()];
        write.local_heads = Some(first.get_heads());
        durable(self.inner.writer.queue(write)).await?;

        let entry = self.inner.publish_entry(entry);
        let document = self.inner.handle(entry);
        document.change(init).await?;
        Ok(document)
    }

    /// The document `id`: the local copy if the store has one, otherwise an empty placeholder
    /// that every connected server is asked for ([`Document::exists`] turns true once one
    /// delivers it).
    pub async fn document(&self, id: DocumentId) -> Result<Document, ClientError> {
        let entry = self.inner.entry(id).await?;
        Ok(self.inner.handle(entry))
    }

    /// The document `id`, waiting up to `timeout` for a server to deliver it if the store does
    /// not have it. Fails with [`ClientError::Unavailable`] if every connected server says it
    /// has no such document.
    pub async fn find(&self, id: DocumentId, timeout: Duration) -> Result<Document, ClientError> {
        let document = self.document(id).await?;
        let inner = Arc::clone(&self.inner);
        document
            .entry
            .wait_until("a server to deliver the document", timeout, |state| {
                if state.session.exists() {
                    return Some(Ok(()));
                }
                let connections = inner.connection_ids();
                let refused = !connections.is_empty()
                    && connections.iter().all(|c| state.unavailable.contains(c));
                refused.then_some(Err(ClientError::Unavailable(id)))
            })
            .await?;
        Ok(document)
    }

    /// Every document in the local store.
    pub async fn list(&self) -> Result<Vec<DocumentId>, ClientError> {
        let store = self.inner.store.clone();
        let ids = tokio::task::spawn_blocking(move || store.list())
            .await
            .map_err(|_| ClientError::Closed)??;
        Ok(ids)
    }

    /// Whether any server connection is up.
    pub fn is_connected(&self) -> bool {
        !lock(&self.inner.connections).is_empty()
    }

    /// Why the newest connection attempt failed, if one did.
    pub fn last_connection_error(&self) -> Option<String> {
        lock(&self.inner.last_error).clone()
    }

    /// Goes offline: closes every server connection and stops reconnecting, until
    /// [`connect`](Self::connect) is called again. Documents stay usable; changes made now wait
    /// in the store.
    pub async fn disconnect(&self) {
        let tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        for (stop, _) in &tasks {
            stop.cancel();
        }
        for (_, task) in tasks {
            let _ = task.await;
        }
    }

    /// Closes every connection and waits for the connection tasks to end. Local writes that
    /// were acknowledged to the caller are already durable.
    pub async fn close(&self) {
        self.inner.shutdown.cancel();
        self.disconnect().await;
    }
}

impl Inner {
    pub(crate) fn handle(self: &Arc<Self>, entry: Arc<Entry>) -> Document {
        Document {
            entry,
            inner: Arc::clone(self),
        }
    }

    /// The loaded entry for `id`, loading it from the store (or as an absent placeholder).
    pub(crate) async fn entry(self: &Arc<Self>, id: DocumentId) -> Result<Arc<Entry>, ClientError> {
        if let Some(entry) = lock(&self.entries).get(&id) {
            return Ok(Arc::clone(entry));
        }
        let store = self.store.clone();
        let state = tokio::task::spawn_blocking(move || load_state(&store, id))
            .await
            .map_err(|_| ClientError::Closed)??;
        let rows = state.rows;
        let entry = self.publish_entry(Arc::new(Entry::new(id, state)));
        if rows >= COMPACT_AFTER {
            self.compact(Arc::clone(&entry)).await?;
        }
        Ok(entry)
    }

    /// Makes a freshly built entry the loaded one for its id (unless a racing load got there
    /// first, whose entry wins) and attaches it to every live connection.
    fn publish_entry(&self, entry: Arc<Entry>) -> Arc<Entry> {
        let entry = match lock(&self.entries).entry(entry.id) {
            MapEntry::Occupied(existing) => return Arc::clone(existing.get()),
            MapEntry::Vacant(slot) => Arc::clone(slot.insert(entry)),
        };
        let connections: Vec<_> = lock(&self.connections)
            .iter()
            .map(|(id, outbox)| (*id, Arc::clone(outbox)))
            .collect();
        for (conn, outbox) in connections {
            outbox.attach(&entry, conn);
        }
        entry
    }

    /// Folds the document's change rows into one snapshot, off the async threads.
    async fn compact(&self, entry: Arc<Entry>) -> Result<(), ClientError> {
        let writer = self.writer.clone();
        let pending = tokio::task::spawn_blocking(move || {
            let mut state = entry.lock();
            let mut write = DocumentWrite::new(entry.id);
            write.snapshot = Some(state.session.document().save());
            state.rows = 0;
            writer.queue(write)
        })
        .await
        .map_err(|_| ClientError::Closed)?;
        Ok(durable(pending).await?)
    }

    /// The entry for `id` if it is loaded.
    pub(crate) fn loaded_entry(&self, id: DocumentId) -> Option<Arc<Entry>> {
        lock(&self.entries).get(&id).cloned()
    }

    /// Every loaded entry.
    pub(crate) fn loaded(&self) -> Vec<Arc<Entry>> {
        lock(&self.entries).values().cloned().collect()
    }

    /// Registers a connection that completed its handshake, and wakes everyone waiting on a
    /// document: a wait for a server may now be satisfiable.
    pub(crate) fn add_connection(&self, outbox: Arc<Outbox>) -> ConnectionId {
        let id = ConnectionId(self.next_connection.fetch_add(1, Ordering::Relaxed));
        lock(&self.connections).insert(id, outbox);
        for entry in self.loaded() {
            entry.touch();
        }
        id
    }

    pub(crate) fn remove_connection(&self, id: ConnectionId) {
        lock(&self.connections).remove(&id);
        for entry in self.loaded() {
            let mut state = entry.lock();
            // The client keeps no sync states: a new connection starts afresh.
            let _ = state.session.detach(id);
            state.unavailable.remove(&id);
            state.heard.remove(&id);
            drop(state);
            entry.touch();
        }
    }

    pub(crate) fn connection_ids(&self) -> Vec<ConnectionId> {
        lock(&self.connections).keys().copied().collect()
    }

    /// Storage ids of the servers connected now.
    pub(crate) fn connected_servers(&self) -> Vec<StorageId> {
        lock(&self.connections)
            .values()
            .map(|outbox| outbox.server.clone())
            .collect()
    }

    /// The live connections with the storage id of the server behind each.
    pub(crate) fn connected(&self) -> Vec<(ConnectionId, StorageId)> {
        lock(&self.connections)
            .iter()
            .map(|(id, outbox)| (*id, outbox.server.clone()))
            .collect()
    }

    pub(crate) fn set_last_error(&self, error: Option<String>) {
        *lock(&self.last_error) = error;
    }

    /// Confirms a durable write to the entry's session and wakes the connections that may now
    /// send: those named in `effects` and those the session held back.
    pub(crate) fn confirm(&self, entry: &Entry, effects: Vec<SessionEffect>) {
        let released = entry.lock().session.committed();
        self.route(entry.id, effects.into_iter().chain(released));
    }

    /// Marks the document dirty on every connection a `SyncReady` names.
    pub(crate) fn route(&self, doc: DocumentId, effects: impl IntoIterator<Item = SessionEffect>) {
        let connections = lock(&self.connections);
        for effect in effects {
            if let SessionEffect::SyncReady(conn) = effect
                && let Some(outbox) = connections.get(&conn)
            {
                outbox.mark(doc);
            }
        }
    }
}

/// Builds a loaded document's state from what the store holds.
fn load_state(store: &Store, id: DocumentId) -> Result<EntryState, ClientError> {
    let Some(StoredDocument {
        snapshot,
        changes,
        acknowledged,
        ..
    }) = store.load(id)?
    else {
        return Ok(EntryState {
            session: DocumentSession::absent(),
            acknowledged: Default::default(),
            unavailable: Default::default(),
            heard: Default::default(),
            rows: 0,
        });
    };
    let session = DocumentSession::load(snapshot.as_deref(), changes.iter().map(Vec::as_slice))?;
    Ok(EntryState {
        session,
        acknowledged,
        unavailable: Default::default(),
        heard: Default::default(),
        rows: changes.len(),
    })
}

/// Seconds since the Unix epoch, for stamping changes.
pub(crate) fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .expect("client state lock holders do not panic")
}

#[cfg(test)]
mod tests {
    use automerge::ROOT;
    use automerge::transaction::Transactable;

    use super::*;

    /// Past `COMPACT_AFTER` changes the log is folded into a snapshot in the store; what is
    /// read back holds every change, and numbering goes on after the snapshot.
    #[tokio::test]
    async fn long_histories_are_compacted_without_losing_changes() -> Result<(), ClientError> {
        let dir = tempfile::tempdir().map_err(|_| ClientError::Closed)?;
        let client = Client::open(dir.path(), ClientConfig::default()).await?;
        let doc = client.create(|_| Ok::<_, ClientError>(())).await?;

        // 1. Enough changes to pass the threshold once, and a few more after it.
        let total = COMPACT_AFTER + 20;
        for n in 0..total {
            doc.change(|tx| tx.put(ROOT, "n", n as u64)).await?;
        }

        // 2. The store holds one snapshot and only the rows written after it.
        let stored = client
            .inner
            .store
            .load(doc.id())?
            .ok_or(ClientError::Closed)?;
        assert!(
            stored.snapshot.is_some(),
            "no snapshot after {total} changes"
        );
        assert!(
            stored.changes.len() < 30,
            "{} rows left",
            stored.changes.len()
        );

        // 3. Loading it gives the same version as the live replica.
        let snapshot = stored.snapshot.as_deref();
        let reloaded = DocumentSession::load(snapshot, stored.changes.iter().map(Vec::as_slice))?;
        assert_eq!(reloaded.heads(), doc.heads());
        client.close().await;
        Ok(())
    }
}
