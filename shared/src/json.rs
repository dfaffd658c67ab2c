//! A document as JSON, and JSON written into a document, for the edges where people and other
//! programs meet Syncline: the CLI (`syncline get`, `create --json`, `set`), the HTTP API and
//! webhooks. It sits beside the sync layers and never touches the wire.
//!
//! Reading ([`to_json`], [`to_json_at`]) walks the root map and renders each visible value:
//!
//! | Automerge | JSON |
//! |---|---|
//! | map, table | object, keys in Automerge's order (sorted) |
//! | list | array |
//! | text | string |
//! | string | string |
//! | int, uint, counter | number (a counter's current value) |
//! | f64 | number, or null when not finite |
//! | boolean, null | boolean, null |
//! | timestamp | number: milliseconds since the Unix epoch, as Automerge stores it |
//! | bytes | array of byte values |
//! | a type from a newer Automerge | null |
//!
//! Where peers wrote a key concurrently, the output shows the value [`ReadDoc::get`] picks, the
//! same winner on every replica, so two servers holding the same changes print the same JSON.
//!
//! Writing ([`put_value`], [`insert_value`], [`create_root`], [`set_path`]) maps objects to maps,
//! arrays to lists, integers to `Int` (or `Uint` above `i64::MAX`), other numbers to `F64`, and
//! strings to string scalars, not text objects: a scalar is replaced whole by the next writer,
//! which is what setting a value from the command line means, while text would merge concurrent
//! edits character by character into a string neither writer chose. JSON -> document -> JSON is
//! therefore the identity; document -> JSON -> document is not, as text, counters, timestamps and
//! bytes come back as plain strings, numbers and lists.
//!
//! Both directions recurse once per level of nesting. A document written by a peer can nest as
//! deeply as it likes, so reading stops at [`MAX_DEPTH`]: anything nested deeper renders as
//! `null`, and a hostile peer cannot exhaust the stack of a server that renders its document for
//! the HTTP API or a webhook. Writers that take JSON from outside check [`depth`] first.

use std::fmt;
use std::str::FromStr;

use automerge::transaction::Transactable;
use automerge::{AutomergeError, ChangeHash, ObjId, ObjType, Prop, ROOT, ReadDoc, ScalarValue};
use serde_json::{Map, Number, Value};

/// Objects nested deeper than this render as `null`. An unoptimised build spends about 13 KiB
/// of stack per level, so this keeps rendering well inside a 2 MiB thread stack.
pub const MAX_DEPTH: usize = 64;

