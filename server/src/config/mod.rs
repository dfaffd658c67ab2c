//! Start-up configuration: command-line flags, environment variables and a TOML file.
//!
//! Precedence is flag (or its environment variable) over the config file over the built-in
//! default. Unknown keys in the file are an error, so a typo never silently falls back to a
//! default. Every refusal is one line that names the file, the key or the path, what is wrong
//! with it and what would be accepted, since it is all an operator sees of a failed start.

mod parse_error;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use parse_error::describe_parse_error;

/// Default address: loopback only, so a first run exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3030";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./syncline-data";
/// The JavaScript client allows messages up to 100 MiB; accept the same.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 100 * 1024 * 1024;
/// Env var and flag that allow serving a non-loopback address without `[auth]`.
pub const INSECURE_ENV: &str = "SYNCLINE_INSECURE_NO_AUTH";

/// The `syncline-server` command line: serve (the default), or a tool subcommand.
#[derive(Debug, Parser)]
#[command(
    name = "syncline-server",
    version,
    about = "Syncline sync server",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A tool to run instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of the server.
    #[command(flatten)]
    pub serve: Args,
}

/// Tools of the server binary.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Prints an HS256 token signed with the config's `[auth]` secret, for development and
    /// scripts; production tokens come from the application's own sign-in service.
    Token(TokenArgs),
}

/// Flags of `syncline-server token`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The config file whose `[auth]` secret signs the token.
    #[arg(long, env = "SYNCLINE_CONFIG")]
    pub config: PathBuf,
    /// The subject (`sub`): who holds the token; documents it creates become its `own`.
    #[arg(long)]
    pub sub: String,
    /// Grant read access: a document id, `*` (every document) or `own`. Repeatable.
    #[arg(long, value_name = "DOC")]
    pub read: Vec<String>,
    /// Grant write access: a document id, `*` or `own`. Repeatable.
    #[arg(long, value_name = "DOC")]
    pub write: Vec<String>,
    /// Allow the operator routes (`/admin/...`).
    #[arg(long)]
    pub admin: bool,
    /// Seconds until the token expires.
    #[arg(long, default_value_t = 3600)]
    pub ttl_seconds: u64,
}

impl TokenArgs {
    /// Signs the token these flags describe.
    pub fn mint(&self) -> Result<String, ConfigError> {
        let file = read_file(&self.config)?;
        let refuse = |why: &str| ConfigError::Value {
            path: self.config.clone(),
            why: why.to_owned(),
        };
        let auth = file
            .auth
            .ok_or_else(|| refuse("there is no [auth] section, whose secret signs tokens"))?;
        let auth = resolve_auth(auth).map_err(|why| refuse(&why))?;
        let secret = auth.secret.ok_or_else(|| {
            refuse(
                "the [auth] section has no secret (HS256) to sign with; Ed25519 public keys \
                 only verify tokens",
            )
        })?;
        let mut docs = std::collections::BTreeMap::new();
        for doc in &self.read {
            docs.insert(doc.clone(), crate::auth::Access::Read);
        }
        for doc in &self.write {
            docs.insert(doc.clone(), crate::auth::Access::Write);
        }
        let claims = crate::auth::Claims {
            sub: self.sub.clone(),
            exp: crate::auth::unix_now().saturating_add(self.ttl_seconds),
            nbf: None,
            iss: auth.issuer,
            aud: auth.audience,
            docs,
            admin: self.admin,
        };
        crate::auth::mint_hs256(&secret, &claims).map_err(|why| refuse(&why))
    }
}

/// Flags of the server itself.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on for HTTP and WebSocket sync.
    #[arg(long, env = "SYNCLINE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory holding the redb database; created with its parents if missing.
    #[arg(long, env = "SYNCLINE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long, env = "SYNCLINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Serve a non-loopback address although no `[auth]` section is configured, so anyone who
    /// reaches the port can read and write every document. The variable takes `1`, `true`,
    /// `yes` or `on` (and `0`, `false`, `no`, `off`).
    #[arg(long, env = INSECURE_ENV, value_parser = clap::builder::BoolishValueParser::new())]
    pub insecure_no_auth: bool,
    /// Format of the log lines on standard error: `text` (default) or `json` (one object a
    /// line, with the current span and the list of spans).
    #[arg(
        long,
        env = "SYNCLINE_LOG_FORMAT",
        value_enum,
        value_name = "FORMAT",
        global = true
    )]
    pub log_format: Option<LogFormat>,
}

