//! Property and unit tests of the frame codec: every message survives a round trip, no input
//! panics the decoder, and each kind of bad frame is reported as what it is.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use syncline_shared::ids::{DocumentId, IdError, PeerId, StorageId};
use syncline_shared::protocol::{
    DecodeError, DecodeErrorKind, DocUnavailable, Ephemeral, ErrorMessage, HeadsAt, Join, Leave,
    Message, Peer, PeerMetadata, RemoteHeadsChanged, RemoteSubscriptionChange, SyncMessage,
};

const KNOWN_TYPES: &[&str] = &[
    "join",
    "peer",
    "error",
    "sync",
    "request",
    "doc-unavailable",
    "ephemeral",
    "remote-subscription-change",
    "remote-heads-changed",
    "leave",
];

const DOCUMENT: &str = "33dFFtyPipCFNr9N92dE3SevX2W5";

// Strategies, one per message part. Strings are arbitrary Unicode and ids arbitrary bytes.

fn peer_id() -> impl Strategy<Value = PeerId> {
    any::<String>().prop_map(PeerId)
}

fn storage_id() -> impl Strategy<Value = StorageId> {
    any::<String>().prop_map(StorageId)
}

fn storage_ids() -> impl Strategy<Value = Option<Vec<StorageId>>> {
    option::of(vec(storage_id(), 0..4))
}

fn document_id() -> impl Strategy<Value = DocumentId> {
    any::<[u8; 16]>().prop_map(DocumentId::from_bytes)
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..600)
}

prop_compose! {
    fn peer_metadata()(storage_id in option::of(storage_id()), is_ephemeral: bool)
        -> PeerMetadata {
        PeerMetadata { storage_id, is_ephemeral }
    }
}

prop_compose! {
    fn heads_at()(heads in vec(any::<String>(), 0..4), timestamp in any::<f64>())
        -> HeadsAt {
        // NaN never equals itself, so it cannot show a round trip; zero stands in for it.
        HeadsAt { heads, timestamp: if timestamp.is_nan() { 0.0 } else { timestamp } }
    }
}

prop_compose! {
    fn sync_message()(sender_id in peer_id(), target_id in peer_id(),
                      document_id in document_id(), data in bytes()) -> SyncMessage {
        SyncMessage { sender_id, target_id, document_id, data }
    }
}

prop_compose! {
    fn join()(sender_id in peer_id(), peer_metadata in option::of(peer_metadata()),
              versions in option::of(vec(any::<String>(), 0..3))) -> Message {
        Message::Join(Join { sender_id, peer_metadata, supported_protocol_versions: versions })
    }
}

prop_compose! {
    fn peer()(sender_id in peer_id(), target_id in peer_id(), peer_metadata in peer_metadata(),
              version: String) -> Message {
        let selected_protocol_version = version;
        Message::Peer(Peer { sender_id, target_id, peer_metadata, selected_protocol_version })
    }
}

prop_compose! {
    fn error()(sender_id in option::of(peer_id()), target_id in option::of(peer_id()),
               message: String) -> Message {
        Message::Error(ErrorMessage { sender_id, target_id, message })
    }
}

prop_compose! {
    fn doc_unavailable()(sender_id in peer_id(), target_id in peer_id(),
                         document_id in document_id()) -> Message {
        Message::DocUnavailable(DocUnavailable { sender_id, target_id, document_id })
    }
}

prop_compose! {
    fn ephemeral()(sync in sync_message(), count: u64, session_id: String) -> Message {
        let SyncMessage { sender_id, target_id, document_id, data } = sync;
        Message::Ephemeral(Ephemeral { sender_id, target_id, document_id, count, session_id, data })
    }
}

prop_compose! {
    fn remote_subscription_change()(sender_id in peer_id(), target_id in peer_id(),
                                    add in storage_ids(), remove in storage_ids()) -> Message {
        let change = RemoteSubscriptionChange { sender_id, target_id, add, remove };
        Message::RemoteSubscriptionChange(change)
    }
}

prop_compose! {
    fn remote_heads_changed()(sender_id in peer_id(), target_id in peer_id(),
                              document_id in document_id(),
                              new_heads in vec((storage_id(), heads_at()), 0..4)) -> Message {
        let changed = RemoteHeadsChanged { sender_id, target_id, document_id, new_heads };
        Message::RemoteHeadsChanged(changed)
    }
}

prop_compose! {
    fn unknown()(message_type in any::<String>().prop_filter("not a known type", |t| {
                     !KNOWN_TYPES.contains(&t.as_str())
                 }),
                 sender_id in option::of(peer_id())) -> Message {
        Message::Unknown { message_type, sender_id }
    }
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        join(),
        peer(),
        error(),
        sync_message().prop_map(Message::Sync),
        sync_message().prop_map(Message::Request),
        doc_unavailable(),
        ephemeral(),
        remote_subscription_change(),
        remote_heads_changed(),
        peer_id().prop_map(|sender_id| Message::Leave(Leave { sender_id })),
        unknown(),
    ]
}

