//! Last writer wins by time: which of a map key's concurrent values should show.
//!
//! Automerge keeps every concurrent value of a key and shows the one with the greatest operation
//! id, an order that ignores the clock. The policy shows the value whose write is the latest by
//! time ([`ChangeTimes`]); equal times keep Automerge's order. Where the two disagree, the
//! server writes the policy's winner back as an ordinary change (see [`super::plan`]), after
//! which there is one value again and every replica shows it.
//!
//! Only keys whose values are scalars are settled: copying an object would detach the copy from
//! concurrent edits made inside the original, so a conflict between objects keeps Automerge's
//! winner (and is reported as such).

use automerge::legacy::Key;
use automerge::{Automerge, ChangeHash, ObjId, Prop, ReadDoc, ScalarValue, Value};

use super::record::KeyResolution;
use super::times::{ChangeTimes, Write};

/// A key the policy wants changed, and the value to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    /// The map holding the key.
    pub obj: ObjId,
    /// The key.
    pub key: String,
    /// The winning value.
    pub value: ScalarValue,
    /// The same, as recorded in the resolving change's message.
    pub record: KeyResolution,
}

/// A map key that a merge wrote to, with a readable path to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TouchedKey {
    /// The map.
    pub obj: ObjId,
    /// The key inside it.
    pub key: String,
    /// `/a/b/key`, for logs and records.
    pub path: String,
}

/// The map keys that the changes after `before` wrote to, without repeats.
///
/// Read from the changes' operations rather than from a diff: a merge that brings a write
/// which loses Automerge's order to a value already in conflict changes nothing visible, so a
/// diff shows no patch for it, yet the policy's winner may now be that write.
pub fn touched_keys(doc: &Automerge, before: &[ChangeHash]) -> Vec<TouchedKey> {
    let mut keys: Vec<TouchedKey> = doc
        .get_changes(before)
        .iter()
        .flat_map(|change| change.decode().operations)
        .filter_map(|op| {
            let Key::Map(key) = op.key else {
                return None;
            };
            let (obj, _) = doc.import(&op.obj.to_string()).ok()?;
            Some((obj, key.to_string()))
        })
        .map(|(obj, key)| TouchedKey {
            path: key_path(doc, &obj, &key),
            obj,
            key,
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// `/a/b/key`: the key's place in the document, for logs and records.
fn key_path(doc: &Automerge, obj: &ObjId, key: &str) -> String {
    let parents = doc.parents(obj).map(|p| p.path()).unwrap_or_default();
    let mut path: String = parents
        .iter()
        .map(|(_, prop)| match prop {
            Prop::Map(name) => format!("/{name}"),
            Prop::Seq(index) => format!("/{index}"),
        })
        .collect();
    path.push('/');
    path.push_str(key);
    path
}

/// The index, among `get_all`'s values (which come in Automerge's order), of the policy's
/// winner: the latest time, the later in Automerge's order on a tie. A server's copy whose
/// original write is an ancestor of another value's write is out of the running: that writer
/// had seen the original and replaced it. `None` if a value's write cannot be found, which only
/// a document missing its own history could cause.
pub fn winner_index(
    doc: &Automerge,
    values: &[(Value<'_>, ObjId)],
    obj: &ObjId,
    key: &str,
    times: &ChangeTimes,
) -> Option<usize> {
    let writes: Vec<Write> = values
        .iter()
        .map(|(_, id)| times.write_of(id, obj, key))
        .collect::<Option<_>>()?;
    let stale = |write: &Write| {
        write.copy
            && writes.iter().any(|other| {
                other.change != write.change && descends(doc, other.change, write.change)
            })
    };
    let mut best: Option<(usize, i64)> = None;
    for (index, write) in writes.iter().enumerate() {
        if stale(write) {
            continue;
        }
        if best.is_none_or(|(_, time)| write.time >= time) {
            best = Some((index, write.time));
        }
    }
    best.map(|(index, _)| index)
}

/// Whether change `later` has `earlier` in its history.
fn descends(doc: &Automerge, later: ChangeHash, earlier: ChangeHash) -> bool {
    // The changes outside `later`'s history; `earlier` is an ancestor if it is not among them.
    !doc.get_changes_meta(&[later])
        .iter()
        .any(|meta| meta.hash == earlier)
}

/// Every touched key whose policy winner is not the value Automerge shows.
pub fn resolve(doc: &Automerge, keys: &[TouchedKey], times: &ChangeTimes) -> Vec<Resolution> {
    keys.iter()
        .filter_map(|touched| resolve_key(doc, touched, times))
        .collect()
}

fn resolve_key(doc: &Automerge, touched: &TouchedKey, times: &ChangeTimes) -> Option<Resolution> {
    let values = doc.get_all(&touched.obj, touched.key.as_str()).ok()?;
    if values.len() < 2 {
        return None;
    }
    let winner = winner_index(doc, &values, &touched.obj, &touched.key, times)?;
    // Automerge shows the last of its order.
    if winner == values.len() - 1 {
        return None;
    }
    let (Value::Scalar(value), id) = &values[winner] else {
        return None;
    };
    let write = times.write_of(id, &touched.obj, &touched.key)?;
    let value = value.clone().into_owned();
    Some(Resolution {
        obj: touched.obj.clone(),
        key: touched.key.clone(),
        record: KeyResolution {
            obj: touched.obj.to_string(),
            path: touched.path.clone(),
            key: touched.key.clone(),
            winner: crate::json::scalar_to_json(&value),
            time: write.time,
            original: write.change.to_string(),
            candidates: values.len(),
        },
        value,
    })
}
