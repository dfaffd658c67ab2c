//! The codec and the id parsers against real traffic: every frame captured between the JS
//! automerge-repo, its sync server and samod, and every id the fixtures list.
//!
//! The fixtures live in the shared folder next to the repository checkout
//! (`<repo>/../shared/fixtures/automerge-repo`).

use std::path::PathBuf;

use serde_json::Value;
use syncline_shared::ids::{AutomergeUrl, DocumentId, IdError};
use syncline_shared::protocol::Message;

/// Frames in `frames.jsonl`; checked so that a missing or truncated file fails loudly.
const FRAME_COUNT: usize = 532;

/// The key order our encoder promises: `type`, `senderId`, `targetId`, then each message's own
/// fields. Keys not listed (the storage ids inside `newHeads`) keep their order.
const KEY_ORDER: &[&str] = &[
    "type",
    "senderId",
    "targetId",
    "count",
    "sessionId",
    "documentId",
    "data",
    "message",
    "peerMetadata",
    "selectedProtocolVersion",
    "supportedProtocolVersions",
    "add",
    "remove",
    "newHeads",
    "storageId",
    "isEphemeral",
    "heads",
    "timestamp",
];

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/automerge-repo")
}

/// One captured frame: its JSON record, its bytes, and what we decoded from them.
struct Frame {
    record: Value,
    bytes: Vec<u8>,
    message: Message,
}

impl Frame {
    fn label(&self) -> String {
        let field = |key: &str| self.record[key].to_string();
        format!("{}/{}#{}", field("scenario"), field("server"), field("seq"))
    }

    fn decoded(&self, key: &str) -> Option<&Value> {
        self.record["decoded"]
            .get(key)
            .filter(|value| !is_undefined(value))
    }

    fn decoded_str(&self, key: &str) -> Option<&str> {
        self.decoded(key)
            .map(|value| value.as_str().expect("a text field in the capture"))
    }

    fn sent_by_samod(&self) -> bool {
        self.record["peer_software"]
            .as_str()
            .is_some_and(|name| name.starts_with("samod"))
    }
}