/// How log lines are written: `Text`, one human-readable line per event, or `Json`, one JSON
/// object per line for log collectors. The variants have no doc comments of their own, which
/// clap would print as a long `--help`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The config file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    log_format: Option<LogFormat>,
    #[serde(default)]
    sync: SyncFile,
    /// `[[bridge]]` tables, one per outbound target.
    #[serde(default)]
    bridge: Vec<crate::bridges::config::BridgeFile>,
    #[serde(default)]
    calendars: CalendarsFile,
    /// Access control; without it every request is allowed.
    auth: Option<crate::auth::AuthFile>,
    #[serde(default)]
    documents: DocumentsFile,
    #[serde(default)]
    storage: StorageFile,
}

/// The `[storage]` table: the embedded database.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageFile {
    cache_bytes: Option<usize>,
}

/// Default size of redb's page cache. redb's own default, 1 GiB, is what a server that once read
/// many documents keeps resident; this keeps memory modest and is raised where the working set
/// of documents is larger.
pub const DEFAULT_STORAGE_CACHE_BYTES: usize = 256 * 1024 * 1024;

/// The smallest page cache accepted.
pub const MIN_STORAGE_CACHE_BYTES: usize = 1024 * 1024;

/// The `[documents]` table: what happens to deleted documents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentsFile {
    purge_deleted_after_ms: Option<u64>,
}

/// Default time a deleted document's data is kept before it is purged: 30 days.
pub const DEFAULT_PURGE_DELETED_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);

/// The `[calendars]` table: polling of imported feeds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarsFile {
    import_interval_ms: Option<u64>,
    import_timeout_ms: Option<u64>,
}

/// How imported calendar feeds are polled.
#[derive(Debug, Clone)]
pub struct CalendarLimits {
    /// Time between two polls of every feed.
    pub import_interval: Duration,
    /// One request's limit.
    pub import_timeout: Duration,
}

impl Default for CalendarLimits {
    fn default() -> Self {
        Self {
            import_interval: Duration::from_secs(15 * 60),
            import_timeout: Duration::from_secs(15),
        }
    }
}

/// The `[sync]` table: limits and timeouts of the sync endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncFile {
    max_message_bytes: Option<usize>,
    max_frame_bytes: Option<usize>,
    idle_unload_ms: Option<u64>,
    ping_interval_ms: Option<u64>,
    send_timeout_ms: Option<u64>,
    compact_after_changes: Option<u64>,
    max_clock_skew_ms: Option<u64>,
    max_documents_per_connection: Option<usize>,
    max_messages_per_second: Option<u32>,
    message_burst: Option<u32>,
    max_document_bytes: Option<u64>,
    max_connections_per_ip: Option<usize>,
    handshake_timeout_ms: Option<u64>,
}

/// Limits and timeouts of the sync endpoint.
#[derive(Debug, Clone)]
pub struct SyncLimits {
    /// Largest WebSocket message accepted from a peer.
    pub max_message_bytes: usize,
    /// Largest single WebSocket frame accepted from a peer.
    pub max_frame_bytes: usize,
    /// A document nobody has attached for this long is dropped from memory.
    pub idle_unload: Duration,
    /// Interval between pings; a peer silent for three intervals is disconnected.
    pub ping_interval: Duration,
    /// A peer whose socket takes longer than this to accept one message is disconnected; it
    /// resyncs when it reconnects. This is what keeps a stuck peer from holding memory.
    pub send_timeout: Duration,
    /// Fold the change log into a snapshot once this many changes were logged after the last.
    pub compact_after_changes: u64,
    /// A change stamped further than this ahead of its receipt counts, for the conflict
    /// policy, as stamped at its receipt plus this much.
    pub max_clock_skew: Duration,
    /// Documents one connection may attach; the connection that asks for one more is closed.
    pub max_documents_per_connection: usize,
    /// Sustained messages per second one connection may send; faster peers are read more
    /// slowly (a token bucket), never disconnected for it.
    pub max_messages_per_second: u32,
    /// Messages a connection may send at once before the rate applies (the bucket's size).
    pub message_burst: u32,
    /// Total bytes of changes one document may hold; a sync message that would take it past
    /// this is refused with an error to its sender.
    pub max_document_bytes: u64,
    /// Open WebSocket connections from one IP address; more are refused with 429.
    pub max_connections_per_ip: usize,
    /// A connection that has not sent `join` this long after the upgrade is closed, and an
    /// HTTP request whose headers take longer than this is dropped.
    pub handshake_timeout: Duration,
}

