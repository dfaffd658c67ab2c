//! `syncline`: the command-line client.
//!
//! Every command opens the local store (`--store`, by default a per-user data directory) and,
//! with `--server`, keeps in sync with that server while it runs. Standard output carries only
//! the result; logs and errors go to standard error. `create` and `set` with a server exit 0
//! only once the server has acknowledged the new heads as durable; `get` and `status` with a
//! server first sync both ways. Without a server everything works on the local store alone,
//! and what was written there is uploaded by the next command that names a server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use automerge::ChangeHash;
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use syncline_client::{Client, ClientConfig, ClientError, Document};
use syncline_shared::ids::{AutomergeUrl, DocumentId};
use syncline_shared::json::{self, JsonPath};
use tokio::signal::unix::{Signal, SignalKind, signal};

#[derive(Debug, Parser)]
#[command(
    name = "syncline",
    version,
    about = "Offline-first client for Syncline documents"
)]
struct Args {
    /// Server to sync with (`ws://host:port/`); repeat for several. Without one, commands work
    /// on the local store alone.
    #[arg(long, env = "SYNCLINE_SERVER", value_delimiter = ',')]
    server: Vec<String>,
    /// Directory of the local store; created if missing.
    #[arg(long, env = "SYNCLINE_STORE")]
    store: Option<PathBuf>,
    /// Seconds to wait for a server before giving up.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// Access token for servers with access control, sent as `Authorization: Bearer`.
    #[arg(long, env = "SYNCLINE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a document from a JSON object and print its automerge: URL.
    Create {
        /// The document's initial content, a JSON object.
        #[arg(long)]
        json: String,
    },
    /// Print a document as JSON (a URL with #heads prints that version).
    Get {
        /// An automerge: URL or a bare document id.
        document: String,
    },
    /// Set the value at a path (`a.b.c` or `/a/b/c`; `-` appends to a list) to a JSON value.
    Set {
        /// An automerge: URL or a bare document id.
        document: String,
        /// Where to write.
        path: String,
        /// The value, as JSON: `42`, `"text"`, `{"price": 180}`.
        value: String,
    },
    /// Print every new version of a document, one JSON line each, until interrupted.
    Watch {
        /// An automerge: URL or a bare document id.
        document: String,
    },
    /// Print a document's local heads and the heads each server acknowledged.
    Status {
        /// An automerge: URL or a bare document id.
        document: String,
    },
    /// Print the URL of every document in the local store.
    List,
}

