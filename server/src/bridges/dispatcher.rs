//! The dispatcher: delivers outbox rows to their bridges, in order, with retries.
//!
//! Each bridge runs on its own. A document with live rows for the bridge has one chain task,
//! which delivers the oldest live row, waits for the answer, records it, and moves on: one row
//! in flight per (bridge, document), so deliveries of a document arrive in order. Chains of
//! different documents run concurrently up to the bridge's `concurrency`, spaced by its rate
//! limit, and all of them hold while the bridge is paused by a 429.
//!
//! Every attempt is recorded before it is made (attempt count, the body, and when to try next if
//! no answer comes), so a crash mid-request retries the same id with the same body after the
//! restart. Document workers wake a chain after each commit ([`Dispatcher::notify`]); at start,
//! the dispatcher wakes one for every document with live rows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand::rngs::StdRng;
use syncline_shared::ids::DocumentId;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::body::{self, BodyError, DocCache};
use super::config::BridgeConfig;
use super::gate::Gate;
use super::schedule::{Verdict, classify, retry_after};
use super::webhook;
use crate::metrics::Metrics;
use crate::storage::{DocumentWrite, OutboxAction, OutboxRow, OutboxUpdate, Storage, Writer};

/// How often the queue-depth gauge is refreshed.
const QUEUE_COUNT_INTERVAL: Duration = Duration::from_secs(5);

/// A bridge failing for this long without one success is disabled.
const DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);

/// Every bridge's runtime.
#[derive(Debug, Clone, Default)]
pub struct Dispatcher {
    bridges: Arc<Vec<Arc<Bridge>>>,
}

/// One bridge as the admin API shows it.
#[derive(Debug, serde::Serialize)]
pub struct BridgeReport {
    /// The bridge's name.
    pub name: String,
    /// Its target.
    pub url: String,
    /// False while paused by an operator, or disabled by a 410 or days of failures.
    pub enabled: bool,
    /// Live rows waiting or in progress.
    pub queued: usize,
    /// Documents with a delivery chain running.
    pub in_flight: usize,
    /// Dead-lettered rows.
    pub dead: Vec<DeadRow>,
}

/// A dead-lettered row, for the operator.
#[derive(Debug, serde::Serialize)]
pub struct DeadRow {
    /// The delivery id (`webhook-id`).
    pub id: String,
    /// The document it is about.
    pub document: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the row was created.
    pub created_at_ms: u64,
    /// The last failure.
    pub last_error: String,
}