impl Default for SyncLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_frame_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            idle_unload: Duration::from_secs(60),
            ping_interval: Duration::from_secs(5),
            send_timeout: Duration::from_secs(30),
            compact_after_changes: 500,
            max_clock_skew: Duration::from_secs(
                syncline_shared::policy::DEFAULT_SKEW_SECONDS.unsigned_abs(),
            ),
            max_documents_per_connection: 10_000,
            max_messages_per_second: 2_000,
            message_burst: 10_000,
            max_document_bytes: 512 * 1024 * 1024,
            max_connections_per_ip: 10_000,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the redb file.
    pub data_dir: PathBuf,
    /// Sync endpoint limits.
    pub sync: SyncLimits,
    /// Outbound bridges, in file order.
    pub bridges: Vec<crate::bridges::BridgeConfig>,
    /// Calendar feed import.
    pub calendars: CalendarLimits,
    /// Access control; `None` lets every request in.
    pub auth: Option<crate::auth::AuthConfig>,
    /// Serve a non-loopback address without access control.
    pub insecure_no_auth: bool,
    /// A deleted document's changes are purged this long after its deletion.
    pub purge_deleted_after: Duration,
    /// Bytes of redb's page cache.
    pub storage_cache_bytes: usize,
    /// How `main` writes log lines; the server itself does not read it.
    pub log_format: LogFormat,
}

/// A configuration that cannot be used; the server exits with this message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error(
        "cannot read config file {path}: {source}; check the path given to --config or \
         SYNCLINE_CONFIG"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("invalid config file {path}: {detail}")]
    Parse {
        path: PathBuf,
        /// Where, which key and what was expected, on one line.
        detail: String,
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A value in the config file is well-formed but unusable, such as a limit below its
    /// minimum or a bridge without a secret.
    #[error("invalid config file {path}: {why}")]
    Value { path: PathBuf, why: String },
    /// The data directory cannot be one: it is a file, or lies under one.
    #[error(
        "unusable data directory {path}: {why}; pass a directory, or a path where one can be \
         created, to --data-dir (SYNCLINE_DATA_DIR, or data_dir in the config file)"
    )]
    DataDir { path: PathBuf, why: String },
    /// The settings do not fit together.
    #[error("{0}")]
    Invalid(String),
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .expect("the default listen address is valid"),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            sync: SyncLimits::default(),
            bridges: Vec::new(),
            calendars: CalendarLimits::default(),
            auth: None,
            insecure_no_auth: false,
            purge_deleted_after: DEFAULT_PURGE_DELETED_AFTER,
            storage_cache_bytes: DEFAULT_STORAGE_CACHE_BYTES,
            log_format: LogFormat::Text,
        }
    }
}

impl Config {
    /// Resolves flags, environment and the optional file into one configuration.
    pub fn from_args(args: Args) -> Result<Self, ConfigError> {
        let mut file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let mut config = Config::default();
        if let Some(listen) = args.listen.or(file.listen) {
            config.listen = listen;
        }
        if let Some(dir) = args.data_dir.or(file.data_dir.take()) {
            config.data_dir = dir;
        }
        config.log_format = args.log_format.or(file.log_format).unwrap_or_default();
        config.insecure_no_auth = args.insecure_no_auth;

        // Only values read from a file can be refused here, so there is a path to name.
        let path = args.config.unwrap_or_default();
        config
            .apply_tables(file)
            .map_err(|why| ConfigError::Value { path, why })?;
        check_data_dir(&config.data_dir)?;
        config.check_exposure()?;
        Ok(config)
    }

