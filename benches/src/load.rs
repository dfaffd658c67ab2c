//! One concurrency level: N peers, each its own WebSocket connection and tokio task, each in a
//! loop of "make one change, wait for the server's durable acknowledgement".
//!
//! A level runs in two phases so that the metrics scrape in between sees none of the setup:
//! [`prepare`] connects every peer and gives it its document (created and acknowledged, or, with
//! a shared document, opened and synced), and returns once all are ready; [`Prepared::run`] then
//! releases them at the same instant and collects their latencies. Every peer has exactly one
//! change in flight, so N peers offer the server at most N changes at a time.
//!
//! Every wait is bounded: setup by [`SETUP_TIMEOUT`], each acknowledgement by [`ACK_TIMEOUT`],
//! and the whole run by its duration plus those.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use automerge::ROOT;
use automerge::transaction::Transactable;
use syncline_shared::ids::DocumentId;
use syncline_tests::peer::RawPeer;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How long connecting every peer of a level and giving it its document may take. Peers that
/// are ready early sit idle until the start, so this stays below the server's ping window
/// (three 5 s intervals by default), after which an idle peer is disconnected.
const SETUP_TIMEOUT: Duration = Duration::from_secs(12);

/// How long one change may wait for its acknowledgement before the peer counts as failed.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// How long closing a peer may take after its last change (the peer bounds its own handshake).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// What one level asks for.
#[derive(Debug, Clone)]
pub struct Level {
    /// Concurrent peers, each a connection and a task.
    pub peers: usize,
    /// All peers edit one document rather than one each.
    pub shared_doc: bool,
    /// How long the peers keep changing.
    pub duration: Duration,
    /// A peer stops after this many acknowledged changes even if time remains.
    pub max_changes: u64,
}

impl Level {
    /// Number of documents the level edits.
    pub fn documents(&self) -> usize {
        if self.shared_doc { 1 } else { self.peers }
    }
}

/// What one peer measured.
#[derive(Debug, Default)]
struct PeerRun {
    /// Time from starting each change to its acknowledgement.
    latencies: Vec<Duration>,
    /// When its last change was acknowledged, if any was.
    last_ack: Option<Instant>,
}

/// What a level measured, over all its peers.
#[derive(Debug)]
pub struct Outcome {
    /// Every acknowledged change's latency, in no particular order.
    pub latencies: Vec<Duration>,
    /// From the start signal to the last acknowledgement.
    pub elapsed: Duration,
    /// Peers that failed, with their errors; the others' figures are still in `latencies`.
    pub errors: Vec<anyhow::Error>,
}

/// A level whose peers are connected, hold their documents and wait for the start.
#[derive(Debug)]
pub struct Prepared {
    level: Level,
    tasks: JoinSet<Result<PeerRun>>,
    start: watch::Sender<Option<Instant>>,
}

/// How a peer gets its document before the start.
#[derive(Debug)]
enum Setup {
    /// Connect and create a document of its own.
    Create,
    /// Connect and open the shared document.
    Open(DocumentId),
    /// Already connected: the peer that created the shared document.
    Ready(Box<RawPeer>, DocumentId),
}

/// Connects the level's peers and waits until each holds its document.
pub async fn prepare(url: &str, level: &Level, name: &str) -> Result<Prepared> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let (ready_tx, ready_rx) = mpsc::channel(level.peers.max(1));
    let (start, start_rx) = watch::channel(None);
    let mut tasks = JoinSet::new();

    let mut setups: Vec<Setup> = Vec::with_capacity(level.peers);
    if level.shared_doc {
        let (leader, doc) = create_shared(url, &format!("{name}-0"))
            .await
            .context("create the shared document")?;
        setups.push(Setup::Ready(Box::new(leader), doc));
        setups.extend((1..level.peers).map(|_| Setup::Open(doc)));
    } else {
        setups.extend((0..level.peers).map(|_| Setup::Create));
    }

    for (index, setup) in setups.into_iter().enumerate() {
        let task = PeerTask {
            url: url.to_owned(),
            peer_id: format!("{name}-{index}"),
            key: format!("p{index}"),
            max_changes: level.max_changes,
        };
        tasks.spawn(task.run(setup, ready_tx.clone(), start_rx.clone()));
    }
    drop(ready_tx);

    let prepared = Prepared {
        level: level.clone(),
        tasks,
        start,
    };
    prepared.wait_ready(ready_rx, deadline).await
}

/// Connects the peer that creates the shared document and waits until the server has it.
async fn create_shared(url: &str, peer_id: &str) -> Result<(RawPeer, DocumentId)> {
    let mut peer = RawPeer::connect(url, peer_id).await?;
    let doc = peer.create_document(|_| {}).await?;
    let heads = peer.heads(doc);
    peer.wait_acknowledged(doc, &heads, SETUP_TIMEOUT).await?;
    Ok((peer, doc))
}