/// What the chains of one bridge share.
#[derive(Debug)]
struct Bridge {
    config: BridgeConfig,
    storage: Storage,
    writer: Writer,
    metrics: Arc<Metrics>,
    client: reqwest::Client,
    /// Documents with a running chain; `true` asks the chain to look again before it ends.
    chains: Mutex<HashMap<DocumentId, bool>>,
    permits: Semaphore,
    /// A 429's pause and the rate limit, shared by the bridge's chains.
    gate: Gate,
    /// Set by a 410 or by days of failures; cleared by an operator.
    disabled: AtomicBool,
    failing_since: Mutex<Option<SystemTime>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Dispatcher {
    /// Starts one runtime per bridge and wakes a chain for every document with live rows.
    pub fn start(
        configs: &[BridgeConfig],
        storage: &Storage,
        writer: &Writer,
        metrics: &Arc<Metrics>,
        shutdown: &CancellationToken,
    ) -> Self {
        let bridges: Vec<Arc<Bridge>> = configs
            .iter()
            .map(|config| {
                Arc::new(Bridge::new(
                    config.clone(),
                    storage.clone(),
                    writer.clone(),
                    metrics.clone(),
                    shutdown.child_token(),
                ))
            })
            .collect();
        for bridge in &bridges {
            let resumed = Arc::clone(bridge);
            tokio::spawn(async move { resumed.resume_all().await });
            let counted = Arc::clone(bridge);
            bridge
                .tasks
                .spawn(async move { counted.count_queue().await });
        }
        Self {
            bridges: Arc::new(bridges),
        }
    }

    /// The configured bridges, for document workers deciding which want a write.
    pub fn configs(&self) -> impl Iterator<Item = &BridgeConfig> {
        self.bridges.iter().map(|b| &b.config)
    }

    /// A commit added rows for `document` to the named bridge: make sure a chain delivers them.
    pub fn notify(&self, bridge: &str, document: DocumentId) {
        if let Some(bridge) = self.bridges.iter().find(|b| b.config.name == bridge) {
            Arc::clone(bridge).wake(document);
        }
    }

    /// Waits for every chain to stop after the shutdown token was cancelled. Requests in flight
    /// are abandoned; their rows were recorded as attempted and resume on the next start.
    pub async fn stopped(&self) {
        for bridge in self.bridges.iter() {
            bridge.tasks.close();
            bridge.tasks.wait().await;
        }
    }

    /// What the admin API shows of every bridge.
    pub async fn report(&self) -> Vec<BridgeReport> {
        let mut reports = Vec::new();
        for bridge in self.bridges.iter() {
            let storage = bridge.storage.clone();
            let name = bridge.config.name.clone();
            let rows = tokio::task::spawn_blocking(move || storage.outbox_rows(&name))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let dead: Vec<DeadRow> = rows
                .iter()
                .filter(|r| r.record.dead)
                .map(|r| DeadRow {
                    id: r.record.id.clone(),
                    document: r.document.to_string(),
                    attempts: r.record.attempts,
                    created_at_ms: r.record.created_at_ms,
                    last_error: r.record.last_error.clone(),
                })
                .collect();
            reports.push(BridgeReport {
                name: bridge.config.name.clone(),
                url: bridge.config.url.clone(),
                enabled: !bridge.disabled.load(Ordering::SeqCst),
                queued: rows.len() - dead.len(),
                in_flight: lock(&bridge.chains).len(),
                dead,
            });
        }
        reports
    }

    /// Gives the dead rows of `bridge` created at or after `since_ms` (only the one with id
    /// `only`, if given) a fresh start, same id, and wakes their chains; the number replayed, or
    /// `None` if there is no such bridge.
    pub async fn replay(
        &self,
        bridge: &str,
        since_ms: u64,
        only: Option<&str>,
    ) -> Option<Result<usize, String>> {
        let bridge = self.bridges.iter().find(|b| b.config.name == bridge)?;
        let storage = bridge.storage.clone();
        let name = bridge.config.name.clone();
        let rows = match tokio::task::spawn_blocking(move || storage.outbox_rows(&name)).await {
            Ok(Ok(rows)) => rows,
            Ok(Err(err)) => return Some(Err(err.to_string())),
            Err(err) => return Some(Err(err.to_string())),
        };
        let chosen = |r: &&OutboxRow| {
            r.record.dead
                && r.record.created_at_ms >= since_ms
                && only.is_none_or(|id| r.record.id == id)
        };
        let mut replayed = 0;
        for row in rows.iter().filter(chosen) {
            if !bridge
                .record(row, OutboxAction::Replay { now_ms: now_ms() })
                .await
            {
                return Some(Err("the storage writer refused the replay".to_owned()));
            }
            Arc::clone(bridge).wake(row.document);
            replayed += 1;
        }
        info!(bridge = %bridge.config.name, replayed, "dead deliveries replayed");
        Some(Ok(replayed))
    }

    /// Pauses or resumes a bridge by name; false if there is none.
    pub fn set_enabled(&self, bridge: &str, enabled: bool) -> bool {
        let Some(bridge) = self.bridges.iter().find(|b| b.config.name == bridge) else {
            return false;
        };
        bridge.disabled.store(!enabled, Ordering::SeqCst);
        if enabled {
            *lock(&bridge.failing_since) = None;
            let bridge = Arc::clone(bridge);
            tokio::spawn(async move { bridge.resume_all().await });
        }
        true
    }
}

impl Bridge {
    fn new(
        config: BridgeConfig,
        storage: Storage,
        writer: Writer,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        let permits = Semaphore::new(config.concurrency);
        let gate = Gate::new(config.rate_per_second);
        Self {
            config,
            storage,
            writer,
            metrics,
            client,
            chains: Mutex::new(HashMap::new()),
            permits,
            gate,
            disabled: AtomicBool::new(false),
            failing_since: Mutex::new(None),
            shutdown,
            tasks: TaskTracker::new(),
        }
    }

