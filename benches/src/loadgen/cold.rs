//! Cold load: a document with a long text editing history is uploaded (`cold-seed`), the server
//! is restarted by the caller, and a fresh peer asks for it (`cold`): how long until the server
//! has read it from storage and sent it, against loading the same saved document in-process with
//! the `automerge` crate (the floor).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use automerge::{Automerge, ChangeHash, sync};
use serde_json::{Value, json};
use syncline_shared::ids::DocumentId;
use syncline_shared::protocol::Message;
use syncline_tests::peer::RawPeer;
use tokio::time::Instant;

use super::history::{self, HistoryShape};
use crate::Args;
use crate::measure::{ServerProc, reading, round, seconds, server_figures};

/// Bound on uploading the history, and on reading it back.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(300);

/// In-process loads of the saved document; the floor is their median.
const FLOOR_RUNS: usize = 5;

/// What `cold-seed` leaves beside the saved document for `cold`.
fn state_path(history: &Path) -> PathBuf {
    history.with_extension("json")
}

fn history_path(args: &Args) -> Result<&Path> {
    args.history
        .as_deref()
        .context("the cold scenarios need --history FILE")
}

/// Generates the history, saves it to `--history`, and uploads it to the server; the document
/// id and heads go to the file beside it.
pub async fn seed(args: &Args, server: Option<ServerProc>) -> Result<Value> {
    let path = history_path(args)?;
    let shape = HistoryShape {
        ops: args.history_ops,
        ops_per_change: args.ops_per_change,
        seed: 1,
    };
    let generating = Instant::now();
    let (mut doc, facts) = history::generate(shape);
    let bytes = doc.save();
    let generated = generating.elapsed();
    std::fs::write(path, &bytes).with_context(|| format!("write {}", path.display()))?;

    let before = reading(server)?;
    let uploading = Instant::now();
    let mut peer = RawPeer::connect(&args.url, "lg-cold-seed").await?;
    let id = peer
        .create_document(|d| {
            d.load_incremental(&bytes)
                .expect("a document saved a moment ago loads");
        })
        .await?;
    let heads = peer.heads(id);
    peer.wait_acknowledged(id, &heads, TRANSFER_TIMEOUT).await?;
    let uploaded = uploading.elapsed();
    let _ = tokio::time::timeout(Duration::from_secs(5), peer.close()).await;
    let after = reading(server)?;

    let state = json!({
        "document": id.to_string(),
        "heads": heads.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    let state_file = state_path(path);
    std::fs::write(&state_file, state.to_string())
        .with_context(|| format!("write {}", state_file.display()))?;
    Ok(json!({
        "ops": facts.ops,
        "changes": facts.changes,
        "chars": facts.chars,
        "saved_bytes": bytes.len(),
        "generate_s": seconds(generated),
        "upload_s": seconds(uploaded),
        "server": server_figures(before, after, uploaded),
    }))
}

/// Asks a freshly started server for the seeded document: the time to its first message
/// carrying changes (the server has loaded the document and encoded what the peer lacks), the
/// time until the peer holds every head, and the in-process floor.
pub async fn load(args: &Args, server: Option<ServerProc>) -> Result<Value> {
    let path = history_path(args)?;
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let state_file = state_path(path);
    let state: Value = serde_json::from_slice(
        &std::fs::read(&state_file)
            .with_context(|| format!("read {} (run cold-seed first)", state_file.display()))?,
    )?;
    let id = DocumentId::from_str(state["document"].as_str().context("no document id")?)
        .context("the seeded document id")?;
    let heads = state["heads"]
        .as_array()
        .context("no heads")?
        .iter()
        .map(|h| ChangeHash::from_str(h.as_str().unwrap_or_default()))
        .collect::<Result<Vec<_>, _>>()
        .context("the seeded heads")?;

    let floor = floor(&bytes)?;

    let before = reading(server)?;
    let mut peer = RawPeer::connect(&args.url, "lg-cold-load").await?;
    let asked = Instant::now();
    peer.open(id).await?;
    let deadline = asked + TRANSFER_TIMEOUT;
    let (first_data, reply_bytes) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = peer
            .recv(left)
            .await?
            .with_context(|| format!("no document within {TRANSFER_TIMEOUT:?} of asking"))?;
        let carried = match &message {
            Message::Sync(sync) if sync.document_id == id => {
                let decoded = sync::Message::decode(&sync.data)
                    .context("the server's sync message does not decode")?;
                (!decoded.changes.is_empty()).then_some(sync.data.len())
            }
            Message::DocUnavailable(_) => bail!("the server says {id} is unavailable"),
            _ => None,
        };
        let at = asked.elapsed();
        peer.accept(message).await?;
        if let Some(size) = carried {
            break (at, size);
        }
    };
    peer.wait_heads(
        id,
        &heads,
        deadline.saturating_duration_since(Instant::now()),
    )
    .await?;
    let complete = asked.elapsed();
    let after = reading(server)?;
    let _ = tokio::time::timeout(Duration::from_secs(5), peer.close()).await;

    let floor_ms = floor.as_secs_f64() * 1000.0;
    let first_ms = first_data.as_secs_f64() * 1000.0;
    Ok(json!({
        "saved_bytes": bytes.len(),
        "first_data_ms": round(first_ms),
        "complete_ms": round(complete.as_secs_f64() * 1000.0),
        "reply_bytes": reply_bytes,
        "floor_ms": round(floor_ms),
        "ratio_to_floor": round(first_ms / floor_ms.max(1e-6)),
        "server": server_figures(before, after, complete),
    }))
}

/// The median time `Automerge::load` takes on `bytes`, in this process.
fn floor(bytes: &[u8]) -> Result<Duration> {
    let mut runs = Vec::with_capacity(FLOOR_RUNS);
    for _ in 0..FLOOR_RUNS {
        let started = std::time::Instant::now();
        let doc = Automerge::load(bytes).context("load the saved history in-process")?;
        runs.push(started.elapsed());
        drop(doc);
    }
    runs.sort_unstable();
    Ok(runs[runs.len() / 2])
}
