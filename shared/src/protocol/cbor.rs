//! Walking untrusted CBOR: the fields of a map, and typed values within them.
//!
//! A frame is read in two passes. [`Fields::read`] walks the whole map once, checking that it is
//! well-formed and remembering each value as a slice of the input. The message decoder then
//! reads the fields it needs, by key and in its own order, with the `read_*` functions here.
//! This is what lets keys arrive in any order while `senderId` is still read before
//! `documentId` is judged.
//!
//! Nothing here recurses, and [`skip_value`] refuses values nested deeper than
//! [`MAX_NESTING`], so neither a hostile frame nor a large one can exhaust the stack or memory.

use std::borrow::Cow;

use minicbor::Decoder;
use minicbor::data::Type;

/// Deepest nesting of arrays and maps accepted within one value. Real messages nest three deep.
pub(super) const MAX_NESTING: usize = 64;

/// Why bytes could not be walked as CBOR, in words for the peer.
pub(super) type Malformed = String;

/// The entries of one CBOR map with text keys, each value kept as its raw encoded bytes.
#[derive(Debug, Default)]
pub(super) struct Fields<'b> {
    entries: Vec<(Cow<'b, str>, &'b [u8])>,
}

/// A map that broke off part-way: why, and the entries read before the break.
#[derive(Debug)]
pub(super) struct Broken<'b> {
    pub(super) reason: Malformed,
    pub(super) partial: Fields<'b>,
}

impl<'b> Fields<'b> {
    /// Reads the map at the decoder's position, of any header width and definite or indefinite
    /// length. Entries whose key is not text are skipped.
    pub(super) fn read(d: &mut Decoder<'b>) -> Result<Self, Broken<'b>> {
        let mut fields = Self::default();
        match fields.read_entries(d) {
            Ok(()) => Ok(fields),
            Err(reason) => Err(Broken {
                reason,
                partial: fields,
            }),
        }
    }

    fn read_entries(&mut self, d: &mut Decoder<'b>) -> Result<(), Malformed> {
        let mut remaining = Open::from_len(d.map().map_err(describe)?);
        while next_item(d, &mut remaining)? {
            let key = read_key(d)?;
            let value = read_raw(d)?;
            if let Some(key) = key {
                self.entries.push((key, value));
            }
        }
        Ok(())
    }

    /// The raw value of a field, or `None` when it is missing, `undefined` or `null` (JS writes
    /// `undefined` for unset optional fields). A repeated key takes its last value, as in JS.
    pub(super) fn raw(&self, key: &str) -> Option<&'b [u8]> {
        let (_, value) = self.entries.iter().rev().find(|(name, _)| name == key)?;
        (!is_absent(value)).then_some(*value)
    }

    /// Every present entry, in wire order.
    pub(super) fn entries(&self) -> impl Iterator<Item = (&str, &'b [u8])> {
        self.entries
            .iter()
            .filter(|(_, value)| !is_absent(value))
            .map(|(k, v)| (k.as_ref(), *v))
    }

    /// A text field that is present and text, ignoring anything else: for filling in the context
    /// of an error, where a second failure must not hide the first.
    pub(super) fn lenient_text(&self, key: &str) -> Option<String> {
        self.raw(key).and_then(read_text)
    }
}

/// Counts off one item of an open container, or consumes its break byte when it is
/// indefinite, and says whether another item follows.
fn next_item(d: &mut Decoder<'_>, open: &mut Open) -> Result<bool, Malformed> {
    match open {
        Open::Items(0) => Ok(false),
        Open::Items(count) => {
            *count -= 1;
            Ok(true)
        }
        Open::UntilBreak if d.datatype().map_err(describe)? == Type::Break => {
            d.set_position(d.position() + 1);
            Ok(false)
        }
        Open::UntilBreak => Ok(true),
    }
}

/// Reads a map key: text is returned, any other key is skipped and yields `None`.
fn read_key<'b>(d: &mut Decoder<'b>) -> Result<Option<Cow<'b, str>>, Malformed> {
    match d.datatype().map_err(describe)? {
        Type::String | Type::StringIndef => read_str(d).map(Some).map_err(describe),
        _ => skip_value(d).map(|()| None),
    }
}

/// Skips one value and returns the bytes it occupied.
fn read_raw<'b>(d: &mut Decoder<'b>) -> Result<&'b [u8], Malformed> {
    let start = d.position();
    skip_value(d)?;
    Ok(&d.input()[start..d.position()])
}

/// What is still to be read in one open array or map: a count of items, or everything up to a
/// break byte.
enum Open {
    Items(u64),
    UntilBreak,
}

impl Open {
    fn from_len(len: Option<u64>) -> Self {
        len.map_or(Self::UntilBreak, Self::Items)
    }
}

/// Skips one complete value, however it is nested, without recursion.
///
/// `minicbor`'s own `skip` keeps a stack that grows with the input, so a 100 MiB frame of
/// nested indefinite arrays could allocate gigabytes; this one stops at [`MAX_NESTING`].
pub(super) fn skip_value(d: &mut Decoder<'_>) -> Result<(), Malformed> {
    let mut open = vec![Open::Items(1)];
    while let Some(top) = open.last_mut() {
        if !next_item(d, top)? {
            open.pop();
            continue;
        }
        if let Some(inner) = open_item(d)? {
            open.push(inner);
        }
        if open.len() > MAX_NESTING + 1 {
            return Err(format!("values nested deeper than {MAX_NESTING} levels"));
        }
    }
    Ok(())
}

