//! A look at the Automerge storage chunks in bytes from outside, before Automerge parses them.
//!
//! Every chunk starts with the same header: four magic bytes, a four-byte checksum, a one-byte
//! chunk type and the contents' length as unsigned LEB128. Sync messages carry change chunks
//! (types 1 and 2) or a whole document (type 0), and storage only ever writes those. Automerge
//! 0.12 also parses "bundle" chunks (type 3), and its bundle parser panics, or first allocates
//! gigabytes, on some malformed bundles of under a hundred bytes. No peer needs to send one, so
//! [`check`] refuses them, and any chunk type this module does not know, before Automerge sees
//! the bytes. Structural damage it leaves to Automerge, which reports it as an error.

/// The first four bytes of every Automerge chunk.
pub const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// The chunk types sync messages and stored rows may hold: document, change, compressed change.
const ALLOWED: [u8; 3] = [0, 1, 2];

/// Bytes that are not the chunks Syncline accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A chunk of a type other than document, change or compressed change.
    #[error("automerge chunk of type {0} is not accepted (only documents and changes are)")]
    Type(u8),
    /// Bytes that do not start with Automerge's magic where a chunk must begin.
    #[error("not an automerge chunk at byte {0}")]
    NotAChunk(usize),
}

/// Walks the chunks in `bytes` (one or more, back to back) and refuses any whose type is not
/// document, change or compressed change. A truncated chunk ends the walk: Automerge will
/// report it.
pub fn check(bytes: &[u8]) -> Result<(), ChunkError> {
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < 9 {
            return Ok(());
        }
        if rest[..4] != MAGIC {
            return Err(ChunkError::NotAChunk(at));
        }
        let kind = rest[8];
        if !ALLOWED.contains(&kind) {
            return Err(ChunkError::Type(kind));
        }
        let Some((length, used)) = uleb128(&rest[9..]) else {
            return Ok(());
        };
        let Some(next) = (9 + used)
            .checked_add(length)
            .and_then(|n| at.checked_add(n))
        else {
            return Ok(());
        };
        at = next;
    }
    Ok(())
}

/// An unsigned LEB128 number and how many bytes it took; `None` if truncated or over 64 bits.
fn uleb128(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value: u64 = 0;
    for (index, byte) in bytes.iter().enumerate().take(10) {
        let low = u64::from(byte & 0x7f);
        let shift = 7 * index as u32;
        if shift >= 64 || (shift == 63 && low > 1) {
            return None;
        }
        value |= low << shift;
        if byte & 0x80 == 0 {
            return usize::try_from(value).ok().map(|v| (v, index + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    fn document_with_changes() -> automerge::AutoCommit {
        let mut doc = automerge::AutoCommit::new();
        for n in 0..3 {
            doc.put(automerge::ROOT, "n", n).expect("put");
            doc.commit();
        }
        doc
    }

    #[test]
    fn documents_and_changes_pass() {
        let mut doc = document_with_changes();
        assert_eq!(check(&doc.save()), Ok(()));
        let changes: Vec<u8> = doc
            .get_changes(&[])
            .iter()
            .flat_map(|c| c.raw_bytes().to_vec())
            .collect();
        assert_eq!(check(&changes), Ok(()), "changes back to back");
        // A long change is stored compressed (type 2).
        let mut big = automerge::AutoCommit::new();
        big.put(automerge::ROOT, "text", "x".repeat(10_000))
            .expect("put");
        big.commit();
        let change = big.get_changes(&[]).first().map(|c| c.raw_bytes().to_vec());
        assert_eq!(check(&change.expect("a change")), Ok(()));
        assert_eq!(check(&[]), Ok(()));
    }

    #[test]
    fn bundles_and_strangers_are_refused() {
        let mut doc = document_with_changes();
        let mut chunk = doc.save();
        chunk[8] = 3;
        assert_eq!(check(&chunk), Err(ChunkError::Type(3)));
        let mut tail = doc.save();
        let mut second = tail.clone();
        second[8] = 7;
        tail.extend_from_slice(&second);
        assert_eq!(check(&tail), Err(ChunkError::Type(7)), "a bad second chunk");
        assert_eq!(check(b"not a chunk at all"), Err(ChunkError::NotAChunk(0)));
    }

    #[test]
    fn lengths_are_read_as_leb128() {
        assert_eq!(uleb128(&[0x05]), Some((5, 1)));
        assert_eq!(uleb128(&[0xe5, 0x8e, 0x26]), Some((624_485, 3)));
        assert_eq!(uleb128(&[0x80]), None, "truncated");
        assert_eq!(uleb128(&[0xff; 11]), None, "over 64 bits");
    }
}
