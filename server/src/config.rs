//! Start-up configuration: command-line flags, environment variables and a TOML file.
//!
//! Precedence is flag (or its environment variable) over the config file over the built-in
//! default. Unknown keys in the file are an error, so a typo never silently falls back to a
//! default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

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
        let auth = file
            .auth
            .ok_or_else(|| {
                ConfigError::Invalid(format!("{} has no [auth] section", self.config.display()))
            })?
            .resolve()
            .map_err(ConfigError::Invalid)?;
        let secret = auth.secret.ok_or_else(|| {
            ConfigError::Invalid("the [auth] section has no HS256 secret to sign with".into())
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
        crate::auth::mint_hs256(&secret, &claims).map_err(ConfigError::Invalid)
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
    /// reaches the port can read and write every document.
    #[arg(long, env = INSECURE_ENV)]
    pub insecure_no_auth: bool,
}

/// The config file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
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
}

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
}

/// A configuration that cannot be used; the server exits with this message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown keys.
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    /// A value is out of range.
    #[error("invalid config value: {0}")]
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
        }
    }
}

impl Config {
    /// Resolves flags, environment and the optional file into one configuration.
    pub fn from_args(args: Args) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let mut config = Config::default();
        if let Some(listen) = args.listen.or(file.listen) {
            config.listen = listen;
        }
        if let Some(dir) = args.data_dir.or(file.data_dir) {
            config.data_dir = dir;
        }
        config.sync = file.sync.resolve()?;
        config.auth = file
            .auth
            .map(|auth| auth.resolve().map_err(ConfigError::Invalid))
            .transpose()?;
        config.insecure_no_auth = args.insecure_no_auth;
        if let Some(ms) = file.documents.purge_deleted_after_ms {
            config.purge_deleted_after = Duration::from_millis(ms);
        }
        config.check_exposure()?;
        config.bridges = resolve_bridges(file.bridge)?;
        let defaults = CalendarLimits::default();
        config.calendars = CalendarLimits {
            import_interval: file
                .calendars
                .import_interval_ms
                .map_or(defaults.import_interval, Duration::from_millis)
                .max(Duration::from_millis(10)),
            import_timeout: file
                .calendars
                .import_timeout_ms
                .map_or(defaults.import_timeout, Duration::from_millis)
                .max(Duration::from_millis(10)),
        };
        Ok(config)
    }
}

impl Config {
    /// Refuses to serve a non-loopback address without access control unless told to.
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        if self.auth.is_none() && !self.listen.ip().is_loopback() && !self.insecure_no_auth {
            return Err(ConfigError::Invalid(format!(
                "refusing to listen on {} without access control: add an [auth] section to the \
                 config, listen on a loopback address, or pass --insecure-no-auth ({INSECURE_ENV}=1)",
                self.listen
            )));
        }
        Ok(())
    }
}