    /// Wakes a chain for every document with live rows.
    async fn resume_all(self: Arc<Self>) {
        let storage = self.storage.clone();
        let name = self.config.name.clone();
        match tokio::task::spawn_blocking(move || storage.outbox_documents(&name)).await {
            Ok(Ok(documents)) => {
                if !documents.is_empty() {
                    info!(
                        bridge = %self.config.name,
                        documents = documents.len(),
                        "resuming deliveries",
                    );
                }
                for document in documents {
                    Arc::clone(&self).wake(document);
                }
            }
            Ok(Err(err)) => {
                error!(
                    bridge = %self.config.name,
                    error = %err,
                    "cannot read the outbox; deliveries wait for the next change",
                )
            }
            Err(err) => error!(bridge = %self.config.name, error = %err, "outbox scan failed"),
        }
    }

    /// Keeps the queue-depth gauge current until shutdown.
    async fn count_queue(self: Arc<Self>) {
        loop {
            let storage = self.storage.clone();
            let name = self.config.name.clone();
            let rows = tokio::task::spawn_blocking(move || storage.outbox_rows(&name)).await;
            if let Ok(Ok(rows)) = rows {
                let live = rows.iter().filter(|r| !r.record.dead).count();
                self.metrics
                    .bridge_queue_depth
                    .get_or_create(&self.labels())
                    .set(i64::try_from(live).unwrap_or(i64::MAX));
            }
            if !self.sleep(QUEUE_COUNT_INTERVAL).await {
                return;
            }
        }
    }

    /// Starts a chain for the document, or asks the running one to look again.
    fn wake(self: Arc<Self>, document: DocumentId) {
        {
            let mut chains = lock(&self.chains);
            if let Some(again) = chains.get_mut(&document) {
                *again = true;
                return;
            }
            chains.insert(document, false);
        }
        let span = info_span!("bridge", bridge = %self.config.name, doc = %document);
        let tasks = self.tasks.clone();
        tasks.spawn(async move { self.chain(document).await }.instrument(span));
    }

    /// Delivers the document's rows one after another until none is live.
    async fn chain(self: Arc<Self>, document: DocumentId) {
        let mut cache = Some(DocCache::default());
        while !self.shutdown.is_cancelled() {
            let delivered = match self.head(document).await {
                Some(row) => self.deliver(row, &mut cache).await,
                None if self.finished(document) => return,
                None => true,
            };
            if !delivered {
                break;
            }
        }
        lock(&self.chains).remove(&document);
    }

    /// Ends the chain unless a wake arrived since it last looked.
    fn finished(&self, document: DocumentId) -> bool {
        let mut chains = lock(&self.chains);
        match chains.get_mut(&document) {
            Some(again) if *again => {
                *again = false;
                false
            }
            _ => {
                chains.remove(&document);
                true
            }
        }
    }

    async fn head(&self, document: DocumentId) -> Option<OutboxRow> {
        let storage = self.storage.clone();
        let name = self.config.name.clone();
        match tokio::task::spawn_blocking(move || storage.outbox_head(&name, &document)).await {
            Ok(Ok(head)) => head,
            Ok(Err(err)) => {
                error!(error = %err, "cannot read the outbox; will retry in 1 s");
                self.sleep(Duration::from_secs(1)).await;
                None
            }
            Err(_) => None,
        }
    }