/// Consumes one item's header. An array or map is returned to be walked, a map as two items per
/// entry; any other item, tags included, is consumed whole.
fn open_item(d: &mut Decoder<'_>) -> Result<Option<Open>, Malformed> {
    while d.datatype().map_err(describe)? == Type::Tag {
        d.tag().map_err(describe)?;
    }
    let open = match d.datatype().map_err(describe)? {
        Type::Array | Type::ArrayIndef => Open::from_len(d.array().map_err(describe)?),
        Type::Map | Type::MapIndef => {
            let pairs = d.map().map_err(describe)?;
            Open::from_len(pairs.map(|pairs| pairs.saturating_mul(2)))
        }
        Type::Break => return Err("unexpected break byte".to_owned()),
        _ => {
            d.skip().map_err(describe)?;
            return Ok(None);
        }
    };
    Ok(Some(open))
}

fn describe(error: minicbor::decode::Error) -> Malformed {
    error.to_string()
}

/// `undefined` and `null` both mean "not there".
fn is_absent(raw: &[u8]) -> bool {
    matches!(raw, [0xf6] | [0xf7])
}

/// Reads a definite or indefinite text string, borrowing when it is in one piece.
fn read_str<'b>(d: &mut Decoder<'b>) -> Result<Cow<'b, str>, minicbor::decode::Error> {
    if d.datatype()? != Type::StringIndef {
        return d.str().map(Cow::Borrowed);
    }
    let mut text = String::new();
    for chunk in d.str_iter()? {
        text.push_str(chunk?);
    }
    Ok(Cow::Owned(text))
}

/// A text value, or `None` if the value is not text.
pub(super) fn read_text(raw: &[u8]) -> Option<String> {
    read_str(&mut Decoder::new(raw)).ok().map(Cow::into_owned)
}

/// A byte string value, definite or indefinite, or `None` if the value is not a byte string.
pub(super) fn read_bytes(raw: &[u8]) -> Option<Vec<u8>> {
    let mut d = Decoder::new(raw);
    if d.datatype().ok()? != Type::BytesIndef {
        return d.bytes().ok().map(<[u8]>::to_vec);
    }
    let mut bytes = Vec::new();
    for chunk in d.bytes_iter().ok()? {
        bytes.extend_from_slice(chunk.ok()?);
    }
    Some(bytes)
}

/// A boolean value.
pub(super) fn read_bool(raw: &[u8]) -> Option<bool> {
    Decoder::new(raw).bool().ok()
}

/// Any number, integer or float, as JS sees it: a float64.
pub(super) fn read_number(raw: &[u8]) -> Option<f64> {
    let mut d = Decoder::new(raw);
    match d.datatype().ok()? {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => d.u64().ok().map(|n| n as f64),
        Type::I8 | Type::I16 | Type::I32 | Type::I64 | Type::Int => {
            d.int().ok().map(|n| i128::from(n) as f64)
        }
        Type::F16 => {
            let bits = [*raw.get(1)?, *raw.get(2)?];
            Some(half_to_f64(u16::from_be_bytes(bits)))
        }
        Type::F32 | Type::F64 => d.f64().ok(),
        _ => None,
    }
}

/// A non-negative whole number. JS writes integers from 2^32 up as float64, so a float with
/// no fractional part is accepted too.
pub(super) fn read_count(raw: &[u8]) -> Option<u64> {
    let mut d = Decoder::new(raw);
    match d.datatype().ok()? {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => d.u64().ok(),
        Type::F16 | Type::F32 | Type::F64 => whole_number(read_number(raw)?),
        _ => None,
    }
}

fn whole_number(value: f64) -> Option<u64> {
    const TWO_TO_THE_64: f64 = 18_446_744_073_709_551_616.0;
    let whole = (0.0..TWO_TO_THE_64).contains(&value) && value.fract() == 0.0;
    whole.then_some(value as u64)
}

/// Widens an IEEE 754 half-precision float, which `minicbor` reads only with a feature we do
/// not otherwise need.
fn half_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 == 0 { 1.0 } else { -1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f64::from(bits & 0x03ff);
    let magnitude = match exponent {
        0 => fraction * 2f64.powi(-24),
        31 if fraction == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + fraction / 1024.0) * 2f64.powi(exponent - 15),
    };
    sign * magnitude
}

/// An array's elements as raw values.
fn read_array(raw: &[u8]) -> Option<Vec<&[u8]>> {
    let mut d = Decoder::new(raw);
    let mut remaining = Open::from_len(d.array().ok()?);
    let mut items = Vec::new();
    while next_item(&mut d, &mut remaining).ok()? {
        items.push(read_raw(&mut d).ok()?);
    }
    Some(items)
}

/// An array of text values.
pub(super) fn read_text_list(raw: &[u8]) -> Option<Vec<String>> {
    read_array(raw)?.into_iter().map(read_text).collect()
}

/// A nested map, read into [`Fields`].
pub(super) fn read_map(raw: &[u8]) -> Option<Fields<'_>> {
    Fields::read(&mut Decoder::new(raw)).ok()
}