fn load_frames() -> Vec<Frame> {
    let path = fixtures_dir().join("frames.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(load_frame)
        .collect()
}

fn load_frame(line: &str) -> Frame {
    let record: Value = serde_json::from_str(line).expect("each line of frames.jsonl is JSON");
    let bytes = hex::decode(record["hex"].as_str().expect("hex field")).expect("valid hex");
    let message = Message::decode(&bytes).unwrap_or_else(|error| {
        panic!("{} {}: {error:?}", record["scenario"], record["seq"]);
    });
    Frame {
        record,
        bytes,
        message,
    }
}

fn is_undefined(value: &Value) -> bool {
    value.get("$undefined").is_some()
}

fn sync_data(message: &Message) -> Option<&[u8]> {
    match message {
        Message::Sync(sync) | Message::Request(sync) => Some(&sync.data),
        _ => None,
    }
}

#[test]
fn every_captured_frame_decodes() {
    assert_eq!(load_frames().len(), FRAME_COUNT);
}

#[test]
fn decoded_frames_carry_the_captured_type_and_addressing() {
    for frame in load_frames() {
        let label = frame.label();
        let message = &frame.message;
        assert_eq!(
            Some(message.type_name()),
            frame.decoded_str("type"),
            "{label}"
        );
        assert_eq!(message.type_name(), frame.record["type"], "{label}");
        assert_eq!(
            message.sender_id().map(|id| id.as_str()),
            frame.decoded_str("senderId")
        );
        assert_eq!(
            message.target_id().map(|id| id.as_str()),
            frame.decoded_str("targetId")
        );
        let document_id = message.document_id().map(|id| id.to_string());
        assert_eq!(
            document_id.as_deref(),
            frame.decoded_str("documentId"),
            "{label}"
        );
        assert!(!matches!(message, Message::Unknown { .. }), "{label}");
    }
}

#[test]
fn sync_payloads_are_the_captured_bytes_and_parse_as_automerge_sync_messages() {
    let mut payloads = 0;
    for frame in load_frames() {
        let Some(data) = sync_data(&frame.message) else {
            continue;
        };
        let expected = frame
            .decoded("data")
            .and_then(|data| data["$bytes"].as_str());
        assert_eq!(
            Some(hex::encode(data).as_str()),
            expected,
            "{}",
            frame.label()
        );
        automerge::sync::Message::decode(data)
            .unwrap_or_else(|error| panic!("{}: {error}", frame.label()));
        payloads += 1;
    }
    assert_eq!(payloads, 258, "sync and request frames in the capture");
}

#[test]
fn every_frame_survives_encode_then_decode() {
    for frame in load_frames() {
        let encoded = frame.message.encode();
        let again = Message::decode(&encoded).expect("our own encoding decodes");
        assert_eq!(again, frame.message, "{}", frame.label());
    }
}

#[test]
fn encoding_equals_an_independent_encoding_of_the_captured_json() {
    for frame in load_frames() {
        let mut expected = Vec::new();
        write_canonical(&frame.record["decoded"], &mut expected);
        assert_eq!(
            hex::encode(frame.message.encode()),
            hex::encode(expected),
            "{}",
            frame.label()
        );
    }
}

#[test]
fn encoding_uses_the_shortest_map_header() {
    for frame in load_frames() {
        let first = frame.message.encode()[0];
        assert!(
            (0xa0..=0xb7).contains(&first),
            "{}: header {first:#x}",
            frame.label()
        );
    }
}

#[test]
fn samod_frames_are_reproduced_byte_for_byte_when_the_key_order_matches_ours() {
    let mut reproduced = 0;
    for frame in load_frames().into_iter().filter(Frame::sent_by_samod) {
        let encoded = frame.message.encode();
        if top_level_keys(&encoded) == top_level_keys(&frame.bytes) {
            assert_eq!(
                hex::encode(&encoded),
                hex::encode(&frame.bytes),
                "{}",
                frame.label()
            );
            reproduced += 1;
        }
    }
    // samod's `ephemeral`, `doc-unavailable` and `error` use our order.
    assert!(reproduced >= 15, "only {reproduced} samod frames compared");
}

/// Writes the capture's JSON as CBOR the way our encoder promises to: shortest headers, keys in
/// [`KEY_ORDER`], `undefined` fields left out, `$bytes` and `$f64` markers turned back.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) if map.contains_key("$bytes") => {
            let bytes = hex::decode(map["$bytes"].as_str().expect("hex")).expect("valid hex");
            write_header(out, 2, bytes.len());
            out.extend_from_slice(&bytes);
        }
        Value::Object(map) if map.contains_key("$f64") => {
            out.push(0xfb);
            out.extend_from_slice(&map["$f64"].as_f64().expect("a number").to_be_bytes());
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().filter(|(_, v)| !is_undefined(v)).collect();
            entries.sort_by_key(|(key, _)| {
                KEY_ORDER
                    .iter()
                    .position(|k| k == key)
                    .unwrap_or(KEY_ORDER.len())
            });
            write_header(out, 5, entries.len());
            for (key, value) in entries {
                write_canonical(&Value::String(key.clone()), out);
                write_canonical(value, out);
            }
        }
        Value::Array(items) => {
            write_header(out, 4, items.len());
            items.iter().for_each(|item| write_canonical(item, out));
        }
        Value::String(text) => {
            write_header(out, 3, text.len());
            out.extend_from_slice(text.as_bytes());
        }
        Value::Bool(flag) => out.push(if *flag { 0xf5 } else { 0xf4 }),
        Value::Number(number) => {
            let number = number
                .as_u64()
                .expect("only unsigned integers are plain JSON numbers");
            write_header(out, 0, usize::try_from(number).expect("fits in usize"));
        }
        Value::Null => out.push(0xf6),
    }
}

fn write_header(out: &mut Vec<u8>, major: u8, argument: usize) {
    let major = major << 5;
    let argument = argument as u64;
    match argument {
        0..=23 => out.push(major | argument as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, argument as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(argument as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(argument as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&argument.to_be_bytes());
        }
    }
}

/// The keys of a frame's top-level map, in wire order.
fn top_level_keys(bytes: &[u8]) -> Vec<String> {
    let mut d = minicbor::Decoder::new(bytes);
    let entries = d.map().expect("a map").expect("of definite length");
    (0..entries)
        .map(|_| {
            let key = d.str().expect("a text key").to_owned();
            d.skip().expect("a value");
            key
        })
        .collect()
}

fn load_ids() -> Value {
    let path = fixtures_dir().join("documents/ids.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text).expect("ids.json is JSON")
}

fn group<'a>(ids: &'a Value, name: &str) -> &'a [Value] {
    let entries = ids[name]
        .as_array()
        .unwrap_or_else(|| panic!("ids.json has no {name}"));
    assert!(!entries.is_empty(), "ids.json group {name} is empty");
    entries
}

