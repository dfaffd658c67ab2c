//! The scenarios. Every peer is its own WebSocket connection (a [`RawPeer`]) and, while it is
//! measured, its own tokio task; every wait is bounded.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use automerge::transaction::Transactable;
use automerge::{ChangeHash, ROOT};
use serde_json::{Value, json};
use syncline_shared::ids::DocumentId;
use syncline_tests::peer::RawPeer;
use tokio::sync::{Semaphore, broadcast, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::measure::{Latencies, RunResult, ServerProc, reading, seconds, server_figures};
use crate::{Args, Scenario};

/// Bound on setting up every peer of a scenario.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Bound on one peer's setup step (connect, create or open).
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long editors keep reading after the measured run, so the last changes can arrive.
const DRAIN: Duration = Duration::from_secs(5);

/// Longest a peer goes without reading while it waits, so the server's pings are answered.
const READ_SLICE: Duration = Duration::from_millis(50);

/// Documents created or read back per peer in the `documents` scenario.
const DOCUMENTS_PER_PEER: usize = 500;

/// Runs the scenario `args` names.
pub async fn run(args: &Args) -> Result<RunResult> {
    let server = ServerProc::new(args.server_pid);
    let mut record = match args.scenario {
        Scenario::Collab => editing(args, server, args.docs, args.editors, args.editors).await?,
        Scenario::Fanout => editing(args, server, 1, args.subscribers + 1, 1).await?,
        Scenario::Idle => idle(args, server).await?,
        Scenario::Documents => documents(args, server).await?,
        Scenario::ColdSeed => crate::cold::seed(args, server).await?,
        Scenario::Cold => crate::cold::load(args, server).await?,
        Scenario::CollabFloor => crate::floor::collab(args)?,
    };
    let scenario = args
        .record_as
        .as_deref()
        .unwrap_or_else(|| args.scenario.name());
    let fields = record.as_object_mut().context("a record is an object")?;
    fields.insert("label".into(), json!(args.label));
    fields.insert("scenario".into(), json!(scenario));
    fields.insert(
        "params".into(),
        json!({
            "docs": args.docs, "editors": args.editors, "subscribers": args.subscribers,
            "connections": args.connections, "rate": args.rate, "seconds": args.seconds,
            "change_bytes": args.change_bytes,
            "large_docs": args.large_docs, "doc_bytes": args.doc_bytes,
            "history_ops": args.history_ops, "ops_per_change": args.ops_per_change,
        }),
    );
    Ok(RunResult { record })
}

/// A change announced to the other peers of its document: its hash, when it was made, and who
/// made it.
type Announced = (ChangeHash, Instant, usize);

/// What one editor measured.
#[derive(Debug, Default)]
struct EditorRun {
    acks: Vec<Duration>,
    propagation: Vec<Duration>,
    /// Others' changes this editor never received before the drain ended.
    missed: u64,
    /// Announcements that overflowed this editor's queue, so were not measured.
    unmeasured: u64,
}

/// `docs` documents with `peers` peers each, the first `writers` of which write: the
/// collaboration and fan-out scenarios.
async fn editing(
    args: &Args,
    server: Option<ServerProc>,
    docs: usize,
    peers: usize,
    writers: usize,
) -> Result<Value> {
    // 1. Every document is created by its first peer, then opened by the others.
    let limit = Arc::new(Semaphore::new(args.setup_parallelism));
    let setup = async {
        let mut creators = JoinSet::new();
        for d in 0..docs {
            let (url, limit) = (args.url.clone(), limit.clone());
            let body = (d < args.large_docs).then_some(args.doc_bytes);
            creators.spawn(async move {
                let _slot = limit.acquire_owned().await?;
                let mut peer = step(RawPeer::connect(&url, format!("lg-d{d}-p0"))).await?;
                let (doc, _) =
                    step(peer.create_acknowledged(|d| starting_content(d, body), STEP_TIMEOUT))
                        .await?;
                anyhow::Ok((d, doc, peer))
            });
        }
        let mut created = Vec::new();
        while let Some(joined) = creators.join_next().await {
            created.push(joined??);
        }
        created.sort_by_key(|(d, _, _)| *d);
        let mut openers = JoinSet::new();
        for (d, doc, _) in &created {
            for p in 1..peers {
                let (url, limit, doc, d) = (args.url.clone(), limit.clone(), *doc, *d);
                openers.spawn(async move {
                    let _slot = limit.acquire_owned().await?;
                    let mut peer = step(RawPeer::connect(&url, format!("lg-d{d}-p{p}"))).await?;
                    step(peer.open(doc)).await?;
                    step(peer.sync_until_quiet(STEP_TIMEOUT)).await?;
                    ensure!(
                        !peer.is_unavailable(doc),
                        "the server says {doc} is unavailable"
                    );
                    anyhow::Ok((d, p, doc, peer))
                });
            }
        }
        let mut all: Vec<(usize, usize, DocumentId, RawPeer)> = created
            .into_iter()
            .map(|(d, doc, peer)| (d, 0, doc, peer))
            .collect();
        while let Some(joined) = openers.join_next().await {
            all.push(joined??);
        }
        anyhow::Ok(all)
    };
    let all = tokio::time::timeout(SETUP_TIMEOUT, setup)
        .await
        .map_err(|_| {
            anyhow!(
                "setting up {} peers took over {SETUP_TIMEOUT:?}",
                docs * peers
            )
        })??;

    // 2. One announcement channel per document; every peer starts reading at once and waits
    //    for the start signal while answering the server.
    let feeds: Vec<broadcast::Sender<Announced>> =
        (0..docs).map(|_| broadcast::channel(8192).0).collect();
    let (start_tx, start_rx) = watch::channel(None::<(Instant, Instant)>);
    let mut tasks = JoinSet::new();
    let total = (docs * peers) as f64;
    for (d, p, doc, peer) in all {
        let editor = Editor {
            phase: (d * peers + p) as f64 / total,
            peer,
            doc,
            index: p,
            writes: p < writers,
            feed: feeds[d].clone(),
            inbox: feeds[d].subscribe(),
            interval: (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate)),
            filler: "x".repeat(args.change_bytes),
        };
        tasks.spawn(editor.run(start_rx.clone()));
    }
    drop(feeds);

    // 3. Measure.
    let commits_before = commit_counters(args).await?;
    let before = reading(server)?;
    let generator_before = crate::cpu::cpu_time("self")?;
    let started = Instant::now();
    let end = started + args.duration();
    start_tx
        .send(Some((started, end)))
        .map_err(|_| anyhow!("every peer stopped before the start"))?;
    let mut acks = Latencies::default();
    let mut propagation = Latencies::default();
    let (mut missed, mut unmeasured, mut errors) = (0_u64, 0_u64, Vec::new());
    let bound = args.duration() + DRAIN + STEP_TIMEOUT;
    let collect = async {
        while let Some(joined) = tasks.join_next().await {
            match joined.map_err(anyhow::Error::from).and_then(|run| run) {
                Ok(run) => {
                    acks.0.extend(run.acks);
                    propagation.0.extend(run.propagation);
                    missed += run.missed;
                    unmeasured += run.unmeasured;
                }
                Err(error) => errors.push(format!("{error:#}")),
            }
        }
    };
    if tokio::time::timeout(bound, collect).await.is_err() {
        tasks.abort_all();
        bail!("peers were still running {bound:?} after the start");
    }
    let after = reading(server)?;
    let commits = match (commits_before, commit_counters(args).await?) {
        (Some((c0, k0)), Some((c1, k1))) => json!({
            "commits_per_s": ((c1 - c0) / wall_seconds(started)).round(),
            "changes_per_commit": (((k1 - k0) / (c1 - c0).max(1.0)) * 10.0).round() / 10.0,
        }),
        _ => Value::Null,
    };
    let generator = crate::cpu::cpu_time("self")?.saturating_sub(generator_before);
    let wall = started.elapsed().as_secs_f64();
    let acked = acks.0.len();
    Ok(json!({
        "peers": docs * peers,
        "acked": acked,
        "acked_per_s": (acked as f64 / args.duration().as_secs_f64()).round(),
        "ack": acks.summary(),
        "propagation": propagation.summary(),
        "missed": missed,
        "unmeasured": unmeasured,
        "errors": errors.len(),
        "first_error": errors.first(),
        "server": server_figures(before, after, args.duration()),
        "generator_cpu_percent": (1000.0 * generator.as_secs_f64() / wall).round() / 10.0,
        "storage": commits,
    }))
}