#[allow(clippy::print_stdout, reason = "results go to stdout")]
fn print(text: &str) {
    println!("{text}");
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("syncline: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("syncline: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    // Installed before anything else, so an interrupt during start-up already ends `watch`
    // cleanly (and overrides an inherited "ignore SIGINT").
    let interrupt = signal(SignalKind::interrupt()).context("cannot watch for interrupts")?;
    let store = match &args.store {
        Some(dir) => dir.clone(),
        None => default_store()?,
    };
    let mut config = ClientConfig::default();
    if let Some(token) = args.token.clone() {
        config.token = Some(std::sync::Arc::new(move || {
            let token = token.clone();
            Box::pin(async move { Some(token) })
        }));
    }
    let client = Client::open(&store, config)
        .await
        .with_context(|| format!("cannot open the local store {}", store.display()))?;
    for url in &args.server {
        client.connect(url)?;
    }
    let session = Session {
        client: client.clone(),
        online: !args.server.is_empty(),
        timeout: Duration::from_secs(args.timeout),
    };
    let result = session.command(args.command, interrupt).await;
    client.close().await;
    result
}

fn default_store() -> Result<PathBuf> {
    let base = dirs::data_local_dir()
        .context("no per-user data directory is known here; pass --store DIR")?;
    Ok(base.join("syncline"))
}

/// One command's context.
struct Session {
    client: Client,
    online: bool,
    timeout: Duration,
}

impl Session {
    /// Runs one command; `interrupt` (SIGINT) ends `watch` with status 0.
    async fn command(&self, command: Command, interrupt: Signal) -> Result<()> {
        match command {
            Command::Create { json } => self.create(&json).await,
            Command::Get { document } => self.get(&document).await,
            Command::Set {
                document,
                path,
                value,
            } => self.set(&document, &path, &value).await,
            Command::Watch { document } => self.watch(&document, interrupt).await,
            Command::Status { document } => self.status(&document).await,
            Command::List => self.list().await,
        }
    }

    async fn create(&self, text: &str) -> Result<()> {
        let value = parse_json(text)?;
        if !value.is_object() {
            bail!("--json must be a JSON object, the document's root");
        }
        let document = self
            .client
            .create(|tx| json::create_root(tx, &value))
            .await?;
        self.acknowledged(&document).await?;
        print(&document.url());
        Ok(())
    }

    async fn get(&self, target: &str) -> Result<()> {
        let url = parse_target(target)?;
        let document = self.open(url.document_id).await?;
        let state = match url.heads.as_slice() {
            [] => document.to_json(),
            heads => {
                let heads: Vec<ChangeHash> = heads.iter().map(|h| ChangeHash(*h)).collect();
                document.read(|doc| json::to_json_at(doc, &heads))
            }
        };
        print(&serde_json::to_string_pretty(&state)?);
        Ok(())
    }

    async fn set(&self, target: &str, path: &str, value: &str) -> Result<()> {
        let url = parse_target(target)?;
        let path = JsonPath::from_str(path)?;
        let value = parse_json(value)?;
        // A local copy is changed even when no server answers: the change waits in the store.
        let document = match self.client.document(url.document_id).await? {
            local if local.exists() => local,
            _ => self.open(url.document_id).await?,
        };
        document
            .change(|tx| json::set_path(tx, &path, &value))
            .await?;
        self.acknowledged(&document).await
    }

    async fn watch(&self, target: &str, mut interrupt: Signal) -> Result<()> {
        let url = parse_target(target)?;
        let document = self.client.document(url.document_id).await?;
        let mut events = document.subscribe();
        if document.exists() {
            print(&version_line(&document));
        } else if !self.online {
            bail!(not_local(url.document_id));
        }
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(_) => print(&version_line(&document)),
                    None => return Ok(()),
                },
                _ = interrupt.recv() => return Ok(()),
            }
        }
    }

    async fn status(&self, target: &str) -> Result<()> {
        let url = parse_target(target)?;
        let document = self.open(url.document_id).await?;
        let status = document.status();
        let acknowledged: serde_json::Map<String, Value> = status
            .acknowledged
            .iter()
            .map(|(server, heads)| (server.to_string(), hex_heads(heads)))
            .collect();
        let report = json!({
            "document": document.url(),
            "local_heads": hex_heads(&status.local_heads),
            "acknowledged": acknowledged,
        });
        print(&serde_json::to_string_pretty(&report)?);
        Ok(())
    }

    async fn list(&self) -> Result<()> {
        for id in self.client.list().await? {
            print(&id.url());
        }
        Ok(())
    }

    /// The document, synced with the server first when there is one.
    async fn open(&self, id: DocumentId) -> Result<Document> {
        let document = self.client.document(id).await?;
        if !self.online {
            if !document.exists() {
                bail!(not_local(id));
            }
            return Ok(document);
        }
        match document.wait_synced(self.timeout).await {
            Ok(()) => Ok(document),
            Err(ClientError::Timeout { .. }) if document.exists() => {
                Err(self.unreachable("sync the document"))
            }
            Err(ClientError::Timeout { .. }) => Err(self.unreachable("fetch the document")),
            Err(error) => Err(error.into()),
        }
    }

    /// With a server, waits until it has made the document's heads durable.
    async fn acknowledged(&self, document: &Document) -> Result<()> {
        if !self.online {
            return Ok(());
        }
        match document.wait_acknowledged(self.timeout).await {
            Ok(()) => Ok(()),
            Err(ClientError::Timeout { .. }) => {
                Err(self.unreachable("upload the change").context(format!(
                    "{} is saved in the local store and will be uploaded by the next \
                     command that reaches a server",
                    document.url()
                )))
            }
            Err(error) => Err(error.into()),
        }
    }

    fn unreachable(&self, what: &str) -> anyhow::Error {
        let why = self
            .client
            .last_connection_error()
            .unwrap_or_else(|| "no answer".to_owned());
        anyhow::anyhow!("could not {what} within {:?}: {why}", self.timeout)
    }
}

fn not_local(id: DocumentId) -> String {
    format!("document {id} is not in the local store; pass --server to fetch it")
}

fn parse_target(text: &str) -> Result<AutomergeUrl> {
    if text.starts_with("automerge:") {
        return AutomergeUrl::from_str(text).with_context(|| format!("bad document URL {text}"));
    }
    let id = DocumentId::from_str(text).with_context(|| format!("bad document id {text}"))?;
    Ok(AutomergeUrl::from(id))
}

fn parse_json(text: &str) -> Result<Value> {
    serde_json::from_str(text).with_context(|| {
        format!("{text:?} is not JSON (strings need quotes: '\"text\"'; numbers and objects as is)")
    })
}

fn hex_heads(heads: &[ChangeHash]) -> Value {
    heads
        .iter()
        .map(|head| Value::String(head.to_string()))
        .collect()
}

/// One line of `watch`: the version's heads and the document at it.
fn version_line(document: &Document) -> String {
    let (heads, state) = document.read(|doc| (doc.get_heads(), json::to_json(doc)));
    json!({ "heads": hex_heads(&heads), "state": state }).to_string()
}