fn text<'a>(entry: &'a Value, key: &str) -> &'a str {
    entry[key]
        .as_str()
        .unwrap_or_else(|| panic!("{entry} has no text {key}"))
}

#[test]
fn valid_document_ids_parse_to_their_bytes_and_display_back() {
    let ids = load_ids();
    for entry in group(&ids, "valid") {
        let text_form = text(entry, "document_id");
        let id: DocumentId = text_form.parse().expect(text_form);
        assert_eq!(hex::encode(id.as_bytes()), text(entry, "binary_hex"));
        assert_eq!(id.to_string(), text_form);
        assert_eq!(format!("{id:?}"), format!("DocumentId({text_form})"));
        assert_eq!(id.url(), text(entry, "url"));
        assert_eq!(DocumentId::from_bs58check(text_form), Ok(id));
        assert_eq!(text(entry, "url").parse::<DocumentId>(), Ok(id), "URL form");
        assert_eq!(
            text(entry, "uuid").parse::<DocumentId>(),
            Ok(id),
            "legacy UUID form"
        );
        let url: AutomergeUrl = text(entry, "url").parse().expect("valid URL");
        assert_eq!(url, AutomergeUrl::from(id));
        assert_eq!(url.to_string(), text(entry, "url"));
    }
}

#[test]
fn legacy_uuid_ids_parse_to_the_id_samod_gives() {
    let ids = load_ids();
    for entry in group(&ids, "legacy") {
        let id: DocumentId = text(entry, "value")
            .parse()
            .expect("legacy form is accepted");
        assert_eq!(id.to_string(), entry["samod_id"]["parsed"]);
    }
}

#[test]
fn invalid_document_ids_are_rejected_with_the_reason() {
    let ids = load_ids();
    for entry in group(&ids, "invalid_document_ids") {
        let (value, reason) = (text(entry, "value"), text(entry, "reason"));
        let error = value.parse::<DocumentId>().expect_err(reason);
        let expected_kind = match error {
            IdError::BadChecksum => {
                reason.starts_with("bad checksum")
                    || reason.starts_with("truncated")
                    || reason.starts_with("extra character")
            }
            IdError::WrongLength {
                expected: 16,
                actual,
            } => {
                reason.contains(&format!("{actual} bytes"))
                    || (actual == 0 && reason.contains("empty payload"))
            }
            IdError::InvalidCharacter { .. } => {
                reason.starts_with("non-base58")
                    || reason.contains("space")
                    || reason.contains("hex")
            }
            IdError::Empty => value.is_empty(),
            _ => false,
        };
        assert!(expected_kind, "{value:?} ({reason}) gave {error:?}");
    }
}

#[test]
fn urls_with_heads_parse_to_their_heads_and_display_back() {
    let ids = load_ids();
    for entry in group(&ids, "valid_urls_with_heads") {
        let url_text = text(entry, "url");
        let url: AutomergeUrl = url_text.parse().expect(url_text);
        assert_eq!(url.document_id.to_string(), text(entry, "document_id"));
        let heads: Vec<String> = url.heads.iter().map(hex::encode).collect();
        assert_eq!(serde_json::json!(heads), entry["heads_hex"], "{url_text}");
        assert_eq!(url.to_string().parse::<AutomergeUrl>(), Ok(url.clone()));
        if !url.heads.is_empty() {
            assert_eq!(url.to_string(), url_text);
        }
        assert_eq!(
            url_text.parse::<DocumentId>(),
            Ok(url.document_id),
            "heads are ignored"
        );
    }
}

#[test]
fn invalid_urls_are_rejected() {
    let ids = load_ids();
    for entry in group(&ids, "invalid_urls") {
        let value = text(entry, "value");
        let result = value.parse::<AutomergeUrl>();
        assert!(
            result.is_err(),
            "{value:?} ({}) parsed as {result:?}",
            text(entry, "reason")
        );
    }
}