    /// Takes the file's tables: `[sync]`, `[auth]`, `[documents]`, `[storage]`, `[[bridge]]`,
    /// `[calendars]`.
    fn apply_tables(&mut self, file: FileConfig) -> Result<(), String> {
        self.sync = file.sync.resolve()?;
        if let Some(bytes) = file.storage.cache_bytes {
            if bytes < MIN_STORAGE_CACHE_BYTES {
                return Err(format!(
                    "[storage] cache_bytes = {bytes} is below its minimum, {MIN_STORAGE_CACHE_BYTES}; \
                     raise it, or remove the key to use the default, {DEFAULT_STORAGE_CACHE_BYTES}"
                ));
            }
            self.storage_cache_bytes = bytes;
        }
        self.auth = file.auth.map(resolve_auth).transpose()?;
        if let Some(ms) = file.documents.purge_deleted_after_ms {
            self.purge_deleted_after = Duration::from_millis(ms);
        }
        self.bridges = resolve_bridges(file.bridge)?;
        let defaults = CalendarLimits::default();
        let at_least_10_ms = |ms: Option<u64>, default| {
            ms.map_or(default, Duration::from_millis)
                .max(Duration::from_millis(10))
        };
        self.calendars = CalendarLimits {
            import_interval: at_least_10_ms(
                file.calendars.import_interval_ms,
                defaults.import_interval,
            ),
            import_timeout: at_least_10_ms(
                file.calendars.import_timeout_ms,
                defaults.import_timeout,
            ),
        };
        Ok(())
    }
}

impl Config {
    /// Refuses to serve a non-loopback address without access control unless told to.
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        if self.auth.is_none() && !self.listen.ip().is_loopback() && !self.insecure_no_auth {
            return Err(ConfigError::Invalid(format!(
                "refusing to listen on {} without access control: add an [auth] section to the \
                 config, listen on a loopback address, or pass --insecure-no-auth \
                 ({INSECURE_ENV}=1)",
                self.listen
            )));
        }
        Ok(())
    }
}

/// Resolves every `[[bridge]]` table; names must be unique.
fn resolve_bridges(
    files: Vec<crate::bridges::config::BridgeFile>,
) -> Result<Vec<crate::bridges::BridgeConfig>, String> {
    let mut bridges: Vec<crate::bridges::BridgeConfig> = Vec::new();
    for file in files {
        let bridge = file.resolve().map_err(|e| e.to_string())?;
        check_rate(&bridge)?;
        if bridges.iter().any(|b| b.name == bridge.name) {
            return Err(format!(
                "two [[bridge]] tables are named {:?}; give each a name of its own",
                bridge.name
            ));
        }
        bridges.push(bridge);
    }
    Ok(bridges)
}

/// A bridge's rate becomes the interval between request starts, which must be a time:
/// `nan`, `inf` and rates so small that the interval overflows are refused.
fn check_rate(bridge: &crate::bridges::BridgeConfig) -> Result<(), String> {
    match bridge.rate_per_second {
        Some(rate) if !rate.is_finite() || Duration::try_from_secs_f64(1.0 / rate).is_err() => {
            Err(format!(
                "bridge {:?}: rate_per_second = {rate} is not a usable rate; use a finite \
                 number of requests per second above 0, or remove the key for no limit",
                bridge.name
            ))
        }
        _ => Ok(()),
    }
}

/// Resolves the `[auth]` table. Its own messages name their key; a key file it could not read
/// is put in the table's context.
fn resolve_auth(file: crate::auth::AuthFile) -> Result<crate::auth::AuthConfig, String> {
    file.resolve().map_err(|why| match why.contains("auth") {
        true => why,
        false => format!("[auth] {why}"),
    })
}

/// Refuses a data directory that cannot become one: a path that is a file, or lies under one.
/// Anything else (a missing directory, one this process cannot write) is left to storage,
/// which creates it or says why it cannot.
fn check_data_dir(dir: &Path) -> Result<(), ConfigError> {
    let refuse = |why: String| ConfigError::DataDir {
        path: dir.to_owned(),
        why,
    };
    for ancestor in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        match std::fs::metadata(ancestor) {
            Ok(meta) if meta.is_dir() => return Ok(()),
            Ok(_) if ancestor == dir => return Err(refuse("it is a file, not a directory".into())),
            Ok(_) => {
                return Err(refuse(format!(
                    "{} is a file, so no directory can be created under it",
                    ancestor.display()
                )));
            }
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) => {}
            Err(err) => {
                return Err(refuse(format!(
                    "cannot inspect {}: {err}",
                    ancestor.display()
                )));
            }
        }
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        detail: describe_parse_error(&text, &source),
        source: Box::new(source),
    })
}

