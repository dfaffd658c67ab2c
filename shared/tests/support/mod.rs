//! A deterministic in-process network around one [`DocumentSession`].
//!
//! The server is the session under test; each client is an `AutoCommit` document with its own
//! sync state toward the server, attached on a [`ConnectionId`]. Nothing moves by itself: sync
//! messages wait in per-connection FIFO queues (the sync protocol assumes in-order delivery), and
//! `SyncReady` effects wait in a ready set until the test, or [`Network::run_until_quiet`],
//! advances them. `Persist` batches are written to a durable log at once but confirmed to the
//! session only by [`Network::commit`], or automatically under [`Durability::Auto`].
//!
//! Every sync message the server generates is checked as it is produced: it may advertise only
//! heads that a confirmed batch of the durable log holds. Clients have fixed actor ids and commit
//! with a logical clock, so every run of a test produces the same hashes and the same bytes.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, Automerge, ChangeHash, ROOT, ReadDoc};
use syncline_shared::ids::{PeerId, StorageId};
use syncline_shared::protocol::Ephemeral;
use syncline_shared::session::{
    ConnectionId, DocumentSession, NewChange, SessionEffect, SessionError, SyncKind,
};

/// Steps after which [`Network::run_until_quiet`] declares a livelock.
pub const MAX_STEPS: usize = 10_000;

/// When the harness confirms `Persist` batches to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Only when the test calls [`Network::commit`] or [`Network::commit_one`].
    Manual,
    /// Also whenever the network would otherwise be quiet.
    Auto,
}

/// One queue that has work in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// The server said a message may be ready for this connection.
    Ready(ConnectionId),
    /// Sync messages from the client at this index to the server.
    ToServer(usize),
    /// Sync messages from the server to the client at this index.
    ToClient(usize),
}

/// A client: its document, its view of the link to the server, and what reached it.
#[derive(Debug)]
pub struct Client {
    pub name: &'static str,
    pub peer: PeerId,
    pub storage_id: Option<StorageId>,
    pub doc: AutoCommit,
    pub state: sync::State,
    pub conn: ConnectionId,
    /// Offline clients neither send nor receive; the server may still think them attached.
    pub online: bool,
    /// The client's own sync state, kept when it leaves if it has a storage id.
    pub saved_state: Option<Vec<u8>>,
    /// Ephemeral messages the server relayed to this client.
    pub ephemeral: Vec<Ephemeral>,
    inbox: VecDeque<Vec<u8>>,
    outbox: VecDeque<Vec<u8>>,
    clock: i64,
}

/// The server session, its clients, the queues between them and the durable log.
#[derive(Debug)]
pub struct Network {
    pub server: DocumentSession,
    pub durability: Durability,
    clients: Vec<Client>,
    ready: BTreeSet<ConnectionId>,
    /// Every change a `Persist` effect handed out, in order.
    log: Vec<NewChange>,
    /// Hashes of the log's changes whose batch was confirmed with `committed()`.
    confirmed: HashSet<ChangeHash>,
    /// Batches written to the log and not yet confirmed, oldest first.
    unconfirmed: VecDeque<Vec<ChangeHash>>,
    /// Sync states the server asked to keep, by storage id.
    saved_states: HashMap<StorageId, Vec<u8>>,
    next_conn: u64,
    /// Server messages checked against the durable log.
    pub advertised_checked: usize,
    /// Encoded sync bytes delivered in either direction.
    pub bytes_delivered: usize,
}

impl Network {
    /// An empty server document and no clients.
    pub fn new(durability: Durability) -> Self {
        Self {
            server: DocumentSession::new(Automerge::new()),
            durability,
            clients: Vec::new(),
            ready: BTreeSet::new(),
            log: Vec::new(),
            confirmed: HashSet::new(),
            unconfirmed: VecDeque::new(),
            saved_states: HashMap::new(),
            next_conn: 0,
            advertised_checked: 0,
            bytes_delivered: 0,
        }
    }