proptest! {
    #[test]
    fn every_message_survives_a_round_trip(message in message()) {
        let encoded = message.encode();
        prop_assert!((0xa0..=0xb7).contains(&encoded[0]), "shortest map header");
        prop_assert_eq!(Message::decode(&encoded), Ok(message));
    }

    #[test]
    fn js_style_16_bit_and_indefinite_map_headers_decode_the_same(message in message()) {
        let encoded = message.encode();
        let entries = encoded[0] - 0xa0;
        let map16 = [&[0xb9, 0, entries][..], &encoded[1..]].concat();
        prop_assert_eq!(Message::decode(&map16), Ok(message.clone()));
        let indefinite = [&[0xbf][..], &encoded[1..], &[0xff]].concat();
        prop_assert_eq!(Message::decode(&indefinite), Ok(message));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..1024)) {
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn decoding_damaged_frames_never_panics(
        message in message(),
        cut in any::<prop::sample::Index>(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let encoded = message.encode();
        let truncated = &encoded[..cut.index(encoded.len())];
        prop_assert!(Message::decode(truncated).is_err(), "a cut frame is incomplete");

        let mut damaged = encoded.clone();
        for (at, value) in flips {
            damaged[at.index(encoded.len())] = value;
        }
        let _ = Message::decode(&damaged);
    }
}

// Hand-built frames for the unit tests.

fn header(major: u8, len: usize) -> Vec<u8> {
    let major = major << 5;
    match u8::try_from(len) {
        Ok(small) if small < 24 => vec![major | small],
        Ok(byte) => vec![major | 24, byte],
        Err(_) => [
            vec![major | 25],
            u16::try_from(len).expect("short").to_be_bytes().to_vec(),
        ]
        .concat(),
    }
}

fn text(value: &str) -> Vec<u8> {
    [header(3, value.len()), value.as_bytes().to_vec()].concat()
}

fn byte_string(value: &[u8]) -> Vec<u8> {
    [header(2, value.len()), value.to_vec()].concat()
}

fn float64(value: f64) -> Vec<u8> {
    [vec![0xfb], value.to_be_bytes().to_vec()].concat()
}

const UNDEFINED: u8 = 0xf7;
const NULL: u8 = 0xf6;

/// A map with the given raw values, in the given order.
fn frame(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = header(5, entries.len());
    for (key, value) in entries {
        out.extend(text(key));
        out.extend(value);
    }
    out
}

fn sync_frame(document_id: &str) -> Vec<u8> {
    frame(&[
        ("type", text("sync")),
        ("documentId", text(document_id)),
        ("senderId", text("alice")),
        ("targetId", text("server")),
        ("data", byte_string(&[0x42, 0, 0])),
    ])
}

fn decode_error(bytes: &[u8]) -> DecodeError {
    Message::decode(bytes).expect_err("the frame is invalid")
}

/// The type and sender an error carries.
fn context(error: &DecodeError) -> (Option<&str>, Option<&str>) {
    (
        error.message_type.as_deref(),
        error.sender_id.as_ref().map(PeerId::as_str),
    )
}

fn alice() -> Option<PeerId> {
    Some(PeerId::from("alice"))
}

#[test]
fn bytes_that_are_not_cbor_are_reported_as_not_cbor() {
    for bytes in [
        &[][..],
        &[0x1c],
        &[0xa1, 0x64, b't'],
        &[0xff],
        &[0x62, 0xff, 0xfe],
    ] {
        let error = decode_error(bytes);
        assert!(
            matches!(error.kind, DecodeErrorKind::NotCbor(_)),
            "{bytes:x?}: {error:?}"
        );
        assert_eq!(error.kind.reason(), "not_cbor");
    }
}

#[test]
fn cbor_that_is_not_a_map_is_reported_as_not_a_map() {
    for bytes in [&[0x82, 0x01, 0x02][..], &text("sync"), &[0xf7]] {
        assert_eq!(
            decode_error(bytes).kind,
            DecodeErrorKind::NotAMap,
            "{bytes:x?}"
        );
    }
    assert_eq!(DecodeErrorKind::NotAMap.reason(), "not_a_map");
}

#[test]
fn a_map_without_type_is_missing_type_and_keeps_the_sender() {
    for type_value in [None, Some(vec![UNDEFINED]), Some(vec![NULL])] {
        let mut entries = vec![("senderId", text("alice"))];
        entries.extend(type_value.map(|value| ("type", value)));
        let error = decode_error(&frame(&entries));
        assert_eq!(error.kind, DecodeErrorKind::MissingType);
        assert_eq!(context(&error), (None, Some("alice")));
        assert_eq!(error.kind.reason(), "missing_type");
    }
}

#[test]
fn a_sync_without_document_id_is_missing_that_field() {
    let bytes = frame(&[
        ("type", text("sync")),
        ("senderId", text("alice")),
        ("targetId", text("server")),
        ("data", byte_string(&[0x42])),
    ]);
    let error = decode_error(&bytes);
    assert_eq!(error.kind, DecodeErrorKind::MissingField("documentId"));
    assert_eq!(context(&error), (Some("sync"), Some("alice")));
    assert_eq!(error.kind.reason(), "missing_field");
    assert_eq!(error.to_string(), "message has no field documentId");
}

#[test]
fn a_field_of_the_wrong_cbor_type_is_invalid() {
    let bytes = frame(&[("type", text("leave")), ("senderId", vec![0x07])]);
    let error = decode_error(&bytes);
    assert_eq!(error.kind, DecodeErrorKind::InvalidField("senderId"));
    assert_eq!(context(&error), (Some("leave"), None));
    assert_eq!(error.kind.reason(), "invalid_field");

    let sync_with_array_data = frame(&[
        ("type", text("sync")),
        ("senderId", text("alice")),
        ("targetId", text("server")),
        ("documentId", text(DOCUMENT)),
        ("data", vec![0x82, 0x18, 0x42, 0x00]),
    ]);
    assert_eq!(
        decode_error(&sync_with_array_data).kind,
        DecodeErrorKind::InvalidField("data")
    );
}

#[test]
fn a_bad_document_id_is_reported_after_the_sender_was_read() {
    // documentId comes before senderId on the wire; the sender is still known.
    let error = decode_error(&sync_frame("33dFFtyPipCFNr9N92dE3SevX2W6"));
    assert_eq!(
        error.kind,
        DecodeErrorKind::InvalidDocumentId(IdError::BadChecksum)
    );
    assert_eq!(context(&error), (Some("sync"), Some("alice")));
    assert_eq!(error.kind.reason(), "invalid_document_id");
    assert!(
        error.to_string().starts_with("invalid documentId: "),
        "{error}"
    );

    let fifteen_bytes = decode_error(&sync_frame("TsojLw1ckmgxhb4tD9fJGPWokT")).kind;
    let wrong_length = IdError::WrongLength {
        expected: 16,
        actual: 15,
    };
    assert_eq!(
        fifteen_bytes,
        DecodeErrorKind::InvalidDocumentId(wrong_length)
    );
}

#[test]
fn the_wire_accepts_only_bs58check_document_ids() {
    let legacy = decode_error(&sync_frame("92ce6458-6db1-4813-845e-1d42a90422d7"));
    assert!(
        matches!(legacy.kind, DecodeErrorKind::InvalidDocumentId(_)),
        "{legacy:?}"
    );
    let url = decode_error(&sync_frame("automerge:33dFFtyPipCFNr9N92dE3SevX2W5"));
    assert!(
        matches!(url.kind, DecodeErrorKind::InvalidDocumentId(_)),
        "{url:?}"
    );
}

#[test]
fn bytes_after_the_map_are_trailing_bytes() {
    let bytes = [sync_frame(DOCUMENT), vec![0x00]].concat();
    let error = decode_error(&bytes);
    assert_eq!(error.kind, DecodeErrorKind::TrailingBytes);
    assert_eq!(context(&error), (Some("sync"), Some("alice")));
    assert_eq!(error.kind.reason(), "trailing_bytes");
}

#[test]
fn a_frame_cut_short_still_reports_what_was_read() {
    let bytes = sync_frame(DOCUMENT);
    let error = decode_error(&bytes[..bytes.len() - 2]);
    assert!(
        matches!(error.kind, DecodeErrorKind::NotCbor(_)),
        "{error:?}"
    );
    assert_eq!(context(&error), (Some("sync"), Some("alice")));
}

#[test]
fn an_unknown_type_is_kept_not_rejected() {
    let bytes = frame(&[
        ("type", text("future-thing")),
        ("senderId", text("alice")),
        ("payload", vec![0x83, 0x01, 0x02, 0x03]),
    ]);
    let message = Message::decode(&bytes).expect("unknown types decode");
    let expected = Message::Unknown {
        message_type: "future-thing".into(),
        sender_id: alice(),
    };
    assert_eq!(message, expected);
    assert_eq!(message.type_name(), "future-thing");
    let just_type_and_sender =
        frame(&[("type", text("future-thing")), ("senderId", text("alice"))]);
    assert_eq!(message.encode(), just_type_and_sender);
}

#[test]
fn undefined_or_null_metadata_fields_are_absent() {
    let bytes = frame(&[
        ("type", text("join")),
        ("senderId", text("alice")),
        (
            "peerMetadata",
            frame(&[("storageId", vec![UNDEFINED]), ("isEphemeral", vec![NULL])]),
        ),
        ("supportedProtocolVersions", vec![UNDEFINED]),
    ]);
    let expected = Join {
        sender_id: PeerId::from("alice"),
        peer_metadata: Some(PeerMetadata {
            storage_id: None,
            is_ephemeral: false,
        }),
        supported_protocol_versions: None,
    };
    assert_eq!(Message::decode(&bytes), Ok(Message::Join(expected)));
}

fn ephemeral_with_count(count: Vec<u8>) -> Result<Message, DecodeError> {
    Message::decode(&frame(&[
        ("type", text("ephemeral")),
        ("senderId", text("alice")),
        ("targetId", text("server")),
        ("documentId", text(DOCUMENT)),
        ("count", count),
        ("sessionId", text("s1")),
        ("data", byte_string(b"")),
    ]))
}

fn count_of(result: Result<Message, DecodeError>) -> u64 {
    match result {
        Ok(Message::Ephemeral(ephemeral)) => ephemeral.count,
        other => panic!("expected an ephemeral message, got {other:?}"),
    }
}

#[test]
fn a_count_may_be_an_integer_or_a_whole_float() {
    assert_eq!(count_of(ephemeral_with_count(vec![0x03])), 3);
    assert_eq!(
        count_of(ephemeral_with_count(float64(5_000_000_000.0))),
        5_000_000_000
    );
    assert_eq!(
        count_of(ephemeral_with_count(vec![0xfa, 0x40, 0x40, 0, 0])),
        3,
        "float32"
    );
    assert_eq!(
        count_of(ephemeral_with_count(vec![0xf9, 0x42, 0x00])),
        3,
        "float16"
    );
    for bad in [
        float64(1.5),
        float64(-1.0),
        float64(f64::NAN),
        vec![0x20],
        text("3"),
    ] {
        let error = ephemeral_with_count(bad).expect_err("not a count");
        assert_eq!(error.kind, DecodeErrorKind::InvalidField("count"));
    }
}

#[test]
fn a_timestamp_may_be_an_integer_or_a_float() {
    let heads_changed = |timestamp: Vec<u8>| {
        let heads_at = frame(&[
            ("heads", [header(4, 1), text("h")].concat()),
            ("timestamp", timestamp),
        ]);
        Message::decode(&frame(&[
            ("type", text("remote-heads-changed")),
            ("senderId", text("alice")),
            ("targetId", text("server")),
            ("documentId", text(DOCUMENT)),
            ("newHeads", frame(&[("storage-1", heads_at)])),
        ]))
    };
    for (encoded, expected) in [(vec![0x18, 100], 100.0), (float64(1.7e12), 1.7e12)] {
        let Ok(Message::RemoteHeadsChanged(changed)) = heads_changed(encoded) else {
            panic!("remote-heads-changed should decode");
        };
        assert_eq!(changed.new_heads[0].0, StorageId::from("storage-1"));
        assert_eq!(changed.new_heads[0].1.timestamp, expected);
    }
}

#[test]
fn a_repeated_key_takes_its_last_value_as_in_js() {
    let bytes = frame(&[
        ("type", text("leave")),
        ("senderId", text("mallory")),
        ("senderId", text("alice")),
    ]);
    let expected = Message::Leave(Leave {
        sender_id: PeerId::from("alice"),
    });
    assert_eq!(Message::decode(&bytes), Ok(expected));
}

fn nested_arrays(depth: usize) -> Vec<u8> {
    [vec![0x81; depth], vec![0x00]].concat()
}

#[test]
fn unknown_values_may_nest_up_to_the_limit_and_no_deeper() {
    let with_extra = |extra: Vec<u8>| {
        frame(&[
            ("type", text("leave")),
            ("senderId", text("alice")),
            ("extra", extra),
        ])
    };
    assert!(Message::decode(&with_extra(nested_arrays(64))).is_ok());
    let error = decode_error(&with_extra(nested_arrays(65)));
    assert!(
        matches!(error.kind, DecodeErrorKind::NotCbor(_)),
        "{error:?}"
    );

    // A megabyte of indefinite arrays inside a definite one is refused quickly, without growing.
    let hostile = [vec![0x82], vec![0x9f; 1 << 20]].concat();
    assert!(matches!(
        decode_error(&with_extra(hostile)).kind,
        DecodeErrorKind::NotCbor(_)
    ));
}