/// How deeply `value` nests: 0 for a scalar, 1 for an object or array of scalars.
pub fn depth(value: &Value) -> usize {
    match value {
        Value::Object(entries) => 1 + entries.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The current state of a document as a JSON object.
pub fn to_json<R: ReadDoc>(doc: &R) -> Value {
    Version { doc, heads: None }.object(&ROOT, ObjType::Map, 0)
}

/// A document as it was at `heads`, for example a version named in an `automerge:` URL.
///
/// Automerge ignores hashes it does not know, so heads that are all unknown render an empty
/// object; a caller taking heads from a user checks them first ([`ReadDoc::get_change_by_hash`]).
pub fn to_json_at<R: ReadDoc>(doc: &R, heads: &[ChangeHash]) -> Value {
    let version = Version {
        doc,
        heads: Some(heads),
    };
    version.object(&ROOT, ObjType::Map, 0)
}

/// One version of a document: the current one, or the one at some heads. Each read goes through
/// here so that the current and the historical rendering cannot drift apart.
struct Version<'a, R> {
    doc: &'a R,
    heads: Option<&'a [ChangeHash]>,
}

impl<R: ReadDoc> Version<'_, R> {
    /// The object `obj`, found `depth` levels below the root.
    fn object(&self, obj: &ObjId, typ: ObjType, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        match typ {
            ObjType::Map | ObjType::Table => Value::Object(self.map(obj, depth)),
            ObjType::List => Value::Array(self.list(obj, depth)),
            ObjType::Text => Value::String(self.text(obj)),
        }
    }

    fn map(&self, obj: &ObjId, depth: usize) -> Map<String, Value> {
        let keys = match self.heads {
            Some(heads) => self.doc.keys_at(obj, heads),
            None => self.doc.keys(obj),
        };
        keys.map(|key| {
            let value = self.get(obj, key.as_str(), depth);
            (key, value)
        })
        .collect()
    }

    fn list(&self, obj: &ObjId, depth: usize) -> Vec<Value> {
        let len = match self.heads {
            Some(heads) => self.doc.length_at(obj, heads),
            None => self.doc.length(obj),
        };
        (0..len).map(|index| self.get(obj, index, depth)).collect()
    }

    fn text(&self, obj: &ObjId) -> String {
        let text = match self.heads {
            Some(heads) => self.doc.text_at(obj, heads),
            None => self.doc.text(obj),
        };
        // The id names a text object the document itself just returned, so this cannot fail.
        text.unwrap_or_default()
    }

    fn get(&self, obj: &ObjId, prop: impl Into<Prop>, depth: usize) -> Value {
        let found = match self.heads {
            Some(heads) => self.doc.get_at(obj, prop, heads),
            None => self.doc.get(obj, prop),
        };
        // The object and the key or index come from the document itself, so neither an error
        // nor absence can happen; null keeps rendering total instead of panicking a server.
        match found {
            Ok(Some((automerge::Value::Object(typ), id))) => self.object(&id, typ, depth + 1),
            Ok(Some((automerge::Value::Scalar(scalar), _))) => scalar_to_json(&scalar),
            Ok(None) | Err(_) => Value::Null,
        }
    }
}

/// One scalar as JSON, by the mapping in the module doc.
pub fn scalar_to_json(scalar: &ScalarValue) -> Value {
    match scalar {
        ScalarValue::Str(text) => Value::String(text.to_string()),
        ScalarValue::Int(n) | ScalarValue::Timestamp(n) => Value::from(*n),
        ScalarValue::Uint(n) => Value::from(*n),
        ScalarValue::Counter(counter) => Value::from(i64::from(counter)),
        ScalarValue::F64(n) => Number::from_f64(*n).map_or(Value::Null, Value::Number),
        ScalarValue::Boolean(b) => Value::Bool(*b),
        ScalarValue::Bytes(bytes) => bytes.iter().map(|&byte| Value::from(byte)).collect(),
        ScalarValue::Null | ScalarValue::Unknown { .. } => Value::Null,
    }
}

/// Writes `value` at `prop` of the map or list `obj`, replacing what was there.
///
/// Objects and arrays become new maps and lists filled recursively, all in the caller's
/// transaction, so a peer receives the whole value or none of it. Writing an object where one
/// already is replaces it with a new one: concurrent edits inside the old object are not merged
/// into it, as befits setting a value whole.
pub fn put_value(
    tx: &mut impl Transactable,
    obj: &ObjId,
    prop: impl Into<Prop>,
    value: &Value,
) -> Result<(), JsonError> {
    let prop = prop.into();
    match shape(value)? {
        Shape::Object(typ) => {
            let child = tx
                .put_object(obj, prop.clone(), typ)
                .map_err(write_error(&prop))?;
            fill(tx, &child, value)
        }
        Shape::Scalar(scalar) => tx
            .put(obj, prop.clone(), scalar)
            .map_err(write_error(&prop)),
    }
}

/// Inserts `value` into the list `obj` before `index`; `index` equal to the length appends.
pub fn insert_value(
    tx: &mut impl Transactable,
    obj: &ObjId,
    index: usize,
    value: &Value,
) -> Result<(), JsonError> {
    let prop = Prop::Seq(index);
    match shape(value)? {
        Shape::Object(typ) => {
            let child = tx
                .insert_object(obj, index, typ)
                .map_err(write_error(&prop))?;
            fill(tx, &child, value)
        }
        Shape::Scalar(scalar) => tx.insert(obj, index, scalar).map_err(write_error(&prop)),
    }
}

