//! The per-document sync session: one Automerge document and everyone attached to it.
//!
//! A [`DocumentSession`] is the sans-IO heart of a document worker. The worker feeds it events
//! (a peer attached, a sync message arrived, the storage writer committed) and carries out the
//! effects it returns (make these changes durable, a sync message is ready for that peer, relay
//! this ephemeral message). It never touches a socket, a clock or a disk, so tests drive it
//! deterministically with many peers in one thread.
//!
//! Durable acknowledgement is enforced here: while any change the session handed out for
//! persistence is not yet confirmed by [`DocumentSession::committed`], [`generate`] returns
//! nothing, so no sync message can advertise heads that could still be lost.
//!
//! [`generate`]: DocumentSession::generate

use std::collections::{HashMap, VecDeque};
use std::fmt;

use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transaction};
use automerge::{Automerge, AutomergeError, ChangeHash};

use crate::ids::{PeerId, StorageId};
use crate::protocol::Ephemeral;

/// How many (sender, session) pairs a document remembers for ephemeral de-duplication.
///
/// Clients re-send every ephemeral message they receive, so forgetting a pair lets at most one
/// repeat through; the bound keeps a document with many short presence sessions from growing.
pub const EPHEMERAL_MEMORY: usize = 1024;

/// Identifies one WebSocket connection. Sync state belongs to a connection, not to a peer id,
/// so a peer that reconnects (or a duplicate join that replaces a connection) starts afresh.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn-{}", self.0)
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A change that arrived through sync and must be made durable before anyone hears of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChange {
    /// The change's content address.
    pub hash: ChangeHash,
    /// The author (Automerge actor id) bytes.
    pub author: Vec<u8>,
    /// Seconds since the epoch as stamped by the author.
    pub timestamp: i64,
    /// The change chunk, loadable by `Automerge::load_incremental`.
    pub bytes: Vec<u8>,
}

/// Whether a sync message may create the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// `sync`: the peer holds a copy; a document nobody has is created from it.
    Sync,
    /// `request`: the peer is looking for the document; if nobody has it, it is unavailable.
    Request,
}

/// What the caller must do after an event.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEffect {
    /// Make these changes durable, then call [`DocumentSession::committed`].
    Persist(Vec<NewChange>),
    /// A sync message may be waiting for this connection: call [`DocumentSession::generate`]
    /// when its socket can take one.
    SyncReady(ConnectionId),
    /// Send this ephemeral message (its `targetId` already rewritten) to the connection.
    Relay {
        to: ConnectionId,
        message: Ephemeral,
    },
    /// Keep this encoded sync state for a peer with durable storage, to resume it later.
    SaveSyncState {
        storage_id: StorageId,
        state: Vec<u8>,
    },
    /// Nobody has the document the connection asked for: answer `doc-unavailable`. The
    /// connection stays attached and receives the document if somebody uploads it later.
    Unavailable(ConnectionId),
    /// The document did not exist and now does: its first changes are in the accompanying
    /// [`SessionEffect::Persist`].
    Created,
    /// A read-only connection sent changes; they were not applied.
    RefusedWrite(ConnectionId),
}

