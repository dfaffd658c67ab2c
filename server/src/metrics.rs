//! Prometheus metrics for the whole server.
//!
//! One [`Metrics`] value is created at start-up and shared by reference counting with every
//! stage. Counters and gauges are atomics, so recording never takes a lock on a hot path; the
//! registry itself is only read when `/metrics` is scraped. Every name starts with `syncline_`
//! (the prefix is added by the registry).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label set naming why a connection was refused or closed for bad input.
pub type ReasonLabels = Vec<(&'static str, &'static str)>;

/// All metrics the server records.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Frames received from peers that decoded to a message.
    pub messages_received: Counter,
    /// Frames sent to peers.
    pub messages_sent: Counter,
    /// Changes made durable by the storage writer.
    pub changes_committed: Counter,
    /// Storage transactions committed.
    pub commits: Counter,
    /// Writes (one per document batch) folded into each storage transaction.
    pub commit_batch_writes: Histogram,
    /// Changes folded into each storage transaction.
    pub commit_batch_changes: Histogram,
    /// Seconds spent in each storage commit, fsync included.
    pub commit_seconds: Histogram,
    /// Documents currently held in memory by a document worker.
    pub documents_loaded: Gauge,
    /// Open WebSocket connections.
    pub connections: Gauge,
    /// Connections closed because the peer sent invalid input, by reason.
    pub protocol_errors: Family<ReasonLabels, Counter>,
    /// Ephemeral messages relayed to another peer.
    pub ephemeral_relayed: Counter,
    /// Ephemeral messages dropped as repeats or because a peer's queue was full.
    pub ephemeral_dropped: Counter,
    /// Snapshots written by compaction.
    pub compactions: Counter,
    /// Map keys whose concurrent values the server settled by timestamp.
    pub conflicts_resolved: Counter,
    /// Bookings the server confirmed, rejected or put back, by the status it wrote.
    pub booking_decisions: Family<ReasonLabels, Counter>,
    /// Delivery attempts, by bridge.
    pub bridge_attempts: Family<ReasonLabels, Counter>,
    /// Deliveries the target accepted, by bridge.
    pub bridge_delivered: Family<ReasonLabels, Counter>,
    /// Failed attempts, by bridge and class (retry, throttled, permanent, gone).
    pub bridge_failures: Family<ReasonLabels, Counter>,
    /// Rows dead-lettered, by bridge.
    pub bridge_dead: Family<ReasonLabels, Counter>,
    /// Seconds from a row's commit to its successful delivery.
    pub bridge_delivery_seconds: Histogram,
    /// Live outbox rows (waiting or in flight), by bridge; refreshed every few seconds.
    pub bridge_queue_depth: Family<ReasonLabels, Gauge>,
    /// Requests and upgrades refused for a missing or invalid token, by reason.
    pub auth_refused: Family<ReasonLabels, Counter>,
    /// Document access refused to a valid token: `unreadable` (answered as unavailable) or
    /// `read_only` (a reader's changes, not applied).
    pub access_denied: Family<ReasonLabels, Counter>,
    /// Times a configured limit was reached, by limit.
    pub limit_hits: Family<ReasonLabels, Counter>,
    /// Peers attached to loaded documents with read access or more (one per peer and document).
    pub peers: Gauge,
    /// WebSocket payload bytes received from peers.
    pub bytes_received: Counter,
    /// WebSocket payload bytes sent to peers.
    pub bytes_sent: Counter,
    /// Seconds a document worker spent applying one sync message.
    pub sync_message_seconds: Histogram,
    /// Commands a document worker took from its queue in one turn (its queue depth then).
    pub document_turn_commands: Histogram,
    /// Writes waiting for the storage writer when it started each commit.
    pub storage_queue_depth: Histogram,
    /// Documents dropped from memory after their idle timeout.
    pub documents_unloaded: Counter,
    /// Documents deleted through the HTTP API.
    pub documents_deleted: Counter,
    /// Deleted documents whose data was purged after the retention period.
    pub documents_purged: Counter,
    /// HTTP API requests answered, by route and status code.
    pub http_requests: Family<Vec<(&'static str, String)>, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them under the `syncline` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("syncline");
        let metrics = Self {
            messages_received: Counter::default(),
            messages_sent: Counter::default(),
            changes_committed: Counter::default(),
            commits: Counter::default(),
            commit_batch_writes: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            commit_batch_changes: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            commit_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            documents_loaded: Gauge::default(),
            connections: Gauge::default(),
            protocol_errors: Family::default(),
            ephemeral_relayed: Counter::default(),
            ephemeral_dropped: Counter::default(),
            compactions: Counter::default(),
            conflicts_resolved: Counter::default(),
            booking_decisions: Family::default(),
            bridge_attempts: Family::default(),
            bridge_delivered: Family::default(),
            bridge_failures: Family::default(),
            bridge_dead: Family::default(),
            bridge_delivery_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 20)),
            bridge_queue_depth: Family::default(),
            auth_refused: Family::default(),
            access_denied: Family::default(),
            limit_hits: Family::default(),
            peers: Gauge::default(),
            bytes_received: Counter::default(),
            bytes_sent: Counter::default(),
            sync_message_seconds: Histogram::new(exponential_buckets(0.000_01, 2.0, 20)),
            document_turn_commands: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            storage_queue_depth: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            documents_unloaded: Counter::default(),
            documents_deleted: Counter::default(),
            documents_purged: Counter::default(),
            http_requests: Family::default(),
            registry: Registry::default(),
        };
        let m = &metrics;
        registry.register(
            "messages_received",
            "Messages received from peers",
            m.messages_received.clone(),
        );
        registry.register(
            "messages_sent",
            "Messages sent to peers",
            m.messages_sent.clone(),
        );
        registry.register(
            "changes_committed",
            "Changes made durable",
            m.changes_committed.clone(),
        );
        registry.register(
            "commits",
            "Storage transactions committed",
            m.commits.clone(),
        );
        registry.register(
            "commit_batch_writes",
            "Document writes folded into one storage transaction",
            m.commit_batch_writes.clone(),
        );
        registry.register(
            "commit_batch_changes",
            "Changes folded into one storage transaction",
            m.commit_batch_changes.clone(),
        );
        registry.register(
            "commit_duration_seconds",
            "Time spent committing one storage transaction",
            m.commit_seconds.clone(),
        );
        registry.register(
            "documents_loaded",
            "Documents held in memory",
            m.documents_loaded.clone(),
        );
        registry.register(
            "connections",
            "Open WebSocket connections",
            m.connections.clone(),
        );
        registry.register(
            "protocol_errors",
            "Connections closed for invalid input, by reason",
            m.protocol_errors.clone(),
        );
        registry.register(
            "conflicts_resolved",
            "Map keys whose concurrent values were settled by timestamp",
            m.conflicts_resolved.clone(),
        );
        registry.register(
            "booking_decisions",
            "Bookings confirmed, rejected or put back by the server, by status written",
            m.booking_decisions.clone(),
        );
        registry.register(
            "bridge_attempts",
            "Delivery attempts, by bridge",
            m.bridge_attempts.clone(),
        );
        registry.register(
            "bridge_delivered",
            "Deliveries accepted by their target, by bridge",
            m.bridge_delivered.clone(),
        );
        registry.register(
            "bridge_failures",
            "Failed delivery attempts, by bridge and class",
            m.bridge_failures.clone(),
        );
        registry.register(
            "bridge_dead",
            "Deliveries dead-lettered, by bridge",
            m.bridge_dead.clone(),
        );
        registry.register(
            "bridge_queue_depth",
            "Deliveries waiting or in flight, by bridge",
            m.bridge_queue_depth.clone(),
        );
        registry.register(
            "bridge_delivery_seconds",
            "Time from a delivery's commit to its acceptance by the target",
            m.bridge_delivery_seconds.clone(),
        );
        registry.register(
            "ephemeral_relayed",
            "Ephemeral messages relayed",
            m.ephemeral_relayed.clone(),
        );
        registry.register(
            "ephemeral_dropped",
            "Ephemeral messages dropped as repeats or for a full queue",
            m.ephemeral_dropped.clone(),
        );
        registry.register(
            "compactions",
            "Snapshots written by compaction",
            m.compactions.clone(),
        );
        registry.register(
            "auth_refused",
            "Requests refused for a missing or invalid token, by reason",
            m.auth_refused.clone(),
        );
        registry.register(
            "access_denied",
            "Document access refused to a valid token, by reason",
            m.access_denied.clone(),
        );
        registry.register(
            "limit_hits",
            "Times a configured limit was reached, by limit",
            m.limit_hits.clone(),
        );
        registry.register(
            "peers",
            "Peers attached to loaded documents (one per peer and document)",
            m.peers.clone(),
        );
        registry.register(
            "bytes_received",
            "WebSocket payload bytes received from peers",
            m.bytes_received.clone(),
        );
        registry.register(
            "bytes_sent",
            "WebSocket payload bytes sent to peers",
            m.bytes_sent.clone(),
        );
        registry.register(
            "sync_message_duration_seconds",
            "Time a document worker spent applying one sync message",
            m.sync_message_seconds.clone(),
        );
        registry.register(
            "document_turn_commands",
            "Commands a document worker took from its queue in one turn",
            m.document_turn_commands.clone(),
        );
        registry.register(
            "storage_queue_depth",
            "Document writes waiting when the storage writer started a commit",
            m.storage_queue_depth.clone(),
        );
        registry.register(
            "documents_unloaded",
            "Documents dropped from memory after their idle timeout",
            m.documents_unloaded.clone(),
        );
        registry.register(
            "documents_deleted",
            "Documents deleted through the HTTP API",
            m.documents_deleted.clone(),
        );
        registry.register(
            "documents_purged",
            "Deleted documents whose data was purged",
            m.documents_purged.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP API requests answered, by route and status",
            m.http_requests.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// Counts one connection closed for invalid input.
    pub fn protocol_error(&self, reason: &'static str) {
        self.protocol_errors
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    /// Counts one refusal of document access.
    pub fn access_denied(&self, reason: &'static str) {
        self.access_denied
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    /// Counts one time `limit` was reached.
    pub fn limit_hit(&self, limit: &'static str) {
        self.limit_hits.get_or_create(&vec![("limit", limit)]).inc();
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