impl SyncFile {
    fn resolve(self) -> Result<SyncLimits, String> {
        let defaults = SyncLimits::default();
        let ms = Duration::from_millis;
        let limits = SyncLimits {
            max_message_bytes: self.max_message_bytes.unwrap_or(defaults.max_message_bytes),
            max_frame_bytes: self.max_frame_bytes.unwrap_or(defaults.max_frame_bytes),
            idle_unload: self.idle_unload_ms.map(ms).unwrap_or(defaults.idle_unload),
            ping_interval: self
                .ping_interval_ms
                .map(ms)
                .unwrap_or(defaults.ping_interval),
            send_timeout: self
                .send_timeout_ms
                .map(ms)
                .unwrap_or(defaults.send_timeout),
            compact_after_changes: self
                .compact_after_changes
                .unwrap_or(defaults.compact_after_changes),
            max_clock_skew: self
                .max_clock_skew_ms
                .map(ms)
                .unwrap_or(defaults.max_clock_skew),
            max_documents_per_connection: self
                .max_documents_per_connection
                .unwrap_or(defaults.max_documents_per_connection),
            max_messages_per_second: self
                .max_messages_per_second
                .unwrap_or(defaults.max_messages_per_second),
            message_burst: self.message_burst.unwrap_or(defaults.message_burst),
            max_document_bytes: self
                .max_document_bytes
                .unwrap_or(defaults.max_document_bytes),
            max_connections_per_ip: self
                .max_connections_per_ip
                .unwrap_or(defaults.max_connections_per_ip),
            handshake_timeout: self
                .handshake_timeout_ms
                .map(ms)
                .unwrap_or(defaults.handshake_timeout),
        };
        limits.validate()?;
        Ok(limits)
    }
}

/// The longest a `[sync]` timeout or interval may be, 365 days: deadlines are computed by
/// adding it to the clock, which must not overflow.
const MAX_SYNC_MS: u64 = 365 * 24 * 3600 * 1000;

impl SyncLimits {
    /// Each limit as `(key, value, smallest, largest)`, in the file's units.
    fn bounds(&self) -> [(&'static str, u64, u64, u64); 13] {
        let n = |value: usize| u64::try_from(value).unwrap_or(u64::MAX);
        let ms = |value: Duration| u64::try_from(value.as_millis()).unwrap_or(u64::MAX);
        let any = u64::MAX;
        [
            ("max_message_bytes", n(self.max_message_bytes), 1024, any),
            ("max_frame_bytes", n(self.max_frame_bytes), 1024, any),
            ("idle_unload_ms", ms(self.idle_unload), 0, MAX_SYNC_MS),
            ("ping_interval_ms", ms(self.ping_interval), 1, MAX_SYNC_MS),
            ("send_timeout_ms", ms(self.send_timeout), 1, MAX_SYNC_MS),
            ("compact_after_changes", self.compact_after_changes, 1, any),
            ("max_clock_skew_ms", ms(self.max_clock_skew), 0, MAX_SYNC_MS),
            (
                "max_documents_per_connection",
                n(self.max_documents_per_connection),
                1,
                any,
            ),
            (
                "max_messages_per_second",
                self.max_messages_per_second.into(),
                1,
                any,
            ),
            ("message_burst", self.message_burst.into(), 1, any),
            ("max_document_bytes", self.max_document_bytes, 1, any),
            (
                "max_connections_per_ip",
                n(self.max_connections_per_ip),
                1,
                any,
            ),
            (
                "handshake_timeout_ms",
                ms(self.handshake_timeout),
                1,
                MAX_SYNC_MS,
            ),
        ]
    }

    /// Refuses the first limit outside its bounds, naming it, its bounds and its default.
    fn validate(&self) -> Result<(), String> {
        let defaults = SyncLimits::default().bounds();
        for ((key, value, min, max), (_, default, _, _)) in self.bounds().into_iter().zip(defaults)
        {
            let bound = match value {
                v if v < min => format!("below its minimum, {min}; raise it"),
                v if v > max => format!("above its maximum, {max}; lower it"),
                _ => continue,
            };
            return Err(format!(
                "[sync] {key} = {value} is {bound}, or remove the key to use the default, {default}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
