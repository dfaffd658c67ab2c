//! The calendar side of a document worker: which feeds a calendar imports, and the nights an
//! imported feed blocks or frees.

use std::collections::BTreeSet;

use automerge::transaction::CommitOptions;
use syncline_shared::policy;
use tracing::{debug, error, info};

use super::{Worker, now_s};
use crate::bridges::import::Feed;
use crate::documents::WorkerContext;

/// The `imports` list of a calendar document: each entry's `url` and `channel`.
fn read_imports(doc: &automerge::Automerge) -> Vec<Feed> {
    use automerge::{ObjType, ReadDoc, Value};
    let Ok(Some((Value::Object(ObjType::List), list))) = doc.get(automerge::ROOT, "imports") else {
        return Vec::new();
    };
    let mut feeds: Vec<Feed> = (0..doc.length(&list))
        .filter_map(|index| match doc.get(&list, index) {
            Ok(Some((Value::Object(ObjType::Map), entry))) => {
                let text = |key| policy::calendar::text_at(doc, &entry, key, None);
                Some(Feed {
                    url: text("url")?,
                    channel: text("channel")?,
                })
            }
            _ => None,
        })
        .filter(|feed| feed.url.starts_with("http://") || feed.url.starts_with("https://"))
        .collect();
    feeds.sort();
    feeds.dedup();
    feeds
}

/// Nights to block for `channel` (in the feed, not yet blocked by it) and to free (blocked by
/// it, no longer in the feed). Nights blocked by the host or another channel are left alone.
fn import_plan(
    doc: &automerge::Automerge,
    channel: &str,
    feed: &BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    use automerge::{ObjType, ReadDoc, Value};
    let nights = match doc.get(automerge::ROOT, "nights") {
        Ok(Some((Value::Object(ObjType::Map), nights))) => Some(nights),
        _ => None,
    };
    let blocked_by = |night: &str| -> Option<Option<String>> {
        let nights = nights.as_ref()?;
        let Ok(Some((Value::Object(ObjType::Map), obj))) = doc.get(nights, night) else {
            return None;
        };
        let blocked = matches!(
            doc.get(&obj, "blocked"),
            Ok(Some((Value::Scalar(s), _))) if s.as_bool() == Some(true)
        );
        blocked.then(|| policy::calendar::text_at(doc, &obj, "blocked_by", None))
    };
    // A night already blocked, by this channel, another or the host, stays as it is.
    let block = feed
        .iter()
        .filter(|night| blocked_by(night).is_none())
        .cloned()
        .collect();
    let free = nights
        .as_ref()
        .map(|nights| {
            doc.keys(nights)
                .filter(|night| !feed.contains(night))
                .filter(|night| blocked_by(night) == Some(Some(channel.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    (block, free)
}

fn write_import(
    tx: &mut automerge::transaction::Transaction<'_>,
    channel: &str,
    block: &[String],
    free: &[String],
) -> Result<(), automerge::AutomergeError> {
    use automerge::transaction::Transactable;
    use automerge::{ObjType, ReadDoc, Value};
    let nights = match tx.get(automerge::ROOT, "nights")? {
        Some((Value::Object(ObjType::Map), nights)) => nights,
        _ => tx.put_object(automerge::ROOT, "nights", ObjType::Map)?,
    };
    let night_map = |tx: &mut automerge::transaction::Transaction<'_>, night: &str| match tx
        .get(&nights, night)?
    {
        Some((Value::Object(ObjType::Map), obj)) => Ok(obj),
        _ => tx.put_object(&nights, night, ObjType::Map),
    };
    for night in block {
        let obj = night_map(tx, night)?;
        tx.put(&obj, "blocked", true)?;
        policy::put_text(tx, &obj, "blocked_by", channel)?;
    }
    for night in free {
        let obj = night_map(tx, night)?;
        tx.put(&obj, "blocked", false)?;
        tx.delete(&obj, "blocked_by")?;
    }
    Ok(())
}

impl Worker {
    /// Registers the calendar's `imports` with the importer (and stores them) when they changed.
    pub(super) fn track_imports(&mut self, context: &WorkerContext) {
        if self.imports.is_some() && self.pending.changes.is_empty() {
            return;
        }
        let feeds = read_imports(self.session.document());
        if self.imports.as_ref() == Some(&feeds) {
            return;
        }
        let stored = feeds
            .iter()
            .map(|f| (f.url.clone(), f.channel.clone()))
            .collect();
        context.services.importer.register(self.id, feeds.clone());
        // A document that never imported has nothing stored to remove on its first look.
        if self.imports.is_some() || !feeds.is_empty() {
            self.pending.imports = Some(stored);
        }
        self.imports = Some(feeds);
    }

    /// Makes the nights `channel`'s feed blocks, and only those, blocked by it.
    pub(super) fn handle_import(&mut self, channel: &str, nights: &BTreeSet<String>) {
        let doc = self.session.document();
        if !self.session.exists() || !policy::calendar::is_calendar(doc) {
            debug!(%channel, "feed import for a document that is not a calendar; ignored");
            return;
        }
        let (block, free) = import_plan(doc, channel, nights);
        if block.is_empty() && free.is_empty() {
            return;
        }
        info!(
            %channel,
            blocked = block.len(),
            freed = free.len(),
            "imported feed changed the calendar",
        );
        let now = now_s();
        let options = CommitOptions::default()
            .with_time(now)
            .with_message(format!("syncline-import {channel}"));
        let written = self
            .session
            .change(options, |tx| write_import(tx, channel, &block, &free));
        match written {
            Ok(((), effects)) => self.apply(effects),
            Err(err) => error!(error = %err, %channel, "cannot write an imported feed's nights"),
        }
    }
}