/// Puts each key of the JSON object `value` on the document's root, as `create --json` does.
///
/// The root of a document is always a map, so anything but an object is refused. Keys already
/// in the root that `value` lacks are left alone; on a new document that leaves exactly `value`.
pub fn create_root(tx: &mut impl Transactable, value: &Value) -> Result<(), JsonError> {
    let Value::Object(entries) = value else {
        return Err(JsonError::RootNotObject {
            found: json_kind(value),
        });
    };
    entries
        .iter()
        .try_for_each(|(key, value)| put_value(tx, &ROOT, key.as_str(), value))
}

/// What a JSON value becomes in Automerge: a new object to fill, or a scalar.
enum Shape {
    Object(ObjType),
    Scalar(ScalarValue),
}

fn shape(value: &Value) -> Result<Shape, JsonError> {
    let scalar = match value {
        Value::Object(_) => return Ok(Shape::Object(ObjType::Map)),
        Value::Array(_) => return Ok(Shape::Object(ObjType::List)),
        Value::Null => ScalarValue::Null,
        Value::Bool(b) => ScalarValue::Boolean(*b),
        Value::Number(number) => number_to_scalar(number)?,
        Value::String(text) => ScalarValue::from(text.as_str()),
    };
    Ok(Shape::Scalar(scalar))
}

/// Integers keep their exact value; only numbers with a fraction or an exponent become floats.
fn number_to_scalar(number: &Number) -> Result<ScalarValue, JsonError> {
    if let Some(n) = number.as_i64() {
        return Ok(ScalarValue::Int(n));
    }
    if let Some(n) = number.as_u64() {
        return Ok(ScalarValue::Uint(n));
    }
    // Without serde_json's `arbitrary_precision` every other number is a finite f64; with it, a
    // number too large for any of the three is refused rather than stored as infinity.
    match number.as_f64().filter(|n| n.is_finite()) {
        Some(n) => Ok(ScalarValue::F64(n)),
        None => Err(JsonError::UnsupportedNumber {
            number: number.to_string(),
        }),
    }
}

/// Fills a map or list created for `value` with its entries; scalars have none.
fn fill(tx: &mut impl Transactable, obj: &ObjId, value: &Value) -> Result<(), JsonError> {
    match value {
        Value::Object(entries) => entries
            .iter()
            .try_for_each(|(key, value)| put_value(tx, obj, key.as_str(), value)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(index, item)| insert_value(tx, obj, index, item)),
        _ => Ok(()),
    }
}

fn write_error(prop: &Prop) -> impl FnOnce(AutomergeError) -> JsonError + '_ {
    move |source| JsonError::write(describe_prop(prop), source)
}

fn describe_prop(prop: &Prop) -> String {
    match prop {
        Prop::Map(key) => format!("key {key:?}"),
        Prop::Seq(index) => format!("index {index}"),
    }
}

/// A location inside a document, such as `nights.2026-12-24.price` or `/nights/2026-12-24/price`.
///
/// Text starting with `/` is a JSON Pointer (RFC 6901): segments between slashes, with `~1` for
/// a `/` and `~0` for a `~` inside a key, and `/` alone naming the key `""`. Any other text is
/// dot-separated segments, the short form for the command line; it cannot name a key that is
/// empty or contains a dot, so empty segments are refused rather than guessed at.
///
/// A path has at least one segment: the empty text is refused, since the RFC's empty pointer
/// names the root, which [`set_path`] cannot replace ([`create_root`] writes the root's keys).
/// On a list a segment is a decimal index without leading zeros, or `-` for the end of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    segments: Vec<String>,
    syntax: Syntax,
}

