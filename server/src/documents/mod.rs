//! Loaded documents: the registry and one worker task per document.
//!
//! A connection that receives a `sync` or `request` for a document asks the [`Registry`] for
//! the document's [`DocumentHandle`], starting its worker if it is not loaded. Every message for
//! the document then goes through the handle's bounded queue to that one worker, so messages
//! for a document are handled in arrival order while different documents proceed in parallel.
//!
//! A worker with nobody attached unloads itself after the idle timeout. It does so under the
//! registry lock and only when no handle besides the registry's exists, so no message can be
//! sent to a worker that has gone, and two workers never own the same document.

pub mod api;

pub mod purge;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use automerge::{ChangeHash, sync};
use syncline_shared::ids::{DocumentId, PeerId, StorageId};
use syncline_shared::protocol::Ephemeral;
use syncline_shared::session::{ConnectionId, SyncKind};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::task::TaskTracker;

use crate::config::SyncLimits;
use crate::metrics::Metrics;
use crate::net::outbound::Outbound;
use crate::storage::{Storage, Writer};

/// Capacity of a document worker's queue; a full queue makes senders wait (back-pressure on
/// the connections feeding a hot document) instead of growing memory.
pub const DOCUMENT_QUEUE: usize = 1024;

/// A message for a document worker.
#[derive(Debug)]
pub enum DocumentCommand {
    /// Attach a connection; later messages from it are applied with its own sync state.
    Attach {
        conn: ConnectionId,
        peer: PeerId,
        storage_id: Option<StorageId>,
        outbound: Arc<Outbound>,
        /// Who the connection is: the worker decides its access to this document.
        principal: Arc<crate::auth::Principal>,
    },
    /// A decoded sync message from an attached connection. Boxed, like the other large
    /// payloads, so a command stays small: a worker's queue allocates its slots 32 at a time.
    Sync {
        conn: ConnectionId,
        kind: SyncKind,
        message: Box<sync::Message>,
    },
    /// An ephemeral message to relay to the document's other connections.
    Ephemeral {
        conn: ConnectionId,
        message: Box<Ephemeral>,
    },
    /// The connection's writer can send: produce its next sync message, if any.
    Generate {
        conn: ConnectionId,
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
    /// The connection closed.
    Detach { conn: ConnectionId },
    /// An imported feed now blocks exactly these nights for `channel`.
    Import {
        channel: String,
        nights: std::collections::BTreeSet<String>,
    },
    /// A request of the HTTP API, on behalf of `principal`.
    Api {
        principal: Arc<crate::auth::Principal>,
        request: Box<api::ApiRequest>,
        reply: api::ApiReply,
    },
}

/// The cloneable front of one document worker.
#[derive(Debug, Clone)]
pub struct DocumentHandle {
    inner: Arc<HandleInner>,
}

#[derive(Debug)]
struct HandleInner {
    id: DocumentId,
    tx: mpsc::Sender<DocumentCommand>,
    status: Arc<Status>,
}

/// What a worker shows of itself without being asked through its queue.
#[derive(Debug)]
pub(crate) struct Status {
    /// The durable heads, replaced after every turn that changed them.
    heads: watch::Sender<Vec<ChangeHash>>,
    /// Peers attached with read access or more.
    peers: AtomicUsize,
}

impl Status {
    fn new() -> Self {
        Self {
            heads: watch::Sender::new(Vec::new()),
            peers: AtomicUsize::new(0),
        }
    }

    /// Publishes the heads a turn made durable, waking watchers only if they changed.
    pub(crate) fn set_heads(&self, heads: Vec<ChangeHash>) {
        self.heads.send_if_modified(|current| {
            let changed = *current != heads;
            if changed {
                *current = heads;
            }
            changed
        });
    }

    /// Records how many peers are attached; returns the previous count.
    pub(crate) fn set_peers(&self, peers: usize) -> usize {
        self.peers.swap(peers, Ordering::Relaxed)
    }
}

impl DocumentHandle {
    /// The document this handle reaches.
    pub fn id(&self) -> DocumentId {
        self.inner.id
    }

    /// Sends a command, waiting for queue room; false if the worker has stopped.
    pub async fn send(&self, command: DocumentCommand) -> bool {
        self.inner.tx.send(command).await.is_ok()
    }