/// A sync message that could not be applied; the sending connection is at fault.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The message names changes that Automerge refused.
    #[error("sync message could not be applied: {0}")]
    Apply(#[from] AutomergeError),
    /// The message carries a chunk type no peer needs to send (see [`crate::chunks`]).
    #[error("sync message refused: {0}")]
    Chunk(#[from] crate::chunks::ChunkError),
    /// The connection sent sync data without attaching first; an internal ordering bug.
    #[error("connection {0} is not attached to this document")]
    NotAttached(ConnectionId),
}

/// One attached connection.
#[derive(Debug)]
struct Attached {
    peer: PeerId,
    /// Set for peers that keep their own copy durably; their sync state is worth saving.
    storage_id: Option<StorageId>,
    state: sync::State,
    /// The heads of the last sync message sent to this connection.
    advertised: Vec<ChangeHash>,
}

/// A document and the sync state of every connection attached to it.
#[derive(Debug)]
pub struct DocumentSession {
    doc: Automerge,
    /// False for a document nobody has uploaded yet.
    exists: bool,
    attached: HashMap<ConnectionId, Attached>,
    /// Persist batches handed out and not yet confirmed.
    unconfirmed: usize,
    /// Connections that asked for or may need a message while changes were unconfirmed.
    waiting: Vec<ConnectionId>,
    /// Sync states of peers that left while changes were unconfirmed: their shared heads may
    /// name changes a crash could still lose, so they are released only after the commit.
    held_saves: Vec<SessionEffect>,
    ephemeral_seen: HashMap<(PeerId, String), u64>,
    ephemeral_order: VecDeque<(PeerId, String)>,
}

impl DocumentSession {
    /// A session over an existing document.
    pub fn new(doc: Automerge) -> Self {
        Self {
            doc,
            exists: true,
            attached: HashMap::new(),
            unconfirmed: 0,
            waiting: Vec::new(),
            held_saves: Vec::new(),
            ephemeral_seen: HashMap::new(),
            ephemeral_order: VecDeque::new(),
        }
    }

    /// A session for a document nobody has: `request`s are answered unavailable until a peer
    /// uploads it with `sync`.
    pub fn absent() -> Self {
        Self {
            exists: false,
            ..Self::new(Automerge::new())
        }
    }

    /// Whether the document exists (was loaded, or uploaded by a peer).
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// Rebuilds a document from an optional snapshot and the change chunks logged after it.
    pub fn load<'a>(
        snapshot: Option<&[u8]>,
        changes: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, AutomergeError> {
        let mut doc = match snapshot {
            Some(bytes) => Automerge::load(bytes)?,
            None => Automerge::new(),
        };
        for chunk in changes {
            doc.load_incremental(chunk)?;
        }
        Ok(Self::new(doc))
    }

    /// The document, for reads such as saving a snapshot.
    pub fn document(&self) -> &Automerge {
        &self.doc
    }

    /// Sets the author of this replica's own changes ([`change`](Self::change)). A server uses
    /// one stable author, so its changes are told apart from clients' and keep one sequence.
    pub fn set_author(&mut self, author: automerge::ActorId) {
        self.doc.set_actor(author);
    }

    /// The document's current heads (including changes not yet confirmed durable).
    pub fn heads(&self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// Connections currently attached.
    pub fn attached(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.attached.keys().copied()
    }

    /// Whether nobody is attached.
    pub fn is_idle(&self) -> bool {
        self.attached.is_empty()
    }

    /// Whether changes handed out for persistence still await confirmation.
    pub fn has_unconfirmed(&self) -> bool {
        self.unconfirmed > 0
    }

    /// Attaches a connection. `saved_state` is a sync state the peer's storage id left behind on
    /// an earlier connection; it lets the first exchange skip what both sides already share.
    pub fn attach(
        &mut self,
        conn: ConnectionId,
        peer: PeerId,
        storage_id: Option<StorageId>,
        saved_state: Option<&[u8]>,
    ) {
        let state = saved_state
            .and_then(|bytes| sync::State::decode(bytes).ok())
            .unwrap_or_default();
        self.attached.insert(
            conn,
            Attached {
                peer,
                storage_id,
                state,
                advertised: Vec::new(),
            },
        );
    }

    /// Makes an attached connection read-only (or writable again): its messages' changes are
    /// never applied, so they are neither stored nor relayed, while it still receives every
    /// change. Automerge's sync flags tell the peer, so it stops offering them. A read-only
    /// connection cannot create the document either: its `sync` is answered like a `request`.
    pub fn set_read_only(&mut self, conn: ConnectionId, read_only: bool) {
        if let Some(attached) = self.attached.get_mut(&conn) {
            attached.state.set_read_only(read_only);
        }
    }

    /// Detaches a connection; returns the sync state to keep if its peer has durable storage.
    ///
    /// While changes are unconfirmed the state is held back and comes out of
    /// [`committed`](Self::committed) instead, so a saved state never counts as shared a change
    /// that is not durable.
    pub fn detach(&mut self, conn: ConnectionId) -> Option<SessionEffect> {
        self.waiting.retain(|c| *c != conn);
        let attached = self.attached.remove(&conn)?;
        let storage_id = attached.storage_id?;
        let save = SessionEffect::SaveSyncState {
            storage_id,
            state: attached.state.encode(),
        };
        if self.unconfirmed > 0 {
            self.held_saves.push(save);
            return None;
        }
        Some(save)
    }

    /// Applies a `sync` or `request` message from an attached connection.
    ///
    /// New changes come back as one [`SessionEffect::Persist`]; every connection whose view may
    /// have moved (the sender always, everyone else when the heads moved) gets a
    /// [`SessionEffect::SyncReady`], to be honoured once the changes are durable. A `request` for
    /// a document nobody has gives [`SessionEffect::Unavailable`].
    pub fn receive(
        &mut self,
        conn: ConnectionId,
        kind: SyncKind,
        message: sync::Message,
    ) -> Result<Vec<SessionEffect>, SessionError> {
        for chunk in message.changes.iter() {
            crate::chunks::check(chunk)?;
        }
        let attached = self
            .attached
            .get_mut(&conn)
            .ok_or(SessionError::NotAttached(conn))?;
        let read_only = attached.state.read_only;
        let refused = read_only && !message.changes.is_empty();
        let kind = if read_only { SyncKind::Request } else { kind };
        let before = self.doc.get_heads();
        self.doc
            .receive_sync_message(&mut attached.state, message)?;
        let after = self.doc.get_heads();

        let mut effects = Vec::new();
        if refused {
            effects.push(SessionEffect::RefusedWrite(conn));
        }
        if before == after {
            // The sync state now knows what the asker has, so if the document is uploaded
            // later, the first message the asker is sent already carries it.
            let answer = match self.exists || kind == SyncKind::Sync {
                true => SessionEffect::SyncReady(conn),
                false => SessionEffect::Unavailable(conn),
            };
            effects.push(answer);
            return Ok(effects);
        }
        let changes = self.new_changes_since(&before);
        if !changes.is_empty() {
            if !self.exists {
                // Peers that asked before anyone had the document are attached and get it now.
                self.exists = true;
                effects.push(SessionEffect::Created);
            }
            self.unconfirmed += 1;
            effects.push(SessionEffect::Persist(changes));
        }
        effects.extend(self.attached.keys().map(|c| SessionEffect::SyncReady(*c)));
        Ok(effects)
    }

    /// Makes a change of this replica's own: `f` runs in one Automerge transaction committed
    /// with `options`, which should carry the current time (seconds since the epoch; Automerge's
    /// default of 0 would lose every timestamp comparison). The result is `f`'s value and, if
    /// `f` wrote anything, the same effects as a received change: one
    /// [`SessionEffect::Persist`] and a [`SessionEffect::SyncReady`] for every attached
    /// connection. If `f` fails, nothing is changed and its error is returned.
    pub fn change<O, E>(
        &mut self,
        options: CommitOptions,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<O, E>,
    ) -> Result<(O, Vec<SessionEffect>), E> {
        let before = self.doc.get_heads();
        let options = |_: &O| options;
        let success = self
            .doc
            .transact_with(options, f)
            .map_err(|failure| failure.error)?;
        let mut effects = Vec::new();
        if success.hash.is_some() {
            self.exists = true;
            self.unconfirmed += 1;
            effects.push(SessionEffect::Persist(self.new_changes_since(&before)));
            effects.extend(self.attached.keys().map(|c| SessionEffect::SyncReady(*c)));
        }
        Ok((success.result, effects))
    }

    fn new_changes_since(&self, before: &[ChangeHash]) -> Vec<NewChange> {
        self.doc
            .get_changes(before)
            .into_iter()
            .map(|change| NewChange {
                hash: change.hash(),
                author: change.actor_id().to_bytes().to_vec(),
                timestamp: change.timestamp(),
                bytes: change.raw_bytes().to_vec(),
            })
            .collect()
    }

    /// Confirms that the oldest outstanding [`SessionEffect::Persist`] is durable.
    ///
    /// Once nothing is outstanding, every connection that was held back is ready again.
    pub fn committed(&mut self) -> Vec<SessionEffect> {
        self.unconfirmed = self.unconfirmed.saturating_sub(1);
        if self.unconfirmed > 0 {
            return Vec::new();
        }
        let mut waiting = std::mem::take(&mut self.waiting);
        waiting.sort_unstable();
        waiting.dedup();
        let ready = waiting.into_iter().map(SessionEffect::SyncReady);
        std::mem::take(&mut self.held_saves)
            .into_iter()
            .chain(ready)
            .collect()
    }

    /// The next sync message for a connection, encoded, if it needs one now.
    ///
    /// Returns `None` while changes are unconfirmed (the connection is remembered and reported
    /// ready again by [`committed`](Self::committed)), when the connection is not attached, or
    /// when the peer is up to date and has been told the current heads.
    ///
    /// Automerge stays silent when the peer's last message already named our heads, but for a
    /// peer those heads are only acknowledged (durable here) once we advertise them: if a peer
    /// sends its changes and then, before our answer, a message naming the merged heads, the
    /// changes' commit would otherwise never be announced. So a connection that has not been
    /// sent the current heads always gets a message.
    pub fn generate(&mut self, conn: ConnectionId) -> Option<Vec<u8>> {
        if self.unconfirmed > 0 {
            if self.attached.contains_key(&conn) {
                self.waiting.push(conn);
            }
            return None;
        }
        let attached = self.attached.get_mut(&conn)?;
        let heads = self.doc.get_heads();
        if attached.advertised != heads {
            attached.state.last_sent_heads.clear();
        }
        let message = self.doc.generate_sync_message(&mut attached.state)?;
        attached.advertised.clone_from(&message.heads);
        Some(message.encode())
    }

    /// Relays an ephemeral message from `from` to every other attached connection, unless the
    /// same (sender, session) was already seen with an equal or higher count.
    pub fn ephemeral(&mut self, from: ConnectionId, message: Ephemeral) -> Vec<SessionEffect> {
        if !self.remember_ephemeral(&message) {
            return Vec::new();
        }
        self.attached
            .iter()
            .filter(|(conn, attached)| **conn != from && attached.peer != message.sender_id)
            .map(|(conn, attached)| SessionEffect::Relay {
                to: *conn,
                message: Ephemeral {
                    target_id: attached.peer.clone(),
                    ..message.clone()
                },
            })
            .collect()
    }

    /// Records the message's count; false if it is a repeat.
    fn remember_ephemeral(&mut self, message: &Ephemeral) -> bool {
        let key = (message.sender_id.clone(), message.session_id.clone());
        match self.ephemeral_seen.get_mut(&key) {
            Some(seen) if *seen >= message.count => false,
            Some(seen) => {
                *seen = message.count;
                true
            }
            None => {
                if self.ephemeral_order.len() >= EPHEMERAL_MEMORY
                    && let Some(oldest) = self.ephemeral_order.pop_front()
                {
                    self.ephemeral_seen.remove(&oldest);
                }
                self.ephemeral_order.push_back(key.clone());
                self.ephemeral_seen.insert(key, message.count);
                true
            }
        }
    }
}