/// Which spelling a path was parsed from, so errors quote it back the way the user wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    Pointer,
    Dotted,
}

impl JsonPath {
    /// The keys and indexes, unescaped, from the root down; never empty.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The first `len` segments in the path's own spelling, to name how far a walk got.
    fn prefix(&self, len: usize) -> String {
        let segments = &self.segments[..len.min(self.segments.len())];
        match self.syntax {
            Syntax::Dotted => segments.join("."),
            Syntax::Pointer => segments
                .iter()
                .map(|segment| format!("/{}", segment.replace('~', "~0").replace('/', "~1")))
                .collect(),
        }
    }
}

impl FromStr for JsonPath {
    type Err = JsonError;

    fn from_str(text: &str) -> Result<Self, JsonError> {
        if let Some(pointer) = text.strip_prefix('/') {
            let segments = pointer.split('/').map(|segment| unescape(segment, text));
            let segments = segments.collect::<Result<_, _>>()?;
            return Ok(Self {
                segments,
                syntax: Syntax::Pointer,
            });
        }
        if text.is_empty() {
            return Err(JsonError::EmptyPath);
        }
        if text.split('.').any(str::is_empty) {
            return Err(JsonError::EmptySegment {
                path: text.to_owned(),
            });
        }
        let segments = text.split('.').map(str::to_owned).collect();
        Ok(Self {
            segments,
            syntax: Syntax::Dotted,
        })
    }
}

/// Writes the path back in the spelling it was parsed from.
impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.prefix(self.segments.len()))
    }
}

/// Decodes one pointer segment: `~0` is `~`, `~1` is `/`, and any other `~` is an error.
fn unescape(segment: &str, path: &str) -> Result<String, JsonError> {
    let mut unescaped = String::with_capacity(segment.len());
    let mut chars = segment.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            unescaped.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => unescaped.push('~'),
            Some('1') => unescaped.push('/'),
            _ => {
                return Err(JsonError::InvalidEscape {
                    path: path.to_owned(),
                });
            }
        }
    }
    Ok(unescaped)
}

/// Writes `value` at `path`, as `syncline set` does.
///
/// Missing keys along the way are created as maps, so `nights.2026-12-24.price` works on an
/// empty document. Lists are never grown in the middle of a path: an index there must name an
/// element. The last segment on a list replaces the element at that index, or appends when it
/// is `-` or the list's length.
pub fn set_path(
    tx: &mut impl Transactable,
    path: &JsonPath,
    value: &Value,
) -> Result<(), JsonError> {
    let mut parent = Node::root();
    for depth in 0..path.segments.len().saturating_sub(1) {
        parent = step_or_create(tx, Step { path, depth }, &parent)?;
    }
    set_last(tx, Step::last(path), &parent, value)
}

/// Deletes the value at `path`. Nothing is created on the way: a missing key or index anywhere
/// along the path, or `-`, is [`JsonError::NotFound`].
pub fn delete_path(tx: &mut impl Transactable, path: &JsonPath) -> Result<(), JsonError> {
    let parent = existing_parent(tx, path)?;
    let step = Step::last(path);
    let prop = present_prop(tx, step, &parent)?.ok_or_else(|| step.not_found())?;
    if read(tx, step, &parent.id, prop.clone())?.is_none() {
        return Err(step.not_found());
    }
    tx.delete(&parent.id, prop).map_err(step.write_error())
}

