//! The Syncline server: automerge-repo WebSocket sync on a durable redb event log.
//!
//! A frame travels through the stages in this order, one module each:
//!
//! 1. [`net`]: the listener upgrades `/` or `/sync` to a WebSocket; a connection task decodes and
//!    validates each frame and routes it by document.
//! 2. [`documents`]: one worker per loaded document applies sync messages in arrival order,
//!    relays ephemeral messages, and asks storage to make new changes durable.
//! 3. [`storage`]: a single writer folds every pending write of every document into one redb
//!    transaction (group commit) and answers the workers once it is on disk.
//! 4. Back in the worker: only after that commit are sync messages generated for the peers, so a
//!    peer never hears of heads that a crash could take away. Each connection pulls those
//!    messages when its socket can take them, so a slow peer costs no growing memory.
//!
//! [`Server::start`] wires the stages; `main.rs` adds flags, logging and signals.

pub mod auth;
pub mod bridges;
pub mod config;
pub mod documents;
pub mod http;
pub mod metrics;
pub mod net;
pub mod storage;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use syncline_shared::ids::{PeerId, StorageId};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use bridges::Dispatcher;
use config::Config;
use documents::Registry;
use metrics::Metrics;
use net::NetState;
use storage::{Storage, WriterConfig};
use tokio_util::sync::CancellationToken;

/// How long shutdown waits for connections to close before it stops waiting for them.
const CONNECTION_DRAIN: Duration = Duration::from_secs(5);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Storage could not be opened.
    #[error(
        "cannot open storage in {dir}: {source}; check that it is a directory this process can \
         write and that no other syncline-server has it open, or choose another with --data-dir"
    )]
    Storage {
        dir: std::path::PathBuf,
        #[source]
        source: storage::StorageError,
    },
    /// The configuration is unsafe or inconsistent.
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    /// The `[auth]` section's keys are unusable.
    #[error("invalid [auth] section: {0}")]
    Auth(String),
    /// The listen address could not be bound.
    #[error(
        "cannot listen on {addr}: {source}; choose a free address this process may bind with \
         --listen (SYNCLINE_LISTEN, or listen in the config file)"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    net: Arc<NetState>,
    writer: storage::Writer,
    http: JoinHandle<()>,
    dispatcher: Dispatcher,
    /// Stops the bridges' delivery chains at shutdown.
    bridges_stop: CancellationToken,
}

impl Server {
    /// Opens storage, starts the storage writer, and starts serving on the configured address.
    pub async fn start(config: Config) -> Result<Server, StartError> {
        config.check_exposure()?;
        let authenticator = config
            .auth
            .as_ref()
            .map(auth::Authenticator::new)
            .transpose()
            .map_err(StartError::Auth)?;
        match &authenticator {
            Some(authenticator) => info!(
                ?authenticator,
                "access control on: every sync connection and HTTP route but /healthz, /readyz and /metrics needs a token"
            ),
            None => {
                warn!(listen = %config.listen, "access control is off (no [auth] section): anyone who reaches this address can read and write every document")
            }
        }
        let data_dir = config.data_dir.clone();
        let cache_bytes = config.storage_cache_bytes;
        let storage =
            tokio::task::spawn_blocking(move || Storage::open_with_cache(&data_dir, cache_bytes))
                .await
                .expect("storage open task does not panic")
                .map_err(|source| StartError::Storage {
                    dir: config.data_dir.clone(),
                    source,
                })?;
        let metrics = Arc::new(Metrics::new());
        let writer = storage.start_writer(metrics.clone(), WriterConfig::default());

        let storage_id = StorageId(storage.storage_id().to_owned());
        let server_peer = PeerId(format!("syncline-{}", storage_id.0));
        let bridges_stop = CancellationToken::new();
        let dispatcher =
            Dispatcher::start(&config.bridges, &storage, &writer, &metrics, &bridges_stop);
        let feed_storage = storage.clone();
        let storage_for_api = storage.clone();
        let import_storage = storage.clone();
        let importer = bridges::import::Importer::new(
            config.calendars.import_interval,
            config.calendars.import_timeout,
        );
        let registry = Registry::new();
        registry.start(documents::Services {
            server_peer: server_peer.clone(),
            storage,
            writer: writer.clone(),
            metrics: metrics.clone(),
            limits: config.sync.clone(),
            dispatcher: dispatcher.clone(),
            importer: importer.clone(),
        });
        importer.start(import_storage, registry.clone(), bridges_stop.clone());
        documents::purge::start(
            storage_for_api.clone(),
            writer.clone(),
            metrics.clone(),
            config.purge_deleted_after,
            bridges_stop.clone(),
        );
        let gate = auth::http::Gate::new(authenticator, metrics.clone());
        let header_timeout = config.sync.handshake_timeout;
        let net = Arc::new(NetState::new(
            server_peer,
            storage_id,
            registry,
            metrics,
            config.sync,
            gate.clone(),
        ));

        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let api = http::api::ApiState {
            registry: net.registry.clone(),
            storage: storage_for_api,
            gate: gate.clone(),
            metrics: net.metrics.clone(),
            shutdown: net.shutdown.clone(),
            max_body_bytes: net.limits.max_message_bytes,
        };
        let app = net::router(net.clone())
            .merge(http::router(api, net.clone()))
            .merge(bridges::admin::router(dispatcher.clone(), gate.clone()))
            .merge(bridges::feed::router(feed_storage, gate));
        let shutdown = net.shutdown.clone();
        let http = tokio::spawn(net::serve::serve(listener, app, header_timeout, shutdown));
        info!(%local_addr, "serving");
        Ok(Server {
            local_addr,
            net,
            writer,
            http,
            dispatcher,
            bridges_stop,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Documents currently loaded in memory.
    pub fn documents_loaded(&self) -> usize {
        self.net.registry.loaded()
    }

    /// Stops accepting, closes every peer, lets document workers make their last writes
    /// durable, and stops the storage writer once its queue is empty.
    pub async fn shutdown(self) {
        info!("shutting down");
        self.net.stop_accepting();
        self.net.shutdown.cancel();
        self.net.connections.close();
        if tokio::time::timeout(CONNECTION_DRAIN, self.net.connections.wait())
            .await
            .is_err()
        {
            warn!("connections did not close in time; continuing shutdown");
        }
        let _ = self.http.await;
        if tokio::time::timeout(CONNECTION_DRAIN, self.net.registry.shutdown())
            .await
            .is_err()
        {
            error!("document workers did not finish in time; their last writes may be lost");
        }
        // Deliveries in flight are abandoned; their rows resume from the outbox on next start.
        self.bridges_stop.cancel();
        self.dispatcher.stopped().await;
        drop(self.net);
        self.writer.shutdown().await;
        info!("shut down");
    }
}
