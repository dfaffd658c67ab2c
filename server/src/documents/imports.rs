//! The calendar side of a document worker: which feeds a calendar imports, and the nights an
//! imported feed blocks or frees.

use std::collections::BTreeSet;

use syncline_shared::policy;

use crate::bridges::import::Feed;

/// The `imports` list of a calendar document: each entry's `url` and `channel`.
pub(super) fn read_imports(doc: &automerge::Automerge) -> Vec<Feed> {
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
pub(super) fn import_plan(
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

pub(super) fn write_import(
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