    /// Carries out an HTTP API request in the document's worker.
    pub async fn request(
        &self,
        principal: Arc<crate::auth::Principal>,
        request: api::ApiRequest,
    ) -> api::ApiResult {
        let (reply, rx) = oneshot::channel();
        let command = DocumentCommand::Api {
            principal,
            request: Box::new(request),
            reply,
        };
        let stopped = || {
            api::ApiError::new(
                api::ErrorKind::Unavailable,
                "the document's worker stopped; try again",
            )
        };
        if !self.send(command).await {
            return Err(stopped());
        }
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Watches the document's durable heads. Holding the handle keeps the document loaded.
    pub fn watch_heads(&self) -> watch::Receiver<Vec<ChangeHash>> {
        self.inner.status.heads.subscribe()
    }

    /// Resolves once the worker has stopped taking commands.
    pub async fn stopped(&self) {
        self.inner.tx.closed().await;
    }

    /// Asks for the connection's next sync message.
    pub async fn generate(&self, conn: ConnectionId) -> Option<Vec<u8>> {
        let (reply, rx) = oneshot::channel();
        if !self.send(DocumentCommand::Generate { conn, reply }).await {
            return None;
        }
        rx.await.ok().flatten()
    }
}

/// Everything a worker needs besides its own document.
#[derive(Debug, Clone)]
pub(crate) struct WorkerContext {
    /// The server's parts.
    pub services: Services,
    /// The author of the server's own changes (conflict resolutions, booking decisions): the
    /// storage id's bytes, so it is stable across restarts and tells those changes apart.
    pub author: automerge::ActorId,
}

/// The server's parts a document worker uses, handed to [`Registry::start`].
#[derive(Debug, Clone)]
pub struct Services {
    /// The server's peer id.
    pub server_peer: PeerId,
    /// The database.
    pub storage: Storage,
    /// The storage writer.
    pub writer: Writer,
    /// Server-wide metrics.
    pub metrics: Arc<Metrics>,
    /// Limits and timeouts.
    pub limits: SyncLimits,
    /// Where committed changes are announced to bridges.
    pub dispatcher: crate::bridges::Dispatcher,
    /// Polls the feeds calendar documents import.
    pub importer: crate::bridges::import::Importer,
}

/// All loaded documents.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<RegistryInner>,
}

#[derive(Debug)]
struct RegistryInner {
    /// Held only to look up, insert or remove one entry; never across an await.
    documents: Mutex<HashMap<DocumentId, DocumentHandle>>,
    context: Mutex<Option<WorkerContext>>,
    tasks: TaskTracker,
}

impl Registry {
    /// An empty registry; [`Registry::start`] must be called before documents are opened.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(RegistryInner {
                documents: Mutex::new(HashMap::new()),
                context: Mutex::new(None),
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// Gives the registry what its workers need.
    pub fn start(&self, services: Services) {
        let id = services.storage.storage_id();
        let author = uuid::Uuid::parse_str(id).map_or_else(
            |_| automerge::ActorId::from(id.as_bytes()),
            |uuid| automerge::ActorId::from(uuid.as_bytes().as_slice()),
        );
        let context = WorkerContext { services, author };
        *self
            .inner
            .context
            .lock()
            .expect("registry context lock is never poisoned") = Some(context);
    }

    /// The handle of a document's worker, starting the worker if the document is not loaded.
    pub fn open(&self, id: DocumentId) -> DocumentHandle {
        let mut documents = self.documents();
        if let Some(handle) = documents.get(&id) {
            return handle.clone();
        }
        let (tx, rx) = mpsc::channel(DOCUMENT_QUEUE);
        let status = Arc::new(Status::new());
        let handle = DocumentHandle {
            inner: Arc::new(HandleInner {
                id,
                tx,
                status: status.clone(),
            }),
        };
        documents.insert(id, handle.clone());
        drop(documents);

        let context = self.context();
        self.inner
            .tasks
            .spawn(worker::run(id, rx, self.clone(), context, status));
        handle
    }

    /// Number of documents currently loaded.
    pub fn loaded(&self) -> usize {
        self.documents().len()
    }

    /// The peers attached to a document, or `None` if it is not loaded.
    pub fn peers_of(&self, id: &DocumentId) -> Option<usize> {
        let documents = self.documents();
        let handle = documents.get(id)?;
        Some(handle.inner.status.peers.load(Ordering::Relaxed))
    }

    /// Removes the worker's entry if nobody but the registry holds its handle. Called by the
    /// worker itself; true means it must stop now.
    pub(crate) fn try_unload(&self, id: DocumentId) -> bool {
        let mut documents = self.documents();
        let Some(handle) = documents.get(&id) else {
            return true;
        };
        if Arc::strong_count(&handle.inner) > 1
            || handle.inner.tx.capacity() < handle.inner.tx.max_capacity()
        {
            return false;
        }
        documents.remove(&id);
        true
    }

    /// Removes the worker's entry unconditionally (after a storage failure).
    pub(crate) fn remove(&self, id: DocumentId) {
        self.documents().remove(&id);
    }

    /// Drops every handle the registry holds and waits for all workers to finish. Workers end
    /// once their queue closes, after making their last writes durable.
    pub async fn shutdown(&self) {
        self.documents().clear();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        // Workers hold their own copies; dropping this one lets the storage writer drain.
        self.inner
            .context
            .lock()
            .expect("registry context lock is never poisoned")
            .take();
    }

    fn documents(&self) -> std::sync::MutexGuard<'_, HashMap<DocumentId, DocumentHandle>> {
        self.inner
            .documents
            .lock()
            .expect("registry lock is never poisoned")
    }

    fn context(&self) -> WorkerContext {
        self.inner
            .context
            .lock()
            .expect("registry context lock is never poisoned")
            .clone()
            .expect("Registry::start runs before any document is opened")
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}