/// Inserts `value` into a list before the element at `path`'s last segment, moving that element
/// and the ones after it along; the list's length or `-` appends. Unlike [`set_path`] nothing is
/// created on the way, and the last segment must name a position in a list.
pub fn insert_path(
    tx: &mut impl Transactable,
    path: &JsonPath,
    value: &Value,
) -> Result<(), JsonError> {
    let parent = existing_parent(tx, path)?;
    let step = Step::last(path);
    if let NodeKind::Map = parent.kind {
        return Err(JsonError::NotAList {
            path: path.to_string(),
            list: match step.depth {
                0 => "the root".to_owned(),
                depth => path.prefix(depth),
            },
        });
    }
    let len = tx.length(&parent.id);
    match step.index()? {
        Index::At(index) if index > len => Err(step.out_of_range(index, len)),
        Index::At(index) => insert_value(tx, &parent.id, index, value),
        Index::End => insert_value(tx, &parent.id, len, value),
    }
}

/// The map or list holding `path`'s last segment, every segment before it present already.
fn existing_parent(doc: &impl ReadDoc, path: &JsonPath) -> Result<Node, JsonError> {
    let mut parent = Node::root();
    for depth in 0..path.segments.len().saturating_sub(1) {
        let step = Step { path, depth };
        let prop = present_prop(doc, step, &parent)?.ok_or_else(|| step.not_found())?;
        parent = child(doc, step, &parent, prop)?.ok_or_else(|| step.not_found())?;
    }
    Ok(parent)
}

/// A map or list reached while walking a path; text and scalars cannot be walked into.
struct Node {
    id: ObjId,
    kind: NodeKind,
}

enum NodeKind {
    Map,
    List,
}

impl Node {
    fn root() -> Self {
        Self {
            id: ROOT,
            kind: NodeKind::Map,
        }
    }

    fn new(id: ObjId, typ: ObjType) -> Option<Self> {
        let kind = match typ {
            ObjType::Map | ObjType::Table => NodeKind::Map,
            ObjType::List => NodeKind::List,
            ObjType::Text => return None,
        };
        Some(Self { id, kind })
    }
}

/// One segment of a path being walked, with what errors need to say where the walk stopped.
#[derive(Clone, Copy)]
struct Step<'a> {
    path: &'a JsonPath,
    depth: usize,
}

/// A list segment: an index, or `-` for the position after the last element.
enum Index {
    At(usize),
    End,
}

impl<'a> Step<'a> {
    fn last(path: &'a JsonPath) -> Self {
        Self {
            path,
            depth: path.segments.len().saturating_sub(1),
        }
    }

    fn segment(&self) -> &'a str {
        self.path
            .segments
            .get(self.depth)
            .map_or("", String::as_str)
    }

    /// The path up to and including this segment.
    fn at(&self) -> String {
        self.path.prefix(self.depth + 1)
    }

    fn index(&self) -> Result<Index, JsonError> {
        let segment = self.segment();
        if segment == "-" {
            return Ok(Index::End);
        }

        // RFC 6901 spells an index one way only: ASCII digits, no sign, no leading zero.
        let decimal = segment.bytes().all(|b| b.is_ascii_digit())
            && (segment == "0" || !segment.starts_with('0'));
        match segment.parse() {
            Ok(index) if decimal => Ok(Index::At(index)),
            _ => Err(JsonError::NotAnIndex {
                path: self.path.to_string(),
                segment: segment.to_owned(),
            }),
        }
    }

    fn not_found(&self) -> JsonError {
        JsonError::NotFound {
            path: self.path.to_string(),
            at: self.at(),
        }
    }

    fn not_a_container(&self, kind: &'static str) -> JsonError {
        JsonError::NotAContainer {
            path: self.path.to_string(),
            at: self.at(),
            kind,
        }
    }

    fn write_error(&self) -> impl FnOnce(AutomergeError) -> JsonError {
        let target = format!("path {}", self.at());
        move |source| JsonError::write(target, source)
    }

    fn out_of_range(&self, index: usize, len: usize) -> JsonError {
        let list = self.path.prefix(self.depth);
        JsonError::IndexOutOfRange {
            path: self.path.to_string(),
            list,
            index,
            len,
        }
    }
}

