//! Ids as they travel on the wire: documents, peers, storage, and `automerge:` URLs.
//!
//! Every message names its sender and target by [`PeerId`], and every per-document message names
//! the document by [`DocumentId`]. A document id is sixteen random bytes shown as bs58check text
//! (Bitcoin alphabet plus a four-byte double-SHA-256 checksum), so a mistyped or truncated id is
//! caught before it reaches storage. Parsing rejects a bad checksum and any payload that is not
//! exactly sixteen bytes, which the JS library lets through but samod and this server do not.

use std::fmt;
use std::str::FromStr;

/// The prefix of every Automerge URL.
pub const URL_PREFIX: &str = "automerge:";

/// Bytes in a document id payload (a UUID v4).
const DOCUMENT_ID_LEN: usize = 16;

/// Bytes in a change hash, the payload of each head in a URL.
const HEAD_LEN: usize = 32;

/// The identity of one Automerge document: sixteen random bytes.
///
/// Its text form is bs58check, 27 or 28 characters. Ordering and hashing use the bytes, so a
/// `DocumentId` can key maps and storage without ever going back to text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentId([u8; DOCUMENT_ID_LEN]);

impl DocumentId {
    /// Wraps sixteen bytes, for example read back from storage.
    pub const fn from_bytes(bytes: [u8; DOCUMENT_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// Makes a new id from random bytes supplied by the caller, shaped as a version 4 UUID
    /// (version and variant bits set), as the JavaScript client makes them: older
    /// automerge-repo peers refuse ids that are not UUIDs. This crate takes no randomness of
    /// its own so that tests stay deterministic.
    pub fn random_from(mut bytes: [u8; DOCUMENT_ID_LEN]) -> Self {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Self(bytes)
    }

    /// The sixteen id bytes, the form storage keys use.
    pub fn as_bytes(&self) -> &[u8; DOCUMENT_ID_LEN] {
        &self.0
    }

    /// The id as an `automerge:` URL without heads, the form users paste into a client.
    pub fn url(&self) -> String {
        format!("{URL_PREFIX}{self}")
    }

    /// Parses only the bs58check form, the one that appears in `documentId` fields on the wire.
    ///
    /// [`FromStr`] is more forgiving (URLs and legacy UUIDs); a peer's message gets this strict
    /// form so that the protocol's "well-formed id" check means exactly one spelling.
    pub fn from_bs58check(text: &str) -> Result<Self, IdError> {
        decode_bs58check(text).and_then(exact_length).map(Self)
    }

    /// Parses the legacy hyphenated UUID form (`8-4-4-4-12` hex digits), which older clients
    /// stored and which both the JS library and samod still map to the same document.
    fn from_hyphenated_uuid(text: &str) -> Option<Self> {
        let groups: Vec<&str> = text.split('-').collect();
        let lengths: Vec<usize> = groups.iter().map(|group| group.len()).collect();
        if lengths != [8, 4, 4, 4, 12] {
            return None;
        }
        let mut bytes = [0u8; DOCUMENT_ID_LEN];
        hex::decode_to_slice(groups.concat(), &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

/// Accepts, in this order: an `automerge:` URL (its heads are validated, then dropped), the
/// legacy hyphenated UUID form, or bs58check text.
impl FromStr for DocumentId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, IdError> {
        if text.starts_with(URL_PREFIX) {
            return text.parse::<AutomergeUrl>().map(|url| url.document_id);
        }
        if let Some(id) = Self::from_hyphenated_uuid(text) {
            return Ok(id);
        }
        Self::from_bs58check(text)
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(&self.0).with_check().into_string())
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({self})")
    }
}

/// Why a document id or an Automerge URL was rejected.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// Nothing where an id was expected.
    #[error("id is empty")]
    Empty,
    /// A character outside the Bitcoin base58 alphabet (`0`, `O`, `I`, `l`, punctuation, ...).
    #[error("{character:?} at byte {index} is not a base58 character")]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Its byte offset in the text.
        index: usize,
    },
    /// Valid base58 whose last four bytes are not the checksum of the rest (a typo, a
    /// truncation), or too short to hold a checksum at all.
    #[error("bs58check checksum is missing or does not match")]
    BadChecksum,
    /// A well-formed bs58check string carrying the wrong number of bytes.
    #[error("payload is {actual} bytes, expected {expected}")]
    WrongLength {
        /// Bytes the id kind needs: 16 for a document id, 32 for a head.
        expected: usize,
        /// Bytes actually found.
        actual: usize,
    },
    /// Text that does not start with `automerge:` where a URL was expected.
    #[error("URL does not start with {URL_PREFIX:?}")]
    BadUrlPrefix,
    /// More than one `#` in a URL.
    #[error("URL has more than one '#' heads section")]
    MultipleHeadsSections,
    /// One head of a URL's `#` section is not a bs58check 32-byte change hash.
    #[error("head {index} of the URL is invalid: {cause}")]
    BadHead {
        /// Position of the head in the `|`-separated list, from 0.
        index: usize,
        /// What is wrong with it.
        cause: Box<IdError>,
    },
}

/// Decodes bs58check text into its payload, checksum verified and removed.
fn decode_bs58check(text: &str) -> Result<Vec<u8>, IdError> {
    if text.is_empty() {
        return Err(IdError::Empty);
    }
    bs58::decode(text)
        .with_check(None)
        .into_vec()
        .map_err(|error| bs58_error(text, error))
}

/// Names what the bs58 decoder found wrong. Too few bytes to hold a checksum counts as a bad
/// checksum; the decoder's other errors need options this crate never sets.
fn bs58_error(text: &str, error: bs58::decode::Error) -> IdError {
    match error {
        bs58::decode::Error::InvalidCharacter { character, index } => {
            IdError::InvalidCharacter { character, index }
        }
        bs58::decode::Error::NonAsciiCharacter { index } => {
            let character = text.get(index..).and_then(|rest| rest.chars().next());
            IdError::InvalidCharacter {
                character: character.unwrap_or('?'),
                index,
            }
        }
        _ => IdError::BadChecksum,
    }
}

/// An `automerge:` URL: a document, optionally pinned to a set of heads (change hashes).
///
/// Written `automerge:<id>` or `automerge:<id>#<head>|<head>`, each head in bs58check. An empty
/// `#` section parses as no heads, so it does not survive a round trip through [`Display`].
///
/// [`Display`]: fmt::Display
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AutomergeUrl {
    /// The document the URL points at.
    pub document_id: DocumentId,
    /// The heads the URL is pinned to; empty for "the latest version".
    pub heads: Vec<[u8; HEAD_LEN]>,
}

impl AutomergeUrl {
    /// Parses the `|`-separated heads after `#`; an empty section is no heads, as in JS.
    fn parse_heads(section: &str) -> Result<Vec<[u8; HEAD_LEN]>, IdError> {
        if section.is_empty() {
            return Ok(Vec::new());
        }
        section
            .split('|')
            .enumerate()
            .map(|(index, head)| {
                parse_head(head).map_err(|cause| IdError::BadHead {
                    index,
                    cause: Box::new(cause),
                })
            })
            .collect()
    }
}

/// Parses one bs58check head into a 32-byte change hash.
fn parse_head(text: &str) -> Result<[u8; HEAD_LEN], IdError> {
    decode_bs58check(text).and_then(exact_length)
}

/// Checks that a decoded payload has exactly the `N` bytes its kind of id needs.
fn exact_length<const N: usize>(payload: Vec<u8>) -> Result<[u8; N], IdError> {
    let actual = payload.len();
    <[u8; N]>::try_from(payload).map_err(|_| IdError::WrongLength {
        expected: N,
        actual,
    })
}

impl FromStr for AutomergeUrl {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, IdError> {
        let rest = text.strip_prefix(URL_PREFIX).ok_or(IdError::BadUrlPrefix)?;
        let mut sections = rest.split('#');
        let id = sections.next().unwrap_or_default();
        let heads = sections.next().unwrap_or_default();
        if sections.next().is_some() {
            return Err(IdError::MultipleHeadsSections);
        }
        Ok(Self {
            document_id: DocumentId::from_bs58check(id)?,
            heads: Self::parse_heads(heads)?,
        })
    }
}

impl fmt::Display for AutomergeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{URL_PREFIX}{}", self.document_id)?;
        for (index, head) in self.heads.iter().enumerate() {
            let separator = if index == 0 { '#' } else { '|' };
            write!(
                f,
                "{separator}{}",
                bs58::encode(head).with_check().into_string()
            )?;
        }
        Ok(())
    }
}