fn wall_seconds(started: Instant) -> f64 {
    started.elapsed().as_secs_f64().max(1e-9)
}

/// Syncline's storage commits and committed changes so far, from its `/metrics`, when asked
/// for with `--syncline-metrics`.
async fn commit_counters(args: &Args) -> Result<Option<(f64, f64)>> {
    if !args.syncline_metrics {
        return Ok(None);
    }
    let authority = args
        .url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default();
    let addr: std::net::SocketAddr = authority
        .parse()
        .with_context(|| format!("{authority:?} is not an address and port"))?;
    let text = syncline_tests::server::http_get(addr, "/metrics").await?;
    let value = |name: &str| {
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    Ok(Some((
        value("syncline_commits_total"),
        value("syncline_changes_committed_total"),
    )))
}

/// What a collab document starts with: a title, and `body` characters of text if it is one of
/// the large ones.
pub fn starting_content(doc: &mut impl Transactable, body: Option<usize>) {
    doc.put(ROOT, "title", "load")
        .expect("put on a local document");
    if let Some(chars) = body {
        let text = doc
            .put_object(ROOT, "body", automerge::ObjType::Text)
            .expect("a text object on a local document");
        doc.splice_text(&text, 0, 0, &"lorem ipsum ".repeat(chars / 12 + 1)[..chars])
            .expect("insert into a fresh text");
    }
}

/// Bounds one setup step.
async fn step<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(STEP_TIMEOUT, work)
        .await
        .map_err(|_| anyhow!("a setup step took over {STEP_TIMEOUT:?}"))?
}