    /// One attempt at a row; false if the chain must stop (shutdown, disabled bridge).
    async fn deliver(&self, row: OutboxRow, cache: &mut Option<DocCache>) -> bool {
        if !self.wait_turn(&row).await {
            return false;
        }
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        // A 429 may have paused the bridge while this chain waited for its permit.
        if !self.wait_open().await || !self.wait_slot().await {
            return false;
        }

        let attempt = row.record.attempts + 1;
        if let Some(collection) = &self.config.caldav {
            return self.deliver_caldav(collection, &row, attempt, cache).await;
        }
        let Some((body, body_seq)) = self.body(&row, cache).await else {
            return true;
        };
        // Recorded first: a crash during the request retries this id with this body.
        if !self
            .begin_attempt(&row, attempt, body.clone(), body_seq)
            .await
        {
            return true;
        }
        let started = std::time::Instant::now();
        let answer = tokio::select! {
            answer = self.send(&row.record.id, &body) => answer,
            // Abandoned: the row is recorded as attempted and resumes on the next start.
            () = self.shutdown.cancelled() => return false,
        };
        self.settle(&row, attempt, body, body_seq, answer, started)
            .await
    }

    /// One attempt at bringing the CalDAV collection to the document's current events. Each
    /// attempt works from the state now (the collection is keyed by UID, so a repeat is
    /// harmless); the attempt is still recorded first so its schedule survives a crash.
    async fn deliver_caldav(
        &self,
        collection: &super::caldav::Collection,
        row: &OutboxRow,
        attempt: u32,
        cache: &mut Option<DocCache>,
    ) -> bool {
        let storage = self.storage.clone();
        let document = row.document;
        let mut copy = cache.take().unwrap_or_default();
        let built = tokio::task::spawn_blocking(move || {
            let files = body::calendar_files(&storage, &mut copy, document);
            (files, copy)
        })
        .await;
        let Ok((files, copy)) = built else {
            return true;
        };
        *cache = Some(copy);
        let (files, seq) = match files {
            Ok(files) => files,
            Err(err) => {
                warn!(
                    error = %err,
                    "cannot read the calendar for its CalDAV delivery; will retry in 1 s",
                );
                return self.sleep(Duration::from_secs(1)).await;
            }
        };
        if !self.begin_attempt(row, attempt, Vec::new(), seq).await {
            return true;
        }
        let started = std::time::Instant::now();
        let events: Vec<_> = files.iter().map(|(event, _)| event.clone()).collect();
        let by_uid: HashMap<&str, &str> = files
            .iter()
            .map(|(event, file)| (event.uid.as_str(), file.as_str()))
            .collect();
        let render = |event: &syncline_shared::ical::Event| {
            by_uid
                .get(event.uid.as_str())
                .map_or_else(String::new, |f| (*f).to_owned())
        };
        let synced = tokio::select! {
            synced = collection.sync(&self.client, document, &events, render) => synced,
            () = self.shutdown.cancelled() => return false,
        };
        let answer = match synced {
            Ok(()) => (Verdict::Delivered, None, "collection in step".to_owned()),
            Err(failure) => (failure.verdict, None, failure.description),
        };
        self.settle(row, attempt, Vec::new(), seq, answer, started)
            .await
    }

    /// Records an attempt before it is made, with the body it sends and when to try next if no
    /// answer ever comes, and counts it; false if the record could not be written.
    async fn begin_attempt(&self, row: &OutboxRow, attempt: u32, body: Vec<u8>, seq: u64) -> bool {
        let recorded = OutboxAction::Attempted {
            attempts: attempt,
            next_attempt_ms: self.next_attempt(attempt, None).unwrap_or(u64::MAX),
            body,
            body_seq: seq,
            last_error: row.record.last_error.clone(),
        };
        if !self.record(row, recorded).await {
            return false;
        }
        self.metrics
            .bridge_attempts
            .get_or_create(&self.labels())
            .inc();
        true
    }

    /// Waits for the row's next attempt time and for the bridge to be open.
    async fn wait_turn(&self, row: &OutboxRow) -> bool {
        let now = now_ms();
        if row.record.next_attempt_ms > now {
            let wait = Duration::from_millis(row.record.next_attempt_ms - now);
            if !self.sleep(wait).await {
                return false;
            }
        }
        self.wait_open().await
    }