/// Resolves every `[[bridge]]` table; names must be unique.
fn resolve_bridges(
    files: Vec<crate::bridges::config::BridgeFile>,
) -> Result<Vec<crate::bridges::BridgeConfig>, ConfigError> {
    let mut bridges: Vec<crate::bridges::BridgeConfig> = Vec::new();
    for file in files {
        let bridge = file
            .resolve()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if bridges.iter().any(|b| b.name == bridge.name) {
            return Err(ConfigError::Invalid(format!(
                "two bridges are named {:?}",
                bridge.name
            )));
        }
        bridges.push(bridge);
    }
    Ok(bridges)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

impl SyncFile {
    fn resolve(self) -> Result<SyncLimits, ConfigError> {
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

impl SyncLimits {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_message_bytes < 1024 || self.max_frame_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "sync message and frame limits must be >= 1024".into(),
            ));
        }
        if self.ping_interval.is_zero() || self.send_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "ping_interval_ms and send_timeout_ms must be > 0".into(),
            ));
        }
        if self.max_documents_per_connection == 0
            || self.max_messages_per_second == 0
            || self.message_burst == 0
            || self.max_document_bytes == 0
            || self.max_connections_per_ip == 0
            || self.handshake_timeout.is_zero()
        {
            return Err(ConfigError::Invalid(
                "max_documents_per_connection, max_messages_per_second, message_burst, \
                 max_document_bytes, max_connections_per_ip and handshake_timeout_ms must be > 0"
                    .into(),
            ));
        }
        if self.compact_after_changes == 0 {
            return Err(ConfigError::Invalid(
                "compact_after_changes must be > 0".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(config: Option<PathBuf>) -> Args {
        Args {
            listen: None,
            data_dir: None,
            config,
            insecure_no_auth: false,
        }
    }

    #[test]
    fn defaults_serve_loopback() {
        let config = Config::from_args(args(None)).expect("defaults are valid");
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(config.sync.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
    }

    #[test]
    fn file_values_apply_and_flags_win() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("syncline.conf");
        let text =
            "listen = \"127.0.0.1:4000\"\ndata_dir = \"/tmp/x\"\n[sync]\nidle_unload_ms = 250\n";
        std::fs::write(&path, text).expect("write config");
        let mut a = args(Some(path));
        a.listen = Some("127.0.0.1:5000".parse().expect("addr"));
        let config = Config::from_args(a).expect("valid file");
        assert_eq!(config.listen.port(), 5000);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.sync.idle_unload, Duration::from_millis(250));
    }

    /// `[[bridge]]` tables resolve; a bad one is refused naming the bridge.
    #[test]
    fn bridges_are_read_and_checked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.toml");
        let good = "[[bridge]]\nname = \"ledger\"\nkind = \"webhook\"\n\
                    url = \"http://127.0.0.1:9/hook\"\ndocuments = \"calendar\"\n\
                    secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\nmode = \"events\"\n";
        std::fs::write(&path, good).expect("write config");
        let config = Config::from_args(args(Some(path.clone()))).expect("valid bridge");
        assert_eq!(config.bridges.len(), 1);
        assert_eq!(config.bridges[0].mode, crate::bridges::Mode::Events);
        assert_eq!(
            config.bridges[0].documents,
            crate::bridges::DocumentFilter::Type("calendar".into())
        );

        let bad = good.replace("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "plain");
        std::fs::write(&path, bad).expect("write config");
        let err = Config::from_args(args(Some(path))).expect_err("bad secret");
        assert!(err.to_string().contains("ledger"), "{err}");
    }

    /// Without `[auth]` only loopback addresses are served, unless the insecure flag is given;
    /// an `[auth]` section with a short secret is refused.
    #[test]
    fn exposure_needs_auth_or_the_insecure_flag() {
        let mut a = args(None);
        a.listen = Some("0.0.0.0:3030".parse().expect("addr"));
        let err = Config::from_args(a).expect_err("exposed without auth");
        assert!(err.to_string().contains("--insecure-no-auth"), "{err}");
        let mut a = args(None);
        a.listen = Some("0.0.0.0:3030".parse().expect("addr"));
        a.insecure_no_auth = true;
        Config::from_args(a).expect("explicitly insecure");

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:1\"\n[auth]\nsecret = \"0123456789abcdef0123456789abcdef\"\n",
        )
        .expect("write config");
        let config = Config::from_args(args(Some(path.clone()))).expect("exposed with auth");
        assert!(config.auth.is_some());
        std::fs::write(&path, "[auth]\nsecret = \"short\"\n").expect("write config");
        let err = Config::from_args(args(Some(path))).expect_err("short secret");
        assert!(err.to_string().contains("32 bytes"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[sync]\nidle_unload = 5\n").expect("write config");
        let err = Config::from_args(args(Some(path))).expect_err("unknown key");
        assert!(err.to_string().contains("idle_unload"), "{err}");
    }
}