    /// A network whose named clients have all joined with empty documents.
    pub fn with_clients(names: &[&'static str], durability: Durability) -> Self {
        let mut net = Self::new(durability);
        for name in names {
            net.add_client(name, None);
            net.join(name);
        }
        net
    }

    /// Adds an offline client with an empty document and a fixed actor id.
    pub fn add_client(&mut self, name: &'static str, storage_id: Option<&str>) {
        let actor = ActorId::from(name.as_bytes());
        self.clients.push(Client {
            name,
            peer: PeerId(name.to_owned()),
            storage_id: storage_id.map(|s| StorageId(s.to_owned())),
            doc: AutoCommit::new().with_actor(actor),
            state: sync::State::new(),
            conn: ConnectionId(u64::MAX),
            online: false,
            saved_state: None,
            ephemeral: Vec::new(),
            inbox: VecDeque::new(),
            outbox: VecDeque::new(),
            clock: 0,
        });
    }

    /// Connects a client on a new connection and queues its first message, as a `request` or
    /// `sync` would open the exchange. Sync states saved by an earlier connection are resumed.
    pub fn join(&mut self, name: &str) -> ConnectionId {
        let conn = ConnectionId(self.next_conn);
        self.next_conn += 1;
        let index = self.index(name);
        let client = &mut self.clients[index];
        let server_saved = client
            .storage_id
            .as_ref()
            .and_then(|id| self.saved_states.get(id));
        self.server.attach(
            conn,
            client.peer.clone(),
            client.storage_id.clone(),
            server_saved.map(Vec::as_slice),
        );

        client.state = client
            .saved_state
            .as_deref()
            .map(|bytes| sync::State::decode(bytes).expect("the client encoded its own state"))
            .unwrap_or_default();
        client.conn = conn;
        client.online = true;
        self.client_send(index);
        conn
    }

    /// Disconnects a client cleanly: the server detaches the connection, and a client with a
    /// storage id keeps its own sync state. Returns the session's effect for the detach.
    pub fn leave(&mut self, name: &str) -> Option<SessionEffect> {
        let index = self.index(name);
        self.go_offline(name);
        let client = &mut self.clients[index];
        if client.storage_id.is_some() {
            client.saved_state = Some(client.state.encode());
        }
        let effect = self.server.detach(client.conn);
        self.apply(effect.clone().into_iter().collect());
        effect
    }

    /// Cuts a client off without the server noticing: queued messages both ways are lost and
    /// nothing else is delivered until it reconnects.
    pub fn go_offline(&mut self, name: &str) {
        let client = self.client_mut(name);
        client.online = false;
        client.inbox.clear();
        client.outbox.clear();
    }

    /// Reconnects a client on a new connection, as a client does after a dropped socket: what
    /// was in flight is lost, the server detaches the stale connection, and the client starts a
    /// fresh sync state (the server resumes one only if the peer's storage id left one).
    pub fn reconnect(&mut self, name: &str) -> ConnectionId {
        self.go_offline(name);
        let stale = self.client(name).conn;
        let effect = self.server.detach(stale);
        self.apply(effect.into_iter().collect());
        self.client_mut(name).saved_state = None;
        self.join(name)
    }

    /// Sets `key` to `value` in a client's document, commits at its next logical time, and
    /// queues the resulting sync message.
    pub fn edit(&mut self, name: &str, key: &str, value: &str) {
        let index = self.index(name);
        let client = &mut self.clients[index];
        client.clock += 1;
        client
            .doc
            .put(ROOT, key, value)
            .expect("putting a string on the root map succeeds");
        client
            .doc
            .commit_with(CommitOptions::default().with_time(client.clock));
        self.client_send(index);
    }

    /// Gives a sync message to the server directly on a client's connection, as if it had
    /// arrived on that socket, and carries out the effects. Returns them for inspection.
    pub fn inject(
        &mut self,
        name: &str,
        message: sync::Message,
    ) -> Result<Vec<SessionEffect>, SessionError> {
        let conn = self.client(name).conn;
        let effects = self.server.receive(conn, SyncKind::Sync, message)?;
        self.apply(effects.clone());
        Ok(effects)
    }

    /// Gives an ephemeral message to the server on a client's connection, delivers the relays,
    /// and returns the effects sorted by target connection.
    pub fn ephemeral(&mut self, name: &str, message: Ephemeral) -> Vec<SessionEffect> {
        let conn = self.client(name).conn;
        let mut effects = self.server.ephemeral(conn, message);
        effects.sort_by_key(|effect| match effect {
            SessionEffect::Relay { to, .. } => Some(*to),
            _ => None,
        });
        self.apply(effects.clone());
        effects
    }

    /// Queues with work, in a fixed order: ready connections, then each client's uplink, then
    /// each client's downlink.
    pub fn queues(&self) -> Vec<Queue> {
        let ready = self.ready.iter().copied().map(Queue::Ready);
        let up = self
            .indexed()
            .filter(|(_, c)| !c.outbox.is_empty())
            .map(|(i, _)| i);
        let down = self
            .indexed()
            .filter(|(_, c)| !c.inbox.is_empty())
            .map(|(i, _)| i);
        ready
            .chain(up.map(Queue::ToServer))
            .chain(down.map(Queue::ToClient))
            .collect()
    }

    /// Advances the queue at `pick` (modulo the number of busy queues) by one item.
    /// Returns false when every queue is empty.
    pub fn step(&mut self, pick: usize) -> bool {
        let queues = self.queues();
        if queues.is_empty() {
            return false;
        }
        match queues[pick % queues.len()] {
            Queue::Ready(conn) => self.server_send(conn),
            Queue::ToServer(index) => self.deliver_to_server(index),
            Queue::ToClient(index) => self.deliver_to_client(index),
        }
        true
    }

    /// Steps until no queue has work (confirming batches too, under [`Durability::Auto`]).
    ///
    /// Panics after [`MAX_STEPS`]: a sync that never settles is a livelock to report.
    pub fn run_until_quiet(&mut self) {
        for _ in 0..MAX_STEPS {
            let auto = self.durability == Durability::Auto;
            let busy = self.step(0) || (auto && self.commit_one());
            if !busy {
                return;
            }
        }
        panic!(
            "network still busy after {MAX_STEPS} steps: queues {:?}, {} batches unconfirmed",
            self.queues(),
            self.unconfirmed.len()
        );
    }

    /// Confirms the oldest unconfirmed batch; false if there is none.
    pub fn commit_one(&mut self) -> bool {
        let Some(batch) = self.unconfirmed.pop_front() else {
            return false;
        };
        self.confirmed.extend(batch);
        let effects = self.server.committed();
        self.apply(effects);
        true
    }

    /// Confirms every unconfirmed batch.
    pub fn commit(&mut self) {
        while self.commit_one() {}
    }

    /// Every change handed out for persistence, confirmed or not.
    pub fn log(&self) -> &[NewChange] {
        &self.log
    }

    /// The server process dies and restarts from the durable log: unconfirmed batches are lost,
    /// every socket drops, and only confirmed changes and saved sync states survive.
    pub fn restart_server(&mut self) {
        let names: Vec<&'static str> = self.clients.iter().map(|c| c.name).collect();
        for name in names {
            self.go_offline(name);
        }
        self.ready.clear();
        self.unconfirmed.clear();
        self.log
            .retain(|change| self.confirmed.contains(&change.hash));

        let chunks = self.log.iter().map(|change| change.bytes.as_slice());
        self.server = DocumentSession::load(None, chunks).expect("the durable log loads");
    }

    /// Whether a `committed()` call covered this change.
    pub fn is_confirmed(&self, hash: &ChangeHash) -> bool {
        self.confirmed.contains(hash)
    }

    pub fn client(&self, name: &str) -> &Client {
        &self.clients[self.index(name)]
    }

    pub fn client_mut(&mut self, name: &str) -> &mut Client {
        let index = self.index(name);
        &mut self.clients[index]
    }

    pub fn heads(&mut self, name: &str) -> Vec<ChangeHash> {
        self.client_mut(name).doc.get_heads()
    }

    /// The string a client's document holds at `key`, if any.
    pub fn value(&mut self, name: &str, key: &str) -> Option<String> {
        let (value, _) = self.client_mut(name).doc.get(ROOT, key).ok()??;
        value.into_string().ok()
    }

    /// Asserts that every online client has the server's heads and content.
    pub fn assert_converged(&mut self) {
        let heads = self.server.heads();
        let content = self.server.document().hydrate(None);
        for client in self.clients.iter_mut().filter(|c| c.online) {
            assert_eq!(
                client.doc.get_heads(),
                heads,
                "{} has other heads",
                client.name
            );
            let theirs = client.doc.document().hydrate(None);
            assert_eq!(theirs, content, "{} has other content", client.name);
        }
    }

    fn index(&self, name: &str) -> usize {
        self.clients
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("no client named {name}"))
    }

