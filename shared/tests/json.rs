//! Tests of the JSON form of a document: JSON survives a trip through a document unchanged,
//! paths create, replace, append and delete what they name, and each bad path is reported as
//! what it is.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Number, Value, json};
use syncline_shared::json::{
    JsonError, JsonPath, MAX_DEPTH, create_root, delete_path, insert_path, insert_value, put_value,
    set_path, to_json, to_json_at,
};

fn doc_from(value: &Value) -> AutoCommit {
    let mut doc = AutoCommit::new();
    create_root(&mut doc, value).expect("the fixture is a JSON object");
    doc
}

fn path(text: &str) -> JsonPath {
    text.parse().expect("the fixture is a valid path")
}

fn set(doc: &mut AutoCommit, text: &str, value: Value) -> Result<(), JsonError> {
    set_path(doc, &path(text), &value)
}

#[test]
fn nested_json_round_trips_through_a_document() {
    // Intent: every kind of JSON value comes back exactly as it went in.
    let original = json!({
        "title": "Chalet",
        "": "empty key",
        "clé ünïcødé 🏔": { "nested": [1, -2, 3.5, true, false, null, "x", [], {}] },
        "nights": { "2026-12-24": { "price": 120, "guests": ["Alice", "Bob"] } },
        "min": i64::MIN,
        "max": i64::MAX,
        "big": u64::MAX,
        "float": -0.125,
        "empty": {},
    });

    let doc = doc_from(&original);

    assert_eq!(to_json(&doc), original);
}

#[test]
fn the_json_text_does_not_depend_on_the_order_keys_were_written() {
    // Intent: two documents with the same content print byte-identical JSON.
    let mut first = AutoCommit::new();
    let mut second = AutoCommit::new();
    for key in ["b", "a", "é", "A", "10", "9"] {
        set(&mut first, key, json!(key)).expect("set in order");
    }
    for key in ["9", "10", "A", "é", "a", "b"] {
        set(&mut second, key, json!(key)).expect("set in reverse");
    }

    let text = |doc: &AutoCommit| serde_json::to_string(&to_json(doc)).expect("serializable");

    assert_eq!(text(&first), text(&second));
    assert_eq!(
        text(&first),
        r#"{"10":"10","9":"9","A":"A","a":"a","b":"b","é":"é"}"#
    );
}

#[test]
fn strings_are_scalars_and_numbers_keep_their_type() {
    // Intent: JSON strings become string scalars (not text), integers Int, above i64 Uint.
    let doc = doc_from(&json!({"s": "hi", "i": -7, "u": u64::MAX, "f": 1.5}));

    let scalar = |key: &str| match doc.get(ROOT, key).expect("readable") {
        Some((automerge::Value::Scalar(scalar), _)) => scalar.into_owned(),
        other => panic!("{key} should be a scalar, got {other:?}"),
    };

    assert_eq!(scalar("s"), ScalarValue::Str("hi".into()));
    assert_eq!(scalar("i"), ScalarValue::Int(-7));
    assert_eq!(scalar("u"), ScalarValue::Uint(u64::MAX));
    assert_eq!(scalar("f"), ScalarValue::F64(1.5));
}

#[test]
fn create_root_refuses_anything_but_an_object() {
    // Intent: the root of a document is a map, so arrays and scalars are refused with a reason.
    let mut doc = AutoCommit::new();

    let err = create_root(&mut doc, &json!([1, 2])).expect_err("an array is not a root");

    assert!(matches!(
        err,
        JsonError::RootNotObject { found: "an array" }
    ));
    assert_eq!(
        err.to_string(),
        "the root of a document must be a JSON object, not an array"
    );
    assert_eq!(to_json(&doc), json!({}));
}

#[test]
fn put_and_insert_write_into_existing_objects() {
    // Intent: the building blocks write at a key and at a list position.
    let mut doc = doc_from(&json!({"list": ["b"]}));
    let (_, list) = doc
        .get(ROOT, "list")
        .expect("readable")
        .expect("list exists");

    put_value(&mut doc, &ROOT, "map", &json!({"k": [1]})).expect("put on the root");
    insert_value(&mut doc, &list, 0, &json!("a")).expect("insert at the front");
    insert_value(&mut doc, &list, 2, &json!({"c": null})).expect("insert at the end");

    assert_eq!(
        to_json(&doc),
        json!({"list": ["a", "b", {"c": null}], "map": {"k": [1]}})
    );
}

