//! What the HTTP API asks of a document worker, and the answers, computed on the worker's own
//! copy of the document so that a read sees every change the worker has made durable.
//!
//! The worker checks access and sequencing (see `worker.rs`); the functions here only read the
//! document or write into one transaction, so each is plain code over an Automerge value.

use automerge::transaction::Transactable;
use automerge::{Automerge, ChangeHash, ObjType, PatchAction, Prop, ReadDoc};
use serde::Deserialize;
use serde_json::{Value, json};
use syncline_shared::json::{self, JsonError};
use syncline_shared::policy::ResolutionRecord;
use tokio::sync::oneshot;

use crate::storage::ChangeMeta;

/// One request of the HTTP API for one document.
#[derive(Debug)]
pub enum ApiRequest {
    /// The document as JSON, at its current heads or at the given ones.
    Read { heads: Option<Vec<ChangeHash>> },
    /// Creates the document from a JSON object (the worker's document must not exist yet).
    Create { root: Value },
    /// Applies operations as one change of the server's own.
    Change(ChangeRequest),
    /// Details of logged changes, for the history: the event-log entries come from storage.
    Describe { log: Vec<ChangeMeta> },
    /// The patches that turn the version at `from` into the one at `to` (current if `None`).
    Diff {
        from: Vec<ChangeHash>,
        to: Option<Vec<ChangeHash>>,
    },
    /// Deletes the document: a tombstone that every peer is refused from now on.
    Delete,
}

/// A change given as JSON operations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    /// Applied in order, all in one Automerge change; if one fails, none is applied.
    pub ops: Vec<Op>,
    /// The change's message, shown in the history.
    #[serde(default)]
    pub message: Option<String>,
    /// Apply only if the document's heads are exactly these (optimistic concurrency);
    /// otherwise the answer is a conflict carrying the current heads.
    #[serde(default)]
    pub expected_heads: Option<Vec<String>>,
}

/// One operation of a change; paths are JSON Pointers (`/a/0`) or dotted (`a.0`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Op {
    /// Writes a value at a path, creating maps on the way (`-` appends to a list).
    Set { path: String, value: Value },
    /// Removes the key or list element at a path.
    Delete { path: String },
    /// Inserts into a list before the element at a path (the length or `-` appends).
    Insert { path: String, value: Value },
}

/// The answer to an API request.
pub type ApiResult = Result<Value, ApiError>;

/// Where the worker sends an answer.
pub type ApiReply = oneshot::Sender<ApiResult>;

/// Why an API request was not carried out.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// What kind of failure, which decides the HTTP status and the error code.
    pub kind: ErrorKind,
    /// For people.
    pub message: String,
    /// The document's current heads, on a conflict.
    pub heads: Option<Vec<String>>,
}

/// The kinds of API failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No such document, or not one the token may read.
    NotFound,
    /// The document was deleted.
    Deleted,
    /// The token may read the document but not change it.
    Forbidden,
    /// The document's heads are not the expected ones, or it exists already.
    Conflict,
    /// The change cannot be applied as given (a path that does not resolve, for example).
    InvalidChange,
    /// Heads named in the request are not in the document.
    UnknownHeads,
    /// The document could not be served (its worker stopped, or storage failed).
    Unavailable,
}

impl ApiError {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            heads: None,
        }
    }

    pub(super) fn not_found() -> Self {
        Self::new(ErrorKind::NotFound, "no such document")
    }

    pub(super) fn deleted() -> Self {
        Self::new(ErrorKind::Deleted, "the document was deleted")
    }
}

/// Refuses JSON that would nest deeper than a document can be read back
/// ([`json::MAX_DEPTH`]): the root given for a new document, or a value written at a path.
pub fn check_depth(path: Option<&str>, value: &Value) -> Result<(), ApiError> {
    let below = path
        .and_then(|p| p.parse::<json::JsonPath>().ok())
        .map_or(0, |p| p.segments().len());
    let depth = below + json::depth(value);
    if depth <= json::MAX_DEPTH {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorKind::InvalidChange,
        format!(
            "the value would nest {depth} levels deep; documents are read back to {} levels",
            json::MAX_DEPTH
        ),
    ))
}

impl ChangeRequest {
    /// Refuses operations whose values would nest too deeply.
    pub fn check_depth(&self) -> Result<(), ApiError> {
        self.ops.iter().try_for_each(|op| match op {
            Op::Set { path, value } | Op::Insert { path, value } => check_depth(Some(path), value),
            Op::Delete { .. } => Ok(()),
        })
    }
}

/// Heads as the API writes them: lowercase hex, sorted, so equal versions print alike.
pub fn heads_json(heads: &[ChangeHash]) -> Vec<String> {
    let mut hex: Vec<String> = heads.iter().map(ToString::to_string).collect();
    hex.sort_unstable();
    hex
}

