//! A synthetic text editing history for the cold-load scenario: one text object typed into, with
//! corrections and cursor jumps, committed every few keystrokes as an editor would.
//!
//! The history is deterministic for a given size and seed, so every server in a run, and the
//! in-process floor, load the same document.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT};

/// The shape of a history.
#[derive(Debug, Clone, Copy)]
pub struct HistoryShape {
    /// Text operations in all (each typed or deleted character is one).
    pub ops: usize,
    /// Operations per change: the keystrokes an editor commits at once.
    pub ops_per_change: usize,
    /// Seed of the keystroke sequence.
    pub seed: u64,
}

/// What a generated history holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryFacts {
    /// Text operations made.
    pub ops: usize,
    /// Changes committed.
    pub changes: usize,
    /// Characters left in the text at the end.
    pub chars: usize,
}

/// Typing and correcting at a cursor: most keystrokes insert the next letter of an endless
/// sentence, about one in eight deletes the character before the cursor, and about one in forty
/// moves the cursor somewhere else first (an editor going back to fix a paragraph).
pub fn generate(shape: HistoryShape) -> (AutoCommit, HistoryFacts) {
    const SENTENCE: &[u8] = b"the host moved the price of the night before the holiday weekend. ";
    let mut doc =
        AutoCommit::new().with_actor(automerge::ActorId::from(shape.seed.to_be_bytes().to_vec()));
    let text = doc
        .put_object(ROOT, "text", ObjType::Text)
        .expect("a text object on a fresh document");
    doc.put(ROOT, "title", "cold load history")
        .expect("put on a fresh document");
    let mut rng = SplitMix(shape.seed);
    let (mut cursor, mut len, mut next_letter) = (0_usize, 0_usize, 0_usize);
    let mut changes = 0;
    let per_change = shape.ops_per_change.max(1);
    // Change timestamps advance a second every change from a fixed start, as a real session's
    // would; the fixed start keeps the document the same from run to run.
    let mut time: i64 = 1_780_000_000;
    for op in 0..shape.ops {
        let roll = rng.next() % 40;
        if roll == 0 && len > 0 {
            cursor = (rng.next() as usize) % (len + 1);
        }
        if roll < 5 && cursor > 0 {
            doc.splice_text(&text, cursor - 1, 1, "")
                .expect("delete inside the text");
            cursor -= 1;
            len -= 1;
        } else {
            let letter = SENTENCE[next_letter % SENTENCE.len()] as char;
            next_letter += 1;
            let mut buf = [0_u8; 4];
            doc.splice_text(&text, cursor, 0, letter.encode_utf8(&mut buf))
                .expect("insert inside the text");
            cursor += 1;
            len += 1;
        }
        if (op + 1) % per_change == 0 || op + 1 == shape.ops {
            time += 1;
            doc.commit_with(automerge::transaction::CommitOptions::default().with_time(time));
            changes += 1;
        }
    }
    let facts = HistoryFacts {
        ops: shape.ops,
        changes,
        chars: len,
    };
    (doc, facts)
}

/// SplitMix64: a small, fast, well-mixed generator; the history only needs to be repeatable.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use automerge::ReadDoc;

    use super::*;

    #[test]
    fn a_history_is_repeatable_and_has_the_asked_shape() {
        let shape = HistoryShape {
            ops: 2_000,
            ops_per_change: 8,
            seed: 7,
        };
        let (mut a, facts) = generate(shape);
        let (mut b, _) = generate(shape);
        assert_eq!(
            a.save(),
            b.save(),
            "the same shape and seed give the same bytes"
        );
        assert_eq!(facts.changes, 250);
        assert_eq!(a.get_changes(&[]).len(), 250);
        let (_, text) = a
            .get(ROOT, "text")
            .expect("the root reads")
            .expect("the history has its text");
        let chars = a.text(&text).expect("the text reads").chars().count();
        assert_eq!(chars, facts.chars);
        assert!(
            facts.chars > 1_000 && facts.chars < 2_000,
            "some keystrokes deleted, most typed: {} characters",
            facts.chars
        );
    }
}