#[test]
fn set_path_creates_intermediate_maps() {
    // Intent: setting a deep key on an empty document creates each missing map on the way.
    let mut doc = AutoCommit::new();

    set(&mut doc, "nights.2026-12-24.price", json!(120)).expect("set on an empty document");
    set(&mut doc, "/nights/2026-12-25/price", json!(140)).expect("set with a pointer");
    set(&mut doc, "nights.2026-12-24.price", json!(99)).expect("replace the value");

    let expected = json!({"nights": {"2026-12-24": {"price": 99}, "2026-12-25": {"price": 140}}});
    assert_eq!(to_json(&doc), expected);
}

#[test]
fn set_path_replaces_a_scalar_with_an_object_at_the_last_segment() {
    // Intent: only the last segment may replace a scalar; it takes any JSON value.
    let mut doc = doc_from(&json!({"a": "scalar"}));

    set(&mut doc, "a", json!({"b": [true]})).expect("replace the scalar");

    assert_eq!(to_json(&doc), json!({"a": {"b": [true]}}));
}

#[test]
fn set_path_on_lists_replaces_and_appends() {
    // Intent: an index replaces an element, `-` and the length append, beyond is an error.
    let mut doc = doc_from(&json!({"items": ["a", "b"]}));

    set(&mut doc, "items.0", json!("A")).expect("replace index 0");
    set(&mut doc, "items.-", json!("c")).expect("append with -");
    set(&mut doc, "/items/3", json!({"d": 4})).expect("append at the length");
    set(&mut doc, "items.3.d", json!(5)).expect("set inside an element");
    assert_eq!(to_json(&doc), json!({"items": ["A", "b", "c", {"d": 5}]}));

    let err = set(&mut doc, "items.9", json!(0)).expect_err("past the end");
    assert!(matches!(
        err,
        JsonError::IndexOutOfRange {
            index: 9,
            len: 4,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "path items.9: index 9 is out of range for items, which has 4 elements"
    );
}

#[test]
fn list_segments_must_be_indexes_of_existing_elements_mid_path() {
    // Intent: in the middle of a path a list index must name an element; words and `-` fail.
    let mut doc = doc_from(&json!({"items": [{"a": 1}]}));

    let word = set(&mut doc, "items.first.a", json!(2)).expect_err("a word on a list");
    let zero = set(&mut doc, "items.00.a", json!(2)).expect_err("a leading zero");
    let append = set(&mut doc, "items.-.a", json!(2)).expect_err("append mid-path");
    let beyond = set(&mut doc, "items.1.a", json!(2)).expect_err("index == len mid-path");

    assert!(matches!(word, JsonError::NotAnIndex { ref segment, .. } if segment == "first"));
    assert!(matches!(zero, JsonError::NotAnIndex { ref segment, .. } if segment == "00"));
    assert!(matches!(append, JsonError::AppendNotLast { .. }));
    assert!(matches!(
        beyond,
        JsonError::IndexOutOfRange {
            index: 1,
            len: 1,
            ..
        }
    ));
    assert_eq!(to_json(&doc), json!({"items": [{"a": 1}]}));
}

#[test]
fn a_scalar_in_the_way_is_an_error_naming_the_path_walked() {
    // Intent: walking through a scalar or text fails and says where, without changing anything.
    let mut doc = doc_from(&json!({"nights": {"x": "booked"}}));
    let text = doc
        .put_object(ROOT, "notes", ObjType::Text)
        .expect("create text");
    doc.splice_text(&text, 0, 0, "hello").expect("write text");

    let err = set(&mut doc, "nights.x.price", json!(1)).expect_err("a string in the way");
    assert!(matches!(
        err,
        JsonError::NotAContainer {
            kind: "a string",
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "path nights.x.price: nights.x is a string, not a map or list"
    );

    let err = set(&mut doc, "/notes/0", json!("j")).expect_err("text in the way");
    assert_eq!(
        err.to_string(),
        "path /notes/0: /notes is text, not a map or list"
    );

    assert_eq!(
        to_json(&doc),
        json!({"nights": {"x": "booked"}, "notes": "hello"})
    );
}

#[test]
fn pointer_escapes_name_keys_with_slashes_and_tildes() {
    // Intent: `~1` is `/` and `~0` is `~`; the path prints back as it was written.
    let mut doc = AutoCommit::new();
    let pointer = path("/a~1b/c~0d/~01");

    set_path(&mut doc, &pointer, &json!(1)).expect("set through escapes");

    assert_eq!(pointer.segments(), ["a/b", "c~d", "~1"]);
    assert_eq!(pointer.to_string(), "/a~1b/c~0d/~01");
    assert_eq!(to_json(&doc), json!({"a/b": {"c~d": {"~1": 1}}}));
}

#[test]
fn path_parsing_refuses_empty_paths_segments_and_bad_escapes() {
    // Intent: each malformed path is refused as what it is; `/` alone is the key "".
    let parse = |text: &str| text.parse::<JsonPath>();

    assert!(matches!(parse(""), Err(JsonError::EmptyPath)));
    assert!(matches!(parse("a..b"), Err(JsonError::EmptySegment { .. })));
    assert!(matches!(parse("a."), Err(JsonError::EmptySegment { .. })));
    assert!(matches!(parse(".a"), Err(JsonError::EmptySegment { .. })));
    assert!(matches!(
        parse("/a~2"),
        Err(JsonError::InvalidEscape { .. })
    ));
    assert!(matches!(parse("/a~"), Err(JsonError::InvalidEscape { .. })));
    assert_eq!(path("/").segments(), [""]);
    assert_eq!(path("/a//b").segments(), ["a", "", "b"]);
    assert_eq!(path("a.b-c.0").segments(), ["a", "b-c", "0"]);
}

#[test]
fn delete_path_removes_keys_and_elements() {
    // Intent: delete removes what the path names and reports a missing target as NotFound.
    let mut doc = doc_from(&json!({"a": {"b": 1, "c": 2}, "items": [1, 2, 3]}));

    delete_path(&mut doc, &path("a.b")).expect("delete a key");
    delete_path(&mut doc, &path("/items/1")).expect("delete an element");
    assert_eq!(to_json(&doc), json!({"a": {"c": 2}, "items": [1, 3]}));

    let err = delete_path(&mut doc, &path("a.b")).expect_err("already gone");
    assert_eq!(err.to_string(), "path a.b: nothing at a.b");
    let err = delete_path(&mut doc, &path("items.2")).expect_err("past the end");
    assert!(matches!(err, JsonError::NotFound { .. }));
    let err = delete_path(&mut doc, &path("x.y.z")).expect_err("missing parents");
    assert!(matches!(err, JsonError::NotFound { ref at, .. } if at == "x"));
    assert_eq!(
        to_json(&doc),
        json!({"a": {"c": 2}, "items": [1, 3]}),
        "nothing was created"
    );
}

#[test]
fn rendering_stops_at_the_depth_limit() {
    // Intent: a document nested far deeper than any JSON parser allows still renders, with
    // everything below the limit as null, instead of exhausting the stack.
    let mut doc = AutoCommit::new();
    let mut obj = ROOT;
    for _ in 0..MAX_DEPTH + 50 {
        obj = doc.put_object(&obj, "d", ObjType::Map).expect("nest");
    }
    let rendered = to_json(&doc);
    let mut level = &rendered;
    let mut depth = 0;
    while let Some(inner) = level.get("d") {
        level = inner;
        depth += 1;
    }
    assert_eq!(depth, MAX_DEPTH + 1, "maps down to the limit, then null");
    assert!(level.is_null());
}

#[test]
fn insert_path_moves_later_elements_along() {
    // Intent: insert puts a value before the element named, appends at the end, and refuses
    // targets that are not list positions, creating nothing on the way.
    let mut doc = doc_from(&json!({"items": ["a", "c"], "meta": {"k": 1}}));

    insert_path(&mut doc, &path("/items/1"), &json!("b")).expect("insert in the middle");
    insert_path(&mut doc, &path("items.0"), &json!({"first": true})).expect("insert first");
    insert_path(&mut doc, &path("items.-"), &json!("z")).expect("append");
    insert_path(&mut doc, &path("items.5"), &json!("end")).expect("insert at the length");
    assert_eq!(
        to_json(&doc)["items"],
        json!([{"first": true}, "a", "b", "c", "z", "end"])
    );

    let err = insert_path(&mut doc, &path("items.9"), &json!(1)).expect_err("past the end");
    assert!(
        matches!(
            err,
            JsonError::IndexOutOfRange {
                index: 9,
                len: 6,
                ..
            }
        ),
        "{err}"
    );
    let err = insert_path(&mut doc, &path("meta.k"), &json!(1)).expect_err("a map key");
    assert_eq!(
        err.to_string(),
        "path meta.k: meta is a map; insert needs a list position (use set for keys)"
    );
    let err = insert_path(&mut doc, &path("title"), &json!(1)).expect_err("a root key");
    assert!(matches!(err, JsonError::NotAList { ref list, .. } if list == "the root"));
    let err = insert_path(&mut doc, &path("missing.0"), &json!(1)).expect_err("no list");
    assert!(matches!(err, JsonError::NotFound { .. }));
    assert!(
        to_json(&doc).get("missing").is_none(),
        "nothing was created"
    );
}

#[test]
fn to_json_at_shows_an_old_version() {
    // Intent: rendering at earlier heads ignores every later change.
    let mut doc = doc_from(&json!({"price": 100, "items": ["a"]}));
    let old = doc.get_heads();

    set(&mut doc, "price", json!(120)).expect("change the price");
    set(&mut doc, "items.-", json!("b")).expect("append");
    set(&mut doc, "added.deep", json!(true)).expect("add a key");
    delete_path(&mut doc, &path("items.0")).expect("delete");

    assert_eq!(
        to_json_at(&doc, &old),
        json!({"price": 100, "items": ["a"]})
    );
    assert_eq!(
        to_json(&doc),
        json!({"price": 120, "items": ["b"], "added": {"deep": true}})
    );
}

#[test]
fn automerge_only_types_render_as_plain_json() {
    // Intent: text, counters, timestamps, bytes and non-finite floats have a JSON form.
    let mut doc = AutoCommit::new();
    let text = doc
        .put_object(ROOT, "text", ObjType::Text)
        .expect("create text");
    doc.splice_text(&text, 0, 0, "héllo").expect("write text");
    doc.put(ROOT, "counter", ScalarValue::counter(10))
        .expect("create counter");
    doc.increment(ROOT, "counter", -3).expect("increment");
    doc.put(ROOT, "at", ScalarValue::Timestamp(1_766_534_400_000))
        .expect("timestamp");
    doc.put(ROOT, "bytes", vec![0u8, 255]).expect("bytes");
    doc.put(ROOT, "nan", f64::NAN).expect("nan");

    let expected = json!({
        "text": "héllo",
        "counter": 7,
        "at": 1_766_534_400_000_i64,
        "bytes": [0, 255],
        "nan": null,
    });
    assert_eq!(to_json(&doc), expected);
}

#[test]
fn a_conflicted_key_renders_the_value_get_picks() {
    // Intent: concurrent writes show one deterministic winner, the same as `get`, on each side.
    let mut alice = doc_from(&json!({"price": 100}));
    let mut bob = alice.fork();
    set(&mut alice, "price", json!(110)).expect("alice sets");
    set(&mut bob, "price", json!(120)).expect("bob sets");

    alice.merge(&mut bob).expect("merge bob into alice");
    bob.merge(&mut alice).expect("merge alice into bob");

    let (winner, _) = alice
        .get(ROOT, "price")
        .expect("readable")
        .expect("present");
    let rendered = to_json(&alice)["price"].as_i64().expect("an integer");
    assert_eq!(alice.get_all(ROOT, "price").expect("readable").len(), 2);
    assert_eq!(winner, automerge::Value::int(rendered));
    assert_eq!(to_json(&bob), to_json(&alice));
}

// Arbitrary JSON: any Unicode keys and strings, integers in i64 range, finite floats, bounded
// depth and size.

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite floats only", |f| Number::from_f64(f)
            .map(Value::Number)),
        any::<String>().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(any::<String>(), inner, 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Value> {
    btree_map(any::<String>(), json_value(), 0..8)
        .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>()))
}

proptest! {
    #[test]
    fn arbitrary_json_objects_survive_a_document(original in json_object()) {
        let doc = doc_from(&original);

        prop_assert_eq!(to_json(&doc), original);
    }
}
