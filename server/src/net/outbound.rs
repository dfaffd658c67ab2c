//! What one connection still has to send, bounded by design.
//!
//! Sync messages are state-based: the newest one supersedes any older unsent one. So instead of
//! queueing messages, a document worker only marks the document *ready* here, at most once per
//! (connection, document); the connection's writer asks the worker for the message when the
//! socket can take it. A slow peer therefore receives fewer, larger messages, and its backlog
//! is one entry per attached document, never a growing queue.
//!
//! Messages that are not state (ephemeral relays, `doc-unavailable`, `error`) go through a small
//! bounded queue; an ephemeral message that does not fit is dropped, which is what ephemeral
//! means.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use syncline_shared::ids::DocumentId;
use syncline_shared::protocol::Message;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// Capacity of a connection's queue of non-sync messages.
pub const CONTROL_QUEUE: usize = 256;

/// Why the server closes a connection on its own initiative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The same peer id joined again on another connection.
    Replaced,
    /// The document's storage failed; the peer must resync with a fresh worker.
    StorageFailed,
    /// The server is shutting down.
    Shutdown,
    /// The peer sent something invalid; an `error` message says what.
    InvalidInput,
    /// The connection's token expired; an `error` message says so.
    Expired,
    /// The peer closed its side or left.
    Finished,
}

/// The shared front of one connection's outbound side.
#[derive(Debug)]
pub struct Outbound {
    /// Documents with a sync message possibly waiting, in the order they became ready. The
    /// mutex is held only to push or pop one entry; never across an await.
    ready: Mutex<ReadySet>,
    notify: Notify,
    control: mpsc::Sender<Message>,
    close: CancellationToken,
    close_reason: Mutex<Option<CloseReason>>,
}

#[derive(Debug, Default)]
struct ReadySet {
    order: VecDeque<DocumentId>,
    members: HashSet<DocumentId>,
}

/// The receiving half, owned by the connection's writer.
#[derive(Debug)]
pub struct OutboundReceiver {
    /// Non-sync messages to send, in order.
    pub control: mpsc::Receiver<Message>,
}

impl Outbound {
    /// Creates the shared front and the writer's receiving half.
    pub fn new() -> (Self, OutboundReceiver) {
        let (control, rx) = mpsc::channel(CONTROL_QUEUE);
        let outbound = Self {
            ready: Mutex::new(ReadySet::default()),
            notify: Notify::new(),
            control,
            close: CancellationToken::new(),
            close_reason: Mutex::new(None),
        };
        (outbound, OutboundReceiver { control: rx })
    }

    /// Marks a document as possibly having a sync message for this connection.
    pub fn sync_ready(&self, document: DocumentId) {
        let inserted = {
            let mut ready = self
                .ready
                .lock()
                .expect("outbound ready lock is never poisoned");
            let inserted = ready.members.insert(document);
            if inserted {
                ready.order.push_back(document);
            }
            inserted
        };
        if inserted {
            self.notify.notify_one();
        }
    }

    /// Takes the oldest ready document.
    pub fn next_ready(&self) -> Option<DocumentId> {
        let mut ready = self
            .ready
            .lock()
            .expect("outbound ready lock is never poisoned");
        let document = ready.order.pop_front()?;
        ready.members.remove(&document);
        Some(document)
    }

    /// Waits until some document becomes ready (returns at once if one already is).
    pub async fn ready_changed(&self) {
        self.notify.notified().await;
    }

    /// Queues a non-sync message; false if the queue is full or the connection is gone.
    pub fn try_send(&self, message: Message) -> bool {
        self.control.try_send(message).is_ok()
    }

    /// Queues a message that must not be dropped, waiting for room.
    pub async fn send(&self, message: Message) -> bool {
        self.control.send(message).await.is_ok()
    }

    /// Asks the connection to close.
    pub fn close(&self, reason: CloseReason) {
        self.close_reason
            .lock()
            .expect("outbound close lock is never poisoned")
            .get_or_insert(reason);
        self.close.cancel();
    }

    /// Resolves once somebody asked the connection to close.
    pub async fn closed(&self) {
        self.close.cancelled().await;
    }

    /// Why the connection was asked to close, if it was.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason
            .lock()
            .expect("outbound close lock is never poisoned")
            .clone()
    }
}