/// Parses hex heads; the error names the first that is not a change hash.
pub fn parse_heads(texts: &[String]) -> Result<Vec<ChangeHash>, ApiError> {
    texts
        .iter()
        .map(|text| {
            text.parse().map_err(|_| {
                ApiError::new(
                    ErrorKind::UnknownHeads,
                    format!("{text:?} is not a change hash (64 hex digits)"),
                )
            })
        })
        .collect()
}

/// Refuses heads the document does not have, naming them.
pub(super) fn check_known(doc: &Automerge, heads: &[ChangeHash]) -> Result<(), ApiError> {
    let unknown: Vec<String> = heads
        .iter()
        .filter(|hash| doc.get_change_by_hash(hash).is_none())
        .map(ToString::to_string)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorKind::UnknownHeads,
        format!("the document has no change {}", unknown.join(", ")),
    ))
}

/// The document as JSON with the heads it was read at.
pub(super) fn read(doc: &Automerge, heads: Option<&[ChangeHash]>) -> ApiResult {
    let (state, at) = match heads {
        Some(heads) => {
            check_known(doc, heads)?;
            (json::to_json_at(doc, heads), heads.to_vec())
        }
        None => (json::to_json(doc), doc.get_heads()),
    };
    Ok(json!({ "heads": heads_json(&at), "state": state }))
}

/// Writes every operation into one transaction, stopping at the first that fails.
pub(super) fn apply_ops(tx: &mut impl Transactable, ops: &[Op]) -> Result<(), JsonError> {
    for op in ops {
        match op {
            Op::Set { path, value } => json::set_path(tx, &path.parse()?, value)?,
            Op::Delete { path } => json::delete_path(tx, &path.parse()?)?,
            Op::Insert { path, value } => json::insert_path(tx, &path.parse()?, value)?,
        }
    }
    Ok(())
}

/// One history entry per logged change: the event log's facts joined with the change's own.
pub(super) fn describe(doc: &Automerge, log: &[ChangeMeta]) -> Value {
    let entries: Vec<Value> = log
        .iter()
        .map(|entry| {
            let hash = ChangeHash(entry.hash);
            let mut item = json!({
                "hash": hash.to_string(),
                "seq": entry.seq,
                "author": hex::encode(&entry.author),
                "received_at_ms": entry.received_at_ms,
            });
            if let Some(change) = doc.get_change_by_hash(&hash) {
                let message = change.message().map(str::to_owned);
                let record = message.as_deref().and_then(ResolutionRecord::parse);
                let kind = match &record {
                    Some(record) if !record.bookings.is_empty() => "booking_decision",
                    Some(record) if !record.conflicts.is_empty() => "conflict_resolution",
                    _ => "edit",
                };
                let fields = json!({
                    "author_seq": change.seq(),
                    "timestamp": change.timestamp(),
                    "size": change.raw_bytes().len(),
                    "operations": change.len(),
                    "message": message,
                    "deps": heads_json(change.deps()),
                    "kind": kind,
                    "resolution": record,
                });
                if let (Value::Object(item), Value::Object(fields)) = (&mut item, fields) {
                    item.extend(fields);
                }
            }
            item
        })
        .collect();
    Value::Array(entries)
}

/// The patches between two versions, each with the JSON Pointer of what it touches.
pub(super) fn diff(doc: &Automerge, from: &[ChangeHash], to: Option<&[ChangeHash]>) -> ApiResult {
    check_known(doc, from)?;
    let to = match to {
        Some(to) => {
            check_known(doc, to)?;
            to.to_vec()
        }
        None => doc.get_heads(),
    };
    let patches: Vec<Value> = doc
        .diff(from, &to)
        .into_iter()
        .map(|patch| {
            let base: Vec<String> = patch.path.iter().map(|(_, prop)| segment(prop)).collect();
            patch_json(&base, patch.action)
        })
        .collect();
    Ok(json!({ "from": heads_json(from), "to": heads_json(&to), "patches": patches }))
}

fn patch_json(base: &[String], action: PatchAction) -> Value {
    let at = |prop: String| pointer(base.iter().cloned().chain([prop]));
    match action {
        PatchAction::PutMap { key, value, .. } => {
            json!({ "action": "put", "path": at(key), "value": value_json(&value.0) })
        }
        PatchAction::PutSeq { index, value, .. } => {
            json!({ "action": "put", "path": at(index.to_string()), "value": value_json(&value.0) })
        }
        PatchAction::Insert { index, values } => {
            let values: Vec<Value> = values.iter().map(|(v, _, _)| value_json(v)).collect();
            json!({ "action": "insert", "path": at(index.to_string()), "values": values })
        }
        PatchAction::SpliceText { index, value, .. } => json!({
            "action": "splice", "path": at(index.to_string()), "value": value.make_string(),
        }),
        PatchAction::Increment { prop, value } => {
            json!({ "action": "increment", "path": at(segment(&prop)), "value": value })
        }
        PatchAction::Conflict { prop } => {
            json!({ "action": "conflict", "path": at(segment(&prop)) })
        }
        PatchAction::DeleteMap { key } => json!({ "action": "delete", "path": at(key) }),
        PatchAction::DeleteSeq { index, length } => {
            json!({ "action": "delete", "path": at(index.to_string()), "length": length })
        }
        PatchAction::Mark { marks } => json!({
            "action": "mark",
            "path": pointer(base.iter().cloned()),
            "marks": marks.len(),
        }),
    }
}