/// Walks one segment for [`set_path`], creating a map where a map lacks the key.
fn step_or_create(
    tx: &mut impl Transactable,
    step: Step<'_>,
    parent: &Node,
) -> Result<Node, JsonError> {
    let prop = match parent.kind {
        NodeKind::Map => Prop::Map(step.segment().to_owned()),
        NodeKind::List => Prop::Seq(element_index(tx, step, parent)?),
    };
    if let Some(node) = child(tx, step, parent, prop.clone())? {
        return Ok(node);
    }

    let id = tx
        .put_object(&parent.id, prop, ObjType::Map)
        .map_err(step.write_error())?;
    Ok(Node {
        id,
        kind: NodeKind::Map,
    })
}

/// The index of an existing element named by a segment in the middle of a path.
fn element_index(doc: &impl ReadDoc, step: Step<'_>, list: &Node) -> Result<usize, JsonError> {
    let len = doc.length(&list.id);
    match step.index()? {
        Index::At(index) if index < len => Ok(index),
        Index::At(index) => Err(step.out_of_range(index, len)),
        Index::End => Err(JsonError::AppendNotLast {
            path: step.path.to_string(),
        }),
    }
}

/// The last segment of [`set_path`]: replace a key or element, or append to a list.
fn set_last(
    tx: &mut impl Transactable,
    step: Step<'_>,
    parent: &Node,
    value: &Value,
) -> Result<(), JsonError> {
    if let NodeKind::Map = parent.kind {
        return put_value(tx, &parent.id, step.segment(), value);
    }
    let len = tx.length(&parent.id);
    match step.index()? {
        Index::At(index) if index < len => put_value(tx, &parent.id, index, value),
        Index::At(index) if index > len => Err(step.out_of_range(index, len)),
        Index::At(_) | Index::End => insert_value(tx, &parent.id, len, value),
    }
}

/// The map or list at `prop` of `parent`, `None` when nothing is there.
fn child(
    doc: &impl ReadDoc,
    step: Step<'_>,
    parent: &Node,
    prop: Prop,
) -> Result<Option<Node>, JsonError> {
    match read(doc, step, &parent.id, prop)? {
        Some((automerge::Value::Object(typ), id)) => Node::new(id, typ)
            .map(Some)
            .ok_or_else(|| step.not_a_container("text")),
        Some((automerge::Value::Scalar(scalar), _)) => {
            Err(step.not_a_container(scalar_kind(&scalar)))
        }
        None => Ok(None),
    }
}

/// The property a segment names in `parent`, or `None` for an index past the end of a list.
fn present_prop(
    doc: &impl ReadDoc,
    step: Step<'_>,
    parent: &Node,
) -> Result<Option<Prop>, JsonError> {
    match parent.kind {
        NodeKind::Map => Ok(Some(Prop::Map(step.segment().to_owned()))),
        NodeKind::List => match step.index()? {
            Index::At(index) if index < doc.length(&parent.id) => Ok(Some(Prop::Seq(index))),
            Index::At(_) | Index::End => Ok(None),
        },
    }
}

fn read<'d>(
    doc: &'d impl ReadDoc,
    step: Step<'_>,
    obj: &ObjId,
    prop: Prop,
) -> Result<Option<(automerge::Value<'d>, ObjId)>, JsonError> {
    doc.get(obj, prop).map_err(|source| JsonError::Read {
        target: format!("path {}", step.at()),
        source: Box::new(source),
    })
}

