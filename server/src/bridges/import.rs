//! iCalendar feed import: booking sites' exports turned into blocked nights.
//!
//! A calendar document lists feeds under `imports` (`[{"url", "channel"}]`). Its worker tells
//! the [`Importer`] whenever that list changes, and stores it, so polling resumes after a
//! restart without loading the document. Every interval the importer fetches each feed with a
//! conditional GET (`If-None-Match`, `If-Modified-Since`): an unchanged feed costs a 304 and
//! nothing else. A changed one is parsed into nights and handed to the document's worker, which
//! writes one server change if the nights differ from what that channel blocks (none
//! otherwise): new nights blocked with `blocked_by` set to the channel, and nights that channel
//! blocked but no longer lists freed. A feed that fails or does not parse is reported and
//! changes nothing, so an outage on the booking site never wipes the calendar.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use syncline_shared::ical::nights_in_feed;
use syncline_shared::ids::DocumentId;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::documents::{DocumentCommand, Registry};
use crate::storage::Storage;

/// One imported feed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Feed {
    /// Where to fetch it.
    pub url: String,
    /// The channel its nights are blocked for (`blocked_by`).
    pub channel: String,
}

/// What the last successful fetch of a feed said, for conditional requests.
#[derive(Debug, Default, Clone)]
struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
}

/// Polls every registered feed. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Importer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    feeds: Mutex<HashMap<DocumentId, Vec<Feed>>>,
    validators: Mutex<HashMap<(DocumentId, String), Validators>>,
    client: reqwest::Client,
    interval: Duration,
}

impl Importer {
    /// An importer polling every `interval`, each request bounded by `timeout`.
    pub fn new(interval: Duration, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                feeds: Mutex::new(HashMap::new()),
                validators: Mutex::new(HashMap::new()),
                client,
                interval,
            }),
        }
    }

    /// Starts polling: the feeds stored for every document, then whatever workers register.
    pub fn start(&self, storage: Storage, registry: Registry, stop: CancellationToken) {
        let importer = self.clone();
        tokio::spawn(async move {
            match tokio::task::spawn_blocking(move || storage.imports()).await {
                Ok(Ok(stored)) => {
                    for (document, feeds) in stored {
                        let feeds = feeds
                            .into_iter()
                            .map(|(url, channel)| Feed { url, channel })
                            .collect();
                        importer.register(document, feeds);
                    }
                }
                Ok(Err(err)) => {
                    warn!(
                        error = %err,
                        "cannot read stored feed imports; they resume when their documents load",
                    )
                }
                Err(_) => {}
            }
            importer.poll_forever(&registry, &stop).await;
        });
    }

    /// Replaces the feeds a document imports (an empty list stops importing).
    pub fn register(&self, document: DocumentId, feeds: Vec<Feed>) {
        let mut all = lock(&self.inner.feeds);
        if feeds.is_empty() {
            all.remove(&document);
        } else {
            all.insert(document, feeds);
        }
    }

    async fn poll_forever(&self, registry: &Registry, stop: &CancellationToken) {
        loop {
            let feeds: Vec<(DocumentId, Feed)> = lock(&self.inner.feeds)
                .iter()
                .flat_map(|(doc, feeds)| feeds.iter().map(|feed| (*doc, feed.clone())))
                .collect();
            for (document, feed) in feeds {
                if stop.is_cancelled() {
                    return;
                }
                self.poll(registry, document, &feed).await;
            }
            tokio::select! {
                () = tokio::time::sleep(self.inner.interval) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// Fetches one feed and, if it changed and parses, hands its nights to the document.
    async fn poll(&self, registry: &Registry, document: DocumentId, feed: &Feed) {
        let key = (document, feed.url.clone());
        let known = lock(&self.inner.validators)
            .get(&key)
            .cloned()
            .unwrap_or_default();
        let mut request = self.inner.client.get(&feed.url);
        if let Some(etag) = &known.etag {
            request = request.header("if-none-match", etag);
        }
        if let Some(date) = &known.last_modified {
            request = request.header("if-modified-since", date);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                warn!(
                    doc = %document,
                    url = %feed.url,
                    error = %err,
                    "feed import failed; the calendar keeps what it has, will retry next interval",
                );
                return;
            }
        };
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            debug!(doc = %document, url = %feed.url, "feed unchanged");
            return;
        }
        if !status.is_success() {
            warn!(
                doc = %document,
                url = %feed.url,
                %status,
                "feed import refused; the calendar keeps what it has",
            );
            return;
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let validators = Validators {
            etag: header("etag"),
            last_modified: header("last-modified"),
        };
        let text = match response.text().await {
            Ok(text) => text,
            Err(err) => {
                warn!(
                    doc = %document,
                    url = %feed.url,
                    error = %err,
                    "feed body unreadable; ignored",
                );
                return;
            }
        };
        let nights = match nights_in_feed(&text) {
            Ok(nights) => nights,
            Err(err) => {
                warn!(
                    doc = %document,
                    url = %feed.url,
                    error = %err,
                    "feed does not parse; the calendar keeps what it has",
                );
                return;
            }
        };
        if self.deliver(registry, document, feed, nights).await {
            lock(&self.inner.validators).insert(key, validators);
        }
    }

    async fn deliver(
        &self,
        registry: &Registry,
        document: DocumentId,
        feed: &Feed,
        nights: BTreeSet<String>,
    ) -> bool {
        let command = DocumentCommand::Import {
            channel: feed.channel.clone(),
            nights,
        };
        registry.open(document).send(command).await
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().expect("importer lock holders do not panic")
}