/// A new value in a patch: scalars as JSON, a new object as an empty one of its kind (later
/// patches in the same diff fill it).
fn value_json(value: &automerge::Value<'_>) -> Value {
    match value {
        automerge::Value::Scalar(scalar) => json::scalar_to_json(scalar),
        automerge::Value::Object(ObjType::Map | ObjType::Table) => json!({}),
        automerge::Value::Object(ObjType::List) => json!([]),
        automerge::Value::Object(ObjType::Text) => json!(""),
    }
}

fn segment(prop: &Prop) -> String {
    match prop {
        Prop::Map(key) => key.clone(),
        Prop::Seq(index) => index.to_string(),
    }
}

/// Segments as a JSON Pointer (RFC 6901), the way [`JsonPath`] reads one back.
fn pointer(segments: impl Iterator<Item = String>) -> String {
    segments
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::CommitOptions;
    use syncline_shared::policy::{BookingDecision, KeyResolution};

    fn logged(doc: &Automerge) -> Vec<ChangeMeta> {
        doc.get_changes(&[])
            .iter()
            .enumerate()
            .map(|(seq, change)| ChangeMeta {
                seq: seq as u64,
                hash: change.hash().0,
                received_at_ms: 1_000 + seq as u64,
                author: change.actor_id().to_bytes().to_vec(),
            })
            .collect()
    }

    fn commit(
        doc: &mut Automerge,
        message: Option<String>,
        f: impl FnOnce(&mut automerge::transaction::Transaction<'_>),
    ) {
        let mut options = CommitOptions::default().with_time(1_700_000_000);
        if let Some(message) = message {
            options = options.with_message(message);
        }
        let mut tx = doc.transaction();
        f(&mut tx);
        tx.commit_with(options);
    }

    /// The history tells the server's resolving changes apart by their recorded decisions.
    #[test]
    fn history_entries_name_their_kind() {
        let mut doc = Automerge::new();
        commit(&mut doc, Some("by hand".into()), |tx| {
            tx.put(automerge::ROOT, "price", 1).expect("put");
        });
        let settled = ResolutionRecord {
            conflicts: vec![KeyResolution {
                obj: "_root".into(),
                path: "/price".into(),
                key: "price".into(),
                winner: json!(2),
                time: 5,
                original: "00".repeat(32),
                candidates: 2,
            }],
            bookings: Vec::new(),
        };
        commit(&mut doc, Some(settled.message()), |tx| {
            tx.put(automerge::ROOT, "price", 2).expect("put");
        });
        let decided = ResolutionRecord {
            conflicts: Vec::new(),
            bookings: vec![BookingDecision {
                booking: "b1".into(),
                status: "confirmed".into(),
                reason: None,
                reverted: false,
            }],
        };
        commit(&mut doc, Some(decided.message()), |tx| {
            tx.put(automerge::ROOT, "status", "confirmed").expect("put");
        });

        let entries = describe(&doc, &logged(&doc));
        let kinds: Vec<&str> = entries
            .as_array()
            .expect("an array")
            .iter()
            .map(|e| e["kind"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(kinds, ["edit", "conflict_resolution", "booking_decision"]);
        assert_eq!(entries[0]["message"], json!("by hand"));
        assert_eq!(
            entries[1]["resolution"]["conflicts"][0]["path"],
            json!("/price")
        );
        assert_eq!(entries[2]["received_at_ms"], json!(1_002));
        assert_eq!(entries[2]["author_seq"], json!(3));
        assert_eq!(entries[0]["timestamp"], json!(1_700_000_000));
    }

    /// Diff paths are JSON Pointers, with `/` and `~` in keys escaped.
    #[test]
    fn diff_paths_are_escaped_pointers() {
        let mut doc = Automerge::new();
        commit(&mut doc, None, |tx| {
            let nights = tx
                .put_object(automerge::ROOT, "a/b~c", ObjType::Map)
                .expect("map");
            tx.put(&nights, "x", 1).expect("put");
        });
        let before = doc.get_heads();
        commit(&mut doc, None, |tx| {
            let (_, map) = tx.get(automerge::ROOT, "a/b~c").expect("get").expect("map");
            tx.put(&map, "x", 2).expect("put");
            tx.delete(automerge::ROOT, "gone").expect("delete nothing");
        });
        let patches = diff(&doc, &before, None).expect("known heads")["patches"].clone();
        assert_eq!(
            patches,
            json!([{"action": "put", "path": "/a~1b~0c/x", "value": 2}])
        );
        let unknown = diff(&doc, &[ChangeHash([7; 32])], None).expect_err("unknown heads");
        assert_eq!(unknown.kind, ErrorKind::UnknownHeads);
    }
}