impl Prepared {
    /// Returns once every peer reported ready; on a failure or timeout, stops the others and
    /// returns the first peer's error.
    async fn wait_ready(self, mut ready: mpsc::Receiver<()>, deadline: Instant) -> Result<Self> {
        let mut count = 0;
        while count < self.level.peers {
            match tokio::time::timeout_at(deadline, ready.recv()).await {
                Ok(Some(())) => count += 1,
                Ok(None) => return Err(self.abandon("a peer failed during setup").await),
                Err(_) => {
                    let why = format!("only {count} peers were ready after {SETUP_TIMEOUT:?}");
                    return Err(self.abandon(&why).await);
                }
            }
        }
        Ok(self)
    }

    /// Stops every peer before the start and returns the first error among them, if any.
    async fn abandon(mut self, why: &str) -> anyhow::Error {
        drop(self.start);
        self.tasks.abort_all();
        let mut first = None;
        while let Some(joined) = self.tasks.join_next().await {
            if let Ok(Err(error)) = joined {
                first.get_or_insert(error);
            }
        }
        first.map_or_else(|| anyhow!("{why}"), |error| error.context(why.to_owned()))
    }

    /// Releases every peer at once, waits for all of them to stop, and gathers what they
    /// measured.
    pub async fn run(mut self) -> Result<Outcome> {
        let started = Instant::now();
        let end = started + self.level.duration;
        self.start
            .send(Some(end))
            .map_err(|_| anyhow!("every peer stopped before the start"))?;

        let bound = self.level.duration + ACK_TIMEOUT + CLOSE_TIMEOUT;
        let mut latencies = Vec::new();
        let mut errors = Vec::new();
        let mut last_ack = started;
        let collect = async {
            while let Some(joined) = self.tasks.join_next().await {
                match joined.map_err(anyhow::Error::from).and_then(|run| run) {
                    Ok(run) => {
                        latencies.extend(run.latencies);
                        last_ack = last_ack.max(run.last_ack.unwrap_or(started));
                    }
                    Err(error) => errors.push(error),
                }
            }
        };
        if tokio::time::timeout(bound, collect).await.is_err() {
            self.tasks.abort_all();
            bail!("peers were still running {bound:?} after the start");
        }

        Ok(Outcome {
            latencies,
            elapsed: last_ack - started,
            errors,
        })
    }
}

/// One peer's part of a level.
#[derive(Debug)]
struct PeerTask {
    url: String,
    peer_id: String,
    /// The root key this peer writes, distinct per peer so shared-document edits never conflict.
    key: String,
    max_changes: u64,
}

impl PeerTask {
    /// Sets up, reports ready, waits for the start, changes until the end, and closes.
    async fn run(
        self,
        setup: Setup,
        ready: mpsc::Sender<()>,
        mut start: watch::Receiver<Option<Instant>>,
    ) -> Result<PeerRun> {
        let (mut peer, doc) = self
            .setup(setup)
            .await
            .with_context(|| format!("peer {} setup", self.peer_id))?;
        ready
            .send(())
            .await
            .context("the level stopped waiting for peers")?;
        drop(ready);

        // The sender is dropped without a start if another peer failed its setup.
        let end = match start.wait_for(Option::is_some).await {
            Ok(end) => end.expect("wait_for returned a start instant"),
            Err(_) => return Ok(PeerRun::default()),
        };
        let run = self
            .change_until(&mut peer, doc, end)
            .await
            .with_context(|| format!("peer {}", self.peer_id))?;
        peer.close()
            .await
            .with_context(|| format!("close peer {}", self.peer_id))?;
        Ok(run)
    }

    async fn setup(&self, setup: Setup) -> Result<(RawPeer, DocumentId)> {
        match setup {
            Setup::Ready(peer, doc) => Ok((*peer, doc)),
            Setup::Create => {
                let mut peer = RawPeer::connect(&self.url, self.peer_id.as_str()).await?;
                let doc = peer.create_document(|_| {}).await?;
                let heads = peer.heads(doc);
                peer.wait_acknowledged(doc, &heads, SETUP_TIMEOUT).await?;
                Ok((peer, doc))
            }
            Setup::Open(doc) => {
                let mut peer = RawPeer::connect(&self.url, self.peer_id.as_str()).await?;
                peer.open(doc).await?;
                peer.sync_until_quiet(SETUP_TIMEOUT).await?;
                ensure!(
                    !peer.is_unavailable(doc),
                    "the server says {doc} is unavailable"
                );
                Ok((peer, doc))
            }
        }
    }

    /// The measured loop: one change in flight at a time, timed from before the change is made
    /// (so the peer's own sync message generation counts) to its acknowledgement.
    async fn change_until(
        &self,
        peer: &mut RawPeer,
        doc: DocumentId,
        end: Instant,
    ) -> Result<PeerRun> {
        let mut run = PeerRun::default();
        let mut counter: u64 = 0;
        while Instant::now() < end && counter < self.max_changes {
            counter += 1;
            let sent = Instant::now();
            let hash = peer
                .change(doc, |d| {
                    d.put(ROOT, self.key.as_str(), counter)
                        .expect("a scalar put on the root map of a local document succeeds");
                })
                .await?;
            peer.wait_acknowledged(doc, &[hash], ACK_TIMEOUT).await?;

            let acked = Instant::now();
            run.latencies.push(acked - sent);
            run.last_ack = Some(acked);
        }
        Ok(run)
    }
}