/// One peer of a document in the editing scenarios.
struct Editor {
    peer: RawPeer,
    doc: DocumentId,
    index: usize,
    writes: bool,
    /// Where this editor announces its changes.
    feed: broadcast::Sender<Announced>,
    /// The announcements of every peer of the document.
    inbox: broadcast::Receiver<Announced>,
    /// Time between changes; `None` is closed loop.
    interval: Option<Duration>,
    /// Where in the interval this editor's first change falls, from 0 to 1: paced editors are
    /// spread over it instead of all writing at the start.
    phase: f64,
    filler: String,
}

impl Editor {
    async fn run(
        mut self,
        mut start: watch::Receiver<Option<(Instant, Instant)>>,
    ) -> Result<EditorRun> {
        // Answer the server while waiting, so no ping goes unanswered.
        let (started, end) = loop {
            if let Some(times) = *start.borrow() {
                break times;
            }
            tokio::select! {
                changed = start.changed() => {
                    if changed.is_err() {
                        return Ok(EditorRun::default());
                    }
                }
                read = self.peer.pump_until_deadline(Instant::now() + READ_SLICE) => { read?; }
            }
        };
        let mut run = EditorRun::default();
        let mut unseen: Vec<(ChangeHash, Instant)> = Vec::new();
        let mut in_flight: Option<(ChangeHash, Instant)> = None;
        let mut next_write = started
            + self
                .interval
                .map_or(Duration::ZERO, |interval| interval.mul_f64(self.phase));
        let mut counter: u64 = 0;
        // When the last frame was read: a change announced after it arrived (the announcement
        // and the frame race) arrived no later than this.
        let mut last_frame = started;
        loop {
            let now = Instant::now();
            loop {
                match self.inbox.try_recv() {
                    Ok((hash, at, from)) if from != self.index => {
                        if self.peer.has_change(self.doc, &hash) {
                            run.propagation.push(last_frame.max(at) - at);
                        } else {
                            unseen.push((hash, at));
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::TryRecvError::Lagged(n)) => run.unmeasured += n,
                    Err(_) => break,
                }
            }
            if self.writes && now < end && in_flight.is_none() && now >= next_write {
                counter += 1;
                let key = format!("e{}", self.index);
                let filler = &self.filler;
                let hash = self
                    .peer
                    .change(self.doc, |d| {
                        if filler.is_empty() {
                            d.put(ROOT, key.as_str(), counter)
                                .expect("put on a local document");
                        } else {
                            d.put(ROOT, key.as_str(), format!("{counter}{filler}"))
                                .expect("put on a local document");
                        }
                    })
                    .await?;
                let made = Instant::now();
                in_flight = Some((hash, made));
                let _ = self.feed.send((hash, made, self.index));
                next_write = match self.interval {
                    Some(interval) => next_write + interval,
                    None => made,
                };
            }
            if now >= end && in_flight.is_none() && unseen.is_empty() {
                break;
            }
            if now >= end + DRAIN {
                run.missed = unseen.len() as u64;
                break;
            }
            let mut deadline = now + READ_SLICE;
            if self.writes && in_flight.is_none() && next_write < end {
                deadline = deadline.min(next_write.max(now));
            }
            let read = self.peer.pump_until_deadline(deadline).await?;
            let seen = Instant::now();
            if read {
                last_frame = seen;
            }
            if let Some((hash, made)) = in_flight
                && self.peer.is_acknowledged(self.doc, &[hash])
            {
                run.acks.push(seen - made);
                in_flight = None;
            }
            let doc = self.doc;
            let peer = &mut self.peer;
            unseen.retain(|(hash, made)| {
                let arrived = peer.has_change(doc, hash);
                if arrived {
                    run.propagation.push(seen - *made);
                }
                !arrived
            });
        }
        let _ = tokio::time::timeout(STEP_TIMEOUT, self.peer.close()).await;
        Ok(run)
    }
}

/// `--connections` joined connections that do nothing: the server's memory per connection.
async fn idle(args: &Args, server: Option<ServerProc>) -> Result<Value> {
    let before = reading(server)?;
    let limit = Arc::new(Semaphore::new(args.setup_parallelism));
    let mut connecting = JoinSet::new();
    for n in 0..args.connections {
        let (url, limit) = (args.url.clone(), limit.clone());
        connecting.spawn(async move {
            let _slot = limit.acquire_owned().await?;
            step(RawPeer::connect(&url, format!("lg-idle-{n}"))).await
        });
    }
    let started = Instant::now();
    let mut peers = Vec::with_capacity(args.connections);
    let mut errors = Vec::new();
    let connect_all = async {
        while let Some(joined) = connecting.join_next().await {
            match joined.map_err(anyhow::Error::from).and_then(|r| r) {
                Ok(peer) => peers.push(peer),
                Err(error) => errors.push(format!("{error:#}")),
            }
        }
    };
    tokio::time::timeout(SETUP_TIMEOUT, connect_all)
        .await
        .map_err(|_| {
            anyhow!(
                "opening {} connections took over {SETUP_TIMEOUT:?}",
                args.connections
            )
        })?;
    let connect_time = started.elapsed();
    // Memory once the server has settled: the same reading twice in a row, or the last of ten.
    let mut after = reading(server)?;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let again = reading(server)?;
        let settled = matches!((after, again), (Some(a), Some(b)) if a.rss_kib == b.rss_kib);
        after = again;
        if settled {
            break;
        }
    }
    let open = peers.len();
    let per_connection = match (before, after) {
        (Some(b), Some(a)) if open > 0 => {
            Some((a.rss_kib.saturating_sub(b.rss_kib)) as f64 / open as f64)
        }
        _ => None,
    };
    drop(peers);
    Ok(json!({
        "connections": open,
        "connect_s": (connect_time.as_secs_f64() * 100.0).round() / 100.0,
        "kib_per_connection": per_connection.map(|k| (k * 100.0).round() / 100.0),
        "errors": errors.len(),
        "first_error": errors.first(),
        "server": server_figures(before, after, connect_time),
    }))
}