    fn indexed(&self) -> impl Iterator<Item = (usize, &Client)> {
        self.clients.iter().enumerate()
    }

    /// The client asks its document for the next message toward the server; an offline
    /// client's message is lost, as it would be on a dead socket.
    fn client_send(&mut self, index: usize) {
        let client = &mut self.clients[index];
        let Some(message) = client.doc.sync().generate_sync_message(&mut client.state) else {
            return;
        };
        if client.online {
            client.outbox.push_back(message.encode());
        }
    }

    fn server_send(&mut self, conn: ConnectionId) {
        self.ready.remove(&conn);
        let Some(bytes) = self.server.generate(conn) else {
            return;
        };
        let message = sync::Message::decode(&bytes).expect("the server encodes valid messages");
        self.assert_durable(&message);

        let target = self.clients.iter_mut().find(|c| c.online && c.conn == conn);
        if let Some(client) = target {
            client.inbox.push_back(bytes);
        }
    }

    /// The invariant under test: nothing the server says it has is ahead of the durable log,
    /// neither its heads nor the heads it claims to share with the peer.
    fn assert_durable(&mut self, message: &sync::Message) {
        self.advertised_checked += 1;
        let last_sync = message.have.iter().flat_map(|have| &have.last_sync);
        for head in message.heads.iter().chain(last_sync) {
            assert!(
                self.confirmed.contains(head),
                "server advertised head {head} before it was confirmed durable"
            );
        }
    }