/// Names a scalar's type the way an error message needs it: "... is a string, not a map".
fn scalar_kind(scalar: &ScalarValue) -> &'static str {
    match scalar {
        ScalarValue::Str(_) => "a string",
        ScalarValue::Int(_) | ScalarValue::Uint(_) => "an integer",
        ScalarValue::F64(_) => "a float",
        ScalarValue::Counter(_) => "a counter",
        ScalarValue::Timestamp(_) => "a timestamp",
        ScalarValue::Boolean(_) => "a boolean",
        ScalarValue::Bytes(_) => "bytes",
        ScalarValue::Null => "null",
        ScalarValue::Unknown { .. } => "a value of unknown type",
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Why JSON could not be written, or a path could not be parsed or followed.
///
/// Messages quote paths the way the user spelled them, so a CLI can print the error as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// A document was to be created from JSON that is not an object.
    #[error("the root of a document must be a JSON object, not {found}")]
    RootNotObject {
        /// What the JSON was instead, such as "an array".
        found: &'static str,
    },
    /// A number fits neither `i64`, `u64` nor a finite `f64` (only possible with serde_json's
    /// `arbitrary_precision` feature).
    #[error("the number {number} fits neither a 64-bit integer nor a 64-bit float")]
    UnsupportedNumber {
        /// The number as written.
        number: String,
    },
    /// The path text was empty.
    #[error("the path is empty; name a key, such as `title` or `/title`")]
    EmptyPath,
    /// A dotted path with an empty segment, such as `a..b` or `a.`.
    #[error(
        "path {path:?} has an empty segment; for keys that are empty or contain dots, \
         write a JSON Pointer such as `/a/`"
    )]
    EmptySegment {
        /// The path as written.
        path: String,
    },
    /// A JSON Pointer with a `~` not followed by `0` or `1`.
    #[error("path {path:?}: `~` must be followed by 0 (for `~`) or 1 (for `/`)")]
    InvalidEscape {
        /// The path as written.
        path: String,
    },
    /// The path goes through a value that has no keys or indexes.
    #[error("path {path}: {at} is {kind}, not a map or list")]
    NotAContainer {
        /// The whole path.
        path: String,
        /// The path walked so far, ending at the value in the way.
        at: String,
        /// What that value is, such as "a string" or "text".
        kind: &'static str,
    },
    /// A segment on a list that is neither a decimal index nor `-`.
    #[error(
        "path {path}: {segment:?} is not a list index; use a decimal number without leading \
         zeros, or - to append"
    )]
    NotAnIndex {
        /// The whole path.
        path: String,
        /// The segment that should have been an index.
        segment: String,
    },
    /// An index past the end of a list (the length itself is allowed as the last segment).
    #[error("path {path}: index {index} is out of range for {list}, which has {len} elements")]
    IndexOutOfRange {
        /// The whole path.
        path: String,
        /// The path of the list.
        list: String,
        /// The index asked for.
        index: usize,
        /// The list's length.
        len: usize,
    },
    /// An insert whose target is a key of a map rather than a position in a list.
    #[error("path {path}: {list} is a map; insert needs a list position (use set for keys)")]
    NotAList {
        /// The whole path.
        path: String,
        /// The path of the map.
        list: String,
    },
    /// `-` in the middle of a path, where it would name an element that does not exist.
    #[error("path {path}: - (append) can only be the last segment")]
    AppendNotLast {
        /// The whole path.
        path: String,
    },
    /// Nothing at a path that must exist, such as the target of a delete.
    #[error("path {path}: nothing at {at}")]
    NotFound {
        /// The whole path.
        path: String,
        /// The path walked so far, ending at the missing key or index.
        at: String,
    },
    /// Automerge refused a read, for example an object id from another document.
    #[error("reading {target} failed")]
    Read {
        /// The key, index or path being read.
        target: String,
        /// Automerge's reason, boxed because it is several times the size of the other variants.
        #[source]
        source: Box<AutomergeError>,
    },
    /// Automerge refused a write, for example a key on a list or an index past its end.
    #[error("writing {target} failed")]
    Write {
        /// The key, index or path being written.
        target: String,
        /// Automerge's reason, boxed because it is several times the size of the other variants.
        #[source]
        source: Box<AutomergeError>,
    },
}

impl JsonError {
    fn write(target: String, source: AutomergeError) -> Self {
        Self::Write {
            target,
            source: Box::new(source),
        }
    }
}