    /// Waits while the bridge is paused by a 429; false if it is disabled or shutting down.
    async fn wait_open(&self) -> bool {
        loop {
            if self.disabled.load(Ordering::SeqCst) {
                return false;
            }
            let Some(wait) = self.gate.paused_for() else {
                return true;
            };
            if !self.sleep(wait).await {
                return false;
            }
        }
    }

    /// Takes the next request slot of the rate limit.
    async fn wait_slot(&self) -> bool {
        let wait = self.gate.take_slot();
        wait.is_zero() || self.sleep(wait).await
    }

    /// The row's body: as first sent, or built now from the chain's document copy (which is
    /// moved to a blocking thread and back).
    async fn body(&self, row: &OutboxRow, cache: &mut Option<DocCache>) -> Option<(Vec<u8>, u64)> {
        if !row.record.body.is_empty() {
            return Some((row.record.body.clone(), row.record.body_seq));
        }
        let storage = self.storage.clone();
        let (document, record) = (row.document, row.record.clone());
        let mut copy = cache.take().unwrap_or_default();
        let built = tokio::task::spawn_blocking(move || {
            let body = body::build(&storage, &mut copy, document, &record);
            (body, copy)
        });
        let built = match built.await {
            Ok((body, copy)) => {
                *cache = Some(copy);
                Ok(body)
            }
            Err(join) => Err(join),
        };
        match built {
            Ok(Ok(body)) => Some((body.bytes, body.seq)),
            Ok(Err(BodyError::Storage(err))) => {
                warn!(error = %err, "cannot read the document for its delivery; will retry in 1 s");
                self.sleep(Duration::from_secs(1)).await;
                None
            }
            Ok(Err(err)) => {
                let dead = OutboxAction::Dead {
                    attempts: row.record.attempts,
                    last_error: err.to_string(),
                };
                error!(
                    error = %err,
                    id = %row.record.id,
                    "delivery cannot be built; dead-lettered",
                );
                self.record(row, dead).await;
                None
            }
            Err(_) => None,
        }
    }

