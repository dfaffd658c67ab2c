//! The in-process floor of the collaboration scenario: the same documents, editors and edits,
//! driven through the `automerge` crate alone, with no network, no disk and no server around it.
//!
//! Each document has one replica standing for the server and one per editor, each pair with its
//! own sync states. A round is what a closed loop does with every editor waiting on its last
//! acknowledgement: every editor of a document makes one change, then every editor syncs with
//! the server replica until neither side has anything to send, twice over, so every editor ends
//! the round holding everyone's changes. Sync messages are encoded and decoded as they would be
//! on the wire. It runs on one thread; the figure is the cost of the Automerge work itself.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, Automerge, ROOT};
use serde_json::{Value, json};
use syncline_tests::peer::stamped_now;

use crate::Args;

/// One editor: its replica, its sync state with the server replica, and the server's with it.
struct Editor {
    doc: AutoCommit,
    ours: sync::State,
    theirs: sync::State,
}

/// One document: the server's replica and its editors.
struct Document {
    server: Automerge,
    editors: Vec<Editor>,
}

/// Runs `--docs` × `--editors` closed-loop editing for `--seconds` and reports changes per
/// second, the figure to set beside the servers' acknowledged changes per second.
pub fn collab(args: &Args) -> Result<Value> {
    let filler = "x".repeat(args.change_bytes);
    let mut documents = (0..args.docs)
        .map(|d| {
            Document::new(
                args.editors,
                (d < args.large_docs).then_some(args.doc_bytes),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let started = Instant::now();
    let end = started + Duration::from_secs(args.seconds);
    let (mut changes, mut rounds, mut counter) = (0_u64, 0_u64, 0_u64);
    while Instant::now() < end {
        counter += 1;
        for document in &mut documents {
            changes += document.round(counter, &filler)?;
        }
        rounds += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(json!({
        "peers": args.docs * args.editors,
        "acked": changes,
        "acked_per_s": (changes as f64 / elapsed).round(),
        "rounds": rounds,
        "threads": 1,
    }))
}

impl Document {
    /// A document created by its first editor (starting as the servers' do) and opened by the
    /// others.
    fn new(editors: usize, body: Option<usize>) -> Result<Self> {
        let mut creator = AutoCommit::new();
        crate::scenario::starting_content(&mut creator, body);
        creator.commit_with(stamped_now());
        let mut document = Self {
            server: Automerge::new(),
            editors: Vec::with_capacity(editors),
        };
        for index in 0..editors {
            let doc = if index == 0 {
                creator.fork()
            } else {
                AutoCommit::new()
            };
            document.editors.push(Editor {
                doc,
                ours: sync::State::new(),
                theirs: sync::State::new(),
            });
        }
        for editor in &mut document.editors {
            exchange(&mut document.server, editor)?;
        }
        Ok(document)
    }

    /// Every editor changes once, then everyone syncs; the number of changes made.
    fn round(&mut self, counter: u64, filler: &str) -> Result<u64> {
        for (index, editor) in self.editors.iter_mut().enumerate() {
            let key = format!("e{index}");
            if filler.is_empty() {
                editor.doc.put(ROOT, key.as_str(), counter)?;
            } else {
                editor
                    .doc
                    .put(ROOT, key.as_str(), format!("{counter}{filler}"))?;
            }
            editor.doc.commit_with(stamped_now());
        }
        // The first pass carries every change to the server, the second brings the later
        // editors' changes to the earlier ones.
        for _ in 0..2 {
            for editor in &mut self.editors {
                exchange(&mut self.server, editor)?;
            }
        }
        Ok(self.editors.len() as u64)
    }
}

/// Syncs one editor with the server replica until neither has anything to send.
fn exchange(server: &mut Automerge, editor: &mut Editor) -> Result<()> {
    loop {
        let mut moved = false;
        if let Some(message) = editor.doc.sync().generate_sync_message(&mut editor.ours) {
            let message = wire(message)?;
            server.receive_sync_message(&mut editor.theirs, message)?;
            moved = true;
        }
        if let Some(message) = server.generate_sync_message(&mut editor.theirs) {
            let message = wire(message)?;
            editor
                .doc
                .sync()
                .receive_sync_message(&mut editor.ours, message)?;
            moved = true;
        }
        if !moved {
            return Ok(());
        }
    }
}

/// A sync message as the other end decodes it off the wire.
fn wire(message: sync::Message) -> Result<sync::Message> {
    sync::Message::decode(&message.encode()).context("a sync message decodes")
}