/// `--docs` documents created, then read back once each, with the server's memory sampled every
/// second throughout and for `--seconds` after.
async fn documents(args: &Args, server: Option<ServerProc>) -> Result<Value> {
    let before = reading(server)?;
    let t0 = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let sampler = tokio::spawn(sample_memory(server, t0, stop_rx));

    // 1. Create, DOCUMENTS_PER_PEER per connection, several connections at once.
    let batches: Vec<usize> = (0..args.docs)
        .step_by(DOCUMENTS_PER_PEER)
        .map(|first| DOCUMENTS_PER_PEER.min(args.docs - first))
        .collect();
    let limit = Arc::new(Semaphore::new(args.setup_parallelism.min(8)));
    let mut creating = JoinSet::new();
    for (b, count) in batches.iter().copied().enumerate() {
        let (url, limit) = (args.url.clone(), limit.clone());
        creating.spawn(async move {
            let _slot = limit.acquire_owned().await?;
            let mut peer = step(RawPeer::connect(&url, format!("lg-create-{b}"))).await?;
            let mut ids = Vec::with_capacity(count);
            for n in 0..count {
                let id = peer
                    .create_document(|d| {
                        d.put(ROOT, "n", n as u64).expect("put on a local document");
                    })
                    .await?;
                ids.push(id);
            }
            for id in &ids {
                let heads = peer.heads(*id);
                peer.wait_acknowledged(*id, &heads, STEP_TIMEOUT).await?;
            }
            let _ = tokio::time::timeout(STEP_TIMEOUT, peer.close()).await;
            anyhow::Ok(ids)
        });
    }
    let mut ids = Vec::with_capacity(args.docs);
    while let Some(joined) = creating.join_next().await {
        ids.extend(joined??);
    }
    let created_at = t0.elapsed();

    // 2. Read each back once, with fresh connections.
    let mut reading_back = JoinSet::new();
    for (b, chunk) in ids.chunks(DOCUMENTS_PER_PEER).enumerate() {
        let (url, limit, chunk) = (args.url.clone(), limit.clone(), chunk.to_vec());
        reading_back.spawn(async move {
            let _slot = limit.acquire_owned().await?;
            let mut peer = step(RawPeer::connect(&url, format!("lg-read-{b}"))).await?;
            for id in &chunk {
                peer.open(*id).await?;
            }
            peer.sync_until_quiet(STEP_TIMEOUT * 4).await?;
            let missing = chunk.iter().filter(|id| peer.is_unavailable(**id)).count();
            let _ = tokio::time::timeout(STEP_TIMEOUT, peer.close()).await;
            anyhow::Ok(missing)
        });
    }
    let mut unavailable = 0;
    while let Some(joined) = reading_back.join_next().await {
        unavailable += joined??;
    }
    let read_at = t0.elapsed();

    // 3. Keep watching memory while nobody uses the documents.
    tokio::time::sleep(args.duration()).await;
    let _ = stop_tx.send(true);
    let series = sampler.await.context("memory sampler")??;
    let after = reading(server)?;
    Ok(json!({
        "documents": ids.len(),
        "created_per_s": (ids.len() as f64 / created_at.as_secs_f64().max(1e-9)).round(),
        "read_per_s": (ids.len() as f64 / (read_at - created_at).as_secs_f64().max(1e-9)).round(),
        "create_s": seconds(created_at),
        "read_s": seconds(read_at - created_at),
        "unavailable": unavailable,
        "memory": series,
        "server": server_figures(before, after, t0.elapsed()),
    }))
}

/// `[seconds since t0, resident KiB]` every second until told to stop.
async fn sample_memory(
    server: Option<ServerProc>,
    t0: Instant,
    mut stop: watch::Receiver<bool>,
) -> Result<Vec<(f64, u64)>> {
    let mut series = Vec::new();
    let Some(server) = server else {
        return Ok(series);
    };
    loop {
        let reading = server.read()?;
        series.push((
            (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            reading.rss_kib,
        ));
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return Ok(series);
                }
            }
        }
    }
}