    /// A kept sync state is written at once and read back after a restart, when it tells the
    /// peer what the server shares with it: it too may name only confirmed changes.
    fn assert_durable_state(&self, state: &[u8]) {
        let state = sync::State::decode(state).expect("the session encodes valid states");
        for head in &state.shared_heads {
            assert!(
                self.confirmed.contains(head),
                "server asked to keep a sync state that counts unconfirmed change {head} as shared"
            );
        }
    }

    fn deliver_to_server(&mut self, index: usize) {
        let client = &mut self.clients[index];
        let bytes = client
            .outbox
            .pop_front()
            .expect("queues() lists only busy queues");
        self.bytes_delivered += bytes.len();
        let message = sync::Message::decode(&bytes).expect("clients encode valid messages");
        let effects = self
            .server
            .receive(client.conn, SyncKind::Sync, message)
            .expect("the session accepts an honest client's message");
        self.apply(effects);
    }

    fn deliver_to_client(&mut self, index: usize) {
        let client = &mut self.clients[index];
        let bytes = client
            .inbox
            .pop_front()
            .expect("queues() lists only busy queues");
        self.bytes_delivered += bytes.len();
        let message = sync::Message::decode(&bytes).expect("checked when the server sent it");
        client
            .doc
            .sync()
            .receive_sync_message(&mut client.state, message)
            .expect("the client accepts the server's message");
        self.client_send(index);
    }

    /// Carries out the session's effects.
    fn apply(&mut self, effects: Vec<SessionEffect>) {
        for effect in effects {
            match effect {
                SessionEffect::Persist(changes) => {
                    self.unconfirmed
                        .push_back(changes.iter().map(|c| c.hash).collect());
                    self.log.extend(changes);
                }
                SessionEffect::SyncReady(conn) => {
                    self.ready.insert(conn);
                }
                SessionEffect::Relay { to, message } => {
                    let target = self.clients.iter_mut().find(|c| c.online && c.conn == to);
                    if let Some(client) = target {
                        client.ephemeral.push(message);
                    }
                }
                SessionEffect::SaveSyncState { storage_id, state } => {
                    self.assert_durable_state(&state);
                    self.saved_states.insert(storage_id, state);
                }
                SessionEffect::Unavailable(conn) => {
                    panic!("the harness document always exists, yet {conn} was told unavailable")
                }
                SessionEffect::Created => panic!("the harness document exists from the start"),
                SessionEffect::RefusedWrite(conn) => {
                    panic!("no harness client is read-only, yet {conn}'s changes were refused")
                }
            }
        }
    }
}