    /// Sends one request; the verdict, a `Retry-After`, and a description for the operator.
    async fn send(&self, id: &str, body: &[u8]) -> (Verdict, Option<Duration>, String) {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signature = webhook::signature(&self.config.secrets, id, timestamp, body);
        let request = self
            .client
            .post(&self.config.url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("idempotency-key", id)
            .body(body.to_vec());
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let wait = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after(v, SystemTime::now()));
                (classify(status.as_u16()), wait, status.to_string())
            }
            Err(err) if err.is_timeout() => (
                Verdict::Retry,
                None,
                format!("timed out after {:?}", self.config.timeout),
            ),
            Err(err) => (Verdict::Retry, None, format!("request failed: {err}")),
        }
    }

    /// Records the answer to an attempt; false if the bridge stops.
    async fn settle(
        &self,
        row: &OutboxRow,
        attempt: u32,
        body: Vec<u8>,
        body_seq: u64,
        (verdict, wait, description): (Verdict, Option<Duration>, String),
        started: std::time::Instant,
    ) -> bool {
        let class = verdict_label(verdict);
        let id = &row.record.id;
        if verdict == Verdict::Delivered {
            self.metrics
                .bridge_delivered
                .get_or_create(&self.labels())
                .inc();
            let since_commit = now_ms().saturating_sub(row.record.created_at_ms);
            self.metrics
                .bridge_delivery_seconds
                .observe(since_commit as f64 / 1000.0);
            *lock(&self.failing_since) = None;
            debug!(%id, attempt, elapsed_ms = started.elapsed().as_millis() as u64, "delivered");
            self.record(row, OutboxAction::Delivered).await;
            return true;
        }

        self.metrics
            .bridge_failures
            .get_or_create(&vec![("bridge", self.static_name()), ("class", class)])
            .inc();
        let next = match verdict {
            Verdict::Retry | Verdict::Throttled => self.next_attempt(attempt, wait),
            _ => None,
        };
        if verdict == Verdict::Throttled {
            let pause = Duration::from_millis(next.map_or(0, |at| at.saturating_sub(now_ms())));
            self.gate
                .pause_until(Instant::now() + pause.max(wait.unwrap_or_default()));
            warn!(
                %id,
                pause_ms = pause.as_millis() as u64,
                "target throttles (429); pausing the whole bridge",
            );
        }
        let action = match next {
            Some(next_attempt_ms) => {
                warn!(
                    %id,
                    attempt,
                    error = %description,
                    retry_in_ms = next_attempt_ms.saturating_sub(now_ms()),
                    "delivery failed; will retry",
                );
                OutboxAction::Attempted {
                    attempts: attempt,
                    next_attempt_ms,
                    body,
                    body_seq,
                    last_error: description.clone(),
                }
            }
            None => {
                self.metrics.bridge_dead.get_or_create(&self.labels()).inc();
                error!(
                    %id,
                    attempt,
                    error = %description,
                    "delivery failed for good; dead-lettered (replay it from the admin API)",
                );
                OutboxAction::Dead {
                    attempts: attempt,
                    last_error: description.clone(),
                }
            }
        };
        self.record(row, action).await;
        self.note_failure(verdict)
    }

    /// Counts a failure toward disabling; false if the bridge is now disabled.
    fn note_failure(&self, verdict: Verdict) -> bool {
        let now = SystemTime::now();
        let since = *lock(&self.failing_since).get_or_insert(now);
        let failing_for = now.duration_since(since).unwrap_or_default();
        if verdict == Verdict::Gone || failing_for >= DISABLE_AFTER {
            self.disabled.store(true, Ordering::SeqCst);
            error!(
                bridge = %self.config.name,
                "bridge disabled: the target is gone (410) or has failed for days; resume it from the admin API",
            );
            return false;
        }
        true
    }

    /// When to try after the `attempt`-th failure, in ms since the epoch; `None` if that was the
    /// last attempt.
    fn next_attempt(&self, attempt: u32, wait: Option<Duration>) -> Option<u64> {
        let mut rng = StdRng::from_os_rng();
        let delay = self.config.retry.delay(attempt, wait, &mut rng)?;
        Some(now_ms().saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)))
    }

    /// Writes a row update through the storage writer; false if it failed (logged).
    async fn record(&self, row: &OutboxRow, action: OutboxAction) -> bool {
        let mut write = DocumentWrite::new(row.document);
        write.outbox_updates.push(OutboxUpdate {
            bridge: self.config.name.clone(),
            row: row.row,
            action,
        });
        match self.writer.write(write).await {
            Ok(_) => true,
            Err(err) => {
                error!(error = %err, "cannot record a delivery; will retry in 1 s");
                self.sleep(Duration::from_secs(1)).await;
                false
            }
        }
    }

    /// Sleeps unless the dispatcher shuts down first; false on shutdown.
    async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            () = self.shutdown.cancelled() => false,
        }
    }

    fn static_name(&self) -> &'static str {
        // Bridge names are few and live for the whole process; leaking them gives the metric
        // labels the 'static lifetime the label type asks for.
        names::intern(&self.config.name)
    }

    fn labels(&self) -> Vec<(&'static str, &'static str)> {
        vec![("bridge", self.static_name())]
    }
}

fn verdict_label(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Delivered => "delivered",
        Verdict::Retry => "retry",
        Verdict::Throttled => "throttled",
        Verdict::Gone => "gone",
        Verdict::Permanent => "permanent",
    }
}

mod names {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};

    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();

    /// The one `'static` copy of a bridge name.
    pub fn intern(name: &str) -> &'static str {
        let set = NAMES.get_or_init(Mutex::default);
        let mut set = set.lock().expect("name set lock holders do not panic");
        if let Some(found) = set.get(name) {
            return found;
        }
        let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
        set.insert(leaked);
        leaked
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().expect("dispatcher lock holders do not panic")
}
