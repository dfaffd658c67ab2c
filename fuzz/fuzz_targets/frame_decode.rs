//! Arbitrary bytes as one WebSocket frame, through `Message::decode`.
//!
//! The codec promises (shared/src/protocol/mod.rs and shared/tests/protocol_roundtrip.rs):
//! no input panics the decoder; every message survives `encode` then `decode` unchanged
//! (NaN timestamps aside, which never equal themselves); the encoding is the shortest form,
//! so its map header is one byte; and JS's 16-bit and indefinite map headers decode the same.
//! What it does not promise, and is not checked: that a frame re-encodes to its own bytes
//! (keys may come in any order, in wider headers, with `undefined` fields and duplicates).
//!
//! The `data` of `sync` and `request` is an Automerge sync message the session decodes later;
//! it is decoded here too, where only "no panic" is asked of it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use syncline_shared::protocol::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Message::decode(data) else {
        return;
    };
    if let Message::Sync(sync) | Message::Request(sync) = &message {
        let _ = automerge::sync::Message::decode(&sync.data);
    }

    let encoded = message.encode();
    assert!(
        (0xa0..=0xb7).contains(&encoded[0]),
        "not the shortest map header: {:02x}",
        encoded[0]
    );
    let again = Message::decode(&encoded).expect("an encoded message decodes");
    if has_nan(&message) {
        // NaN != NaN, so compare what the codec writes instead.
        assert_eq!(again.encode(), encoded, "round trip changed the message");
    } else {
        assert_eq!(again, message, "round trip changed the message");
    }

    // The same map with a 16-bit header and with an indefinite header, as JS writes them.
    let entries = encoded[0] - 0xa0;
    let map16 = [&[0xb9, 0, entries][..], &encoded[1..]].concat();
    let indefinite = [&[0xbf][..], &encoded[1..], &[0xff]].concat();
    for variant in [map16, indefinite] {
        let decoded = Message::decode(&variant).expect("a wider header decodes");
        assert_eq!(
            decoded.encode(),
            encoded,
            "a wider map header changed the message"
        );
    }
});

/// Whether a timestamp is NaN, the one value a round trip cannot show equal.
fn has_nan(message: &Message) -> bool {
    match message {
        Message::RemoteHeadsChanged(changed) => changed
            .new_heads
            .iter()
            .any(|(_, heads_at)| heads_at.timestamp.is_nan()),
        _ => false,
    }
}