impl From<DocumentId> for AutomergeUrl {
    fn from(document_id: DocumentId) -> Self {
        Self {
            document_id,
            heads: Vec::new(),
        }
    }
}

/// The name a peer gives itself in `join`, and the address of every message after it.
///
/// Any string is allowed: JS clients pick random ones, servers often a fixed name. The server
/// binds a connection to the id it joined with and rejects messages claiming another.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PeerId(pub String);

impl PeerId {
    /// The id as text, as it appears on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for PeerId {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl From<String> for PeerId {
    fn from(text: String) -> Self {
        Self(text)
    }
}

/// Names one durable store (a UUID string in practice). Peers announce it in `peerMetadata` and
/// gossip heads per storage id, which is how a client learns what the server has saved.
///
/// Kept as the text received: it is only compared and echoed, never interpreted.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct StorageId(pub String);

impl StorageId {
    /// The id as text, as it appears on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StorageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for StorageId {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl From<String> for StorageId {
    fn from(text: String) -> Self {
        Self(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// New ids parse as version 4 UUIDs whatever the random bytes were.
    #[test]
    fn new_ids_are_version_4_uuids() {
        for fill in [0x00, 0xff, 0x5a] {
            let id = DocumentId::random_from([fill; DOCUMENT_ID_LEN]);
            let uuid = uuid::Uuid::from_bytes(*id.as_bytes());
            assert_eq!(uuid.get_version_num(), 4, "{uuid}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{uuid}");
        }
    }
}
