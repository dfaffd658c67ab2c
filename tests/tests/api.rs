//! The HTTP API against the real server binary: every route, time travel, conflicting writes,
//! changes reaching sync peers, deletion as a tombstone, access control, the event stream, the
//! OpenAPI description, and the metrics a known workload moves.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use automerge::ChangeHash;
use automerge::transaction::Transactable;
use serde_json::{Value, json};
use syncline_client::Client;
use syncline_shared::ids::DocumentId;
use syncline_shared::json::to_json;
use syncline_tests::api::{ApiClient, heads_of};
use syncline_tests::native::{fast_config, set, settle};
use syncline_tests::peer::RawPeer;
use syncline_tests::server::{ServerOptions, ServerProcess};
use syncline_tests::tokens::{AUTH_CONFIG, Grant, mint};

/// Bound on every wait for the server.
const WAIT: Duration = Duration::from_secs(10);

struct Harness {
    server: ServerProcess,
    api: ApiClient,
    dir: tempfile::TempDir,
}

impl Harness {
    async fn start(config: &str) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let options = ServerOptions {
            config: config.to_owned(),
            ..ServerOptions::default()
        };
        let server = ServerProcess::start(&dir.path().join("data"), &options).await?;
        let api = ApiClient::new(&server.http_url());
        Ok(Self { server, api, dir })
    }

    /// Stops the server and starts it again on the same data and port.
    async fn restart(self, config: &str) -> Result<Self> {
        let addr = self.server.addr;
        let status = self.server.terminate(WAIT).await?;
        ensure!(status.success(), "server exited with {status}");
        let options = ServerOptions {
            config: config.to_owned(),
            listen: Some(addr),
            ..ServerOptions::default()
        };
        let server = ServerProcess::start(&self.dir.path().join("data"), &options).await?;
        Ok(Self { server, ..self })
    }
}

fn hashes(heads: &[String]) -> Result<Vec<ChangeHash>> {
    heads
        .iter()
        .map(|h| h.parse().context("a change hash"))
        .collect()
}

fn sorted_hex(heads: &[ChangeHash]) -> Vec<String> {
    let mut hex: Vec<String> = heads.iter().map(ToString::to_string).collect();
    hex.sort();
    hex
}

/// Create, read, change with every kind of operation, list with paging, and diff.
#[tokio::test]
async fn documents_are_created_read_changed_and_listed() -> Result<()> {
    let h = Harness::start("").await?;
    let api = &h.api;

    // 1. Create: 201 with the id, its automerge: URL and the durable heads.
    let created = api
        .post(
            "/api/documents",
            &json!({"title": "Loft", "items": ["a", "c"]}),
        )
        .await?;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.body["id"].as_str().context("id")?.to_owned();
    assert_eq!(created.body["url"], json!(format!("automerge:{id}")));
    assert_eq!(heads_of(&created.body).len(), 1);

    // 2. Read it back, by id and by URL.
    let read = api.get(&format!("/api/documents/{id}")).await?;
    assert_eq!(read.status, 200);
    assert_eq!(
        read.body["state"],
        json!({"title": "Loft", "items": ["a", "c"]})
    );
    assert_eq!(read.body["heads"], created.body["heads"]);
    let by_url = api.get(&format!("/api/documents/automerge:{id}")).await?;
    assert_eq!(by_url.body["state"], read.body["state"]);

    // 3. One change with set, insert and delete, applied in order.
    let ops = json!([
        {"op": "set", "path": "/nights/2026-12-24/price", "value": 180},
        {"op": "insert", "path": "/items/1", "value": "b"},
        {"op": "set", "path": "items.-", "value": "d"},
        {"op": "delete", "path": "/title"},
    ]);
    let answer = api
        .post(
            &format!("/api/documents/{id}/changes"),
            &json!({"ops": ops, "message": "prices for December"}),
        )
        .await?;
    assert_eq!(answer.status, 200, "{answer:?}");
    let change = answer.body["change"].as_str().context("change hash")?;
    assert_eq!(heads_of(&answer.body), vec![change.to_owned()]);
    assert_eq!(
        api.state(&id).await?,
        json!({"items": ["a", "b", "c", "d"], "nights": {"2026-12-24": {"price": 180}}})
    );

    // 4. The history lists both changes with their facts; the message is kept.
    let history = api.get(&format!("/api/documents/{id}/history")).await?;
    let entries = history.body["changes"].as_array().context("changes")?;
    assert_eq!(entries.len(), 2, "{history:?}");
    assert_eq!(entries[1]["hash"], json!(change));
    assert_eq!(entries[1]["message"], json!("prices for December"));
    assert_eq!(entries[1]["kind"], json!("edit"));
    assert_eq!(entries[1]["deps"], created.body["heads"]);
    assert_eq!(entries[1]["author_seq"], json!(2));
    assert_eq!(entries[1]["author"], entries[0]["author"]);
    for (seq, entry) in entries.iter().enumerate() {
        assert_eq!(entry["seq"], json!(seq));
        assert!(entry["size"].as_u64().is_some_and(|s| s > 0), "{entry}");
        assert!(entry["received_at_ms"].as_u64().is_some_and(|t| t > 0));
        assert!(
            entry["timestamp"]
                .as_i64()
                .is_some_and(|t| t > 1_700_000_000)
        );
    }

    // 5. The diff between the two versions names exactly what the change did.
    let first = created.body["heads"][0].as_str().context("head")?;
    let diff = api
        .get(&format!(
            "/api/documents/{id}/diff?from={first}&to={change}"
        ))
        .await?;
    assert_eq!(diff.status, 200, "{diff:?}");
    let patches: BTreeSet<String> = diff.body["patches"]
        .as_array()
        .context("patches")?
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["action"].as_str().unwrap_or(""),
                p["path"].as_str().unwrap_or("")
            )
        })
        .collect();
    for expected in [
        "delete /title",
        "insert /items/1",
        "insert /items/3",
        "put /nights",
    ] {
        assert!(
            patches.contains(expected),
            "{expected} missing from {patches:?}"
        );
    }
    let whole = api.get(&format!("/api/documents/{id}/diff")).await?;
    assert!(whole.body["from"].as_array().is_some_and(Vec::is_empty));
    assert_eq!(whole.body["to"], answer.body["heads"]);

    // 6. Listing pages through every document in id order.
    let mut ids = BTreeSet::from([id.clone()]);
    for n in 0..4 {
        ids.insert(api.create(&json!({ "n": n })).await?.0);
    }
    let mut listed = Vec::new();
    let mut after = String::new();
    for _ in 0..10 {
        let page = api.get(&format!("/api/documents?limit=2{after}")).await?;
        assert_eq!(page.status, 200, "{page:?}");
        let docs = page.body["documents"].as_array().context("documents")?;
        assert!(docs.len() <= 2);
        listed.extend(
            docs.iter()
                .map(|d| d["id"].as_str().unwrap_or("").to_owned()),
        );
        match page.body["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    let mut in_order = listed.clone();
    in_order.sort_by_key(|id| DocumentId::from_bs58check(id).map(|d| *d.as_bytes()).ok());
    assert_eq!(listed, in_order, "listed in id order");
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), ids);
    let page = api.get("/api/documents").await?;
    let entry = page.body["documents"]
        .as_array()
        .and_then(|docs| docs.iter().find(|d| d["id"] == json!(id)))
        .context("the first document is listed")?;
    assert_eq!(entry["changes"], json!(2));
    assert!(entry["bytes"].as_u64().is_some_and(|b| b > 0));
    Ok(())
}

/// Every version written is read back exactly by its heads, also after compaction and a
/// restart, and the history's entries name those versions.
#[tokio::test]
async fn time_travel_reads_every_version_by_its_heads() -> Result<()> {
    let config = "[sync]\ncompact_after_changes = 3\n";
    let h = Harness::start(config).await?;

    // 1. Six versions, each remembered as (heads, state) at the moment it was written.
    let (id, heads) = h.api.create(&json!({"price": 100, "guests": []})).await?;
    let mut versions = vec![(heads, h.api.state(&id).await?)];
    let steps = [
        json!([{"op": "set", "path": "/price", "value": 110}]),
        json!([{"op": "insert", "path": "/guests/0", "value": "Ana"}]),
        json!([{"op": "set", "path": "/nights/2026-12-24", "value": {"blocked": true}}]),
        json!([
            {"op": "insert", "path": "/guests/0", "value": "Bo"},
            {"op": "delete", "path": "/price"},
        ]),
        json!([{"op": "set", "path": "/nights/2026-12-24/blocked", "value": false}]),
    ];
    for ops in steps {
        let heads = h.api.change(&id, ops).await?;
        versions.push((heads, h.api.state(&id).await?));
    }

    // 2. Read each version by its heads, before and after a restart (the log was compacted).
    let h = {
        check_versions(&h.api, &id, &versions).await?;
        h.restart(config).await?
    };
    check_versions(&h.api, &id, &versions).await?;

    // 3. The history has one entry per version, in order, each the head of its version.
    let history = h.api.get(&format!("/api/documents/{id}/history")).await?;
    let entries = history.body["changes"].as_array().context("changes")?;
    assert_eq!(entries.len(), versions.len());
    for (entry, (heads, _)) in entries.iter().zip(&versions) {
        assert_eq!(
            vec![entry["hash"].as_str().unwrap_or("").to_owned()],
            *heads
        );
    }

    // 4. Paging the history: two at a time, `next` continues where the page ended.
    let page = h
        .api
        .get(&format!("/api/documents/{id}/history?limit=2&after=1"))
        .await?;
    let seqs: Vec<u64> = page.body["changes"]
        .as_array()
        .context("changes")?
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(seqs, [2, 3]);
    assert_eq!(page.body["next"], json!(3));

    // 5. Heads the document does not have are refused, not read as an empty version.
    let unknown = "ab".repeat(32);
    let answer = h
        .api
        .get(&format!("/api/documents/{id}?heads={unknown}"))
        .await?;
    assert_eq!((answer.status, answer.code()), (400, "unknown_heads"));
    let answer = h.api.get(&format!("/api/documents/{id}?heads=xyz")).await?;
    assert_eq!((answer.status, answer.code()), (400, "unknown_heads"));
    Ok(())
}

async fn check_versions(
    api: &ApiClient,
    id: &str,
    versions: &[(Vec<String>, Value)],
) -> Result<()> {
    for (n, (heads, state)) in versions.iter().enumerate() {
        let read = api
            .get(&format!("/api/documents/{id}?heads={}", heads.join(",")))
            .await?;
        assert_eq!(read.status, 200, "version {n}: {read:?}");
        assert_eq!(read.body["state"], *state, "version {n}");
        assert_eq!(heads_of(&read.body), *heads, "version {n}");
    }
    Ok(())
}

/// Bad input of every kind is answered with JSON naming a stable code.
#[tokio::test]
async fn bad_requests_get_json_errors_with_stable_codes() -> Result<()> {
    let h = Harness::start("[sync]\nmax_message_bytes = 4096\n").await?;
    let api = &h.api;
    let (id, _) = api.create(&json!({"items": [1]})).await?;
    let missing = DocumentId::random_from(rand::random()).to_string();
    let changes = format!("/api/documents/{id}/changes");
    let mut deep = json!(1);
    for _ in 0..70 {
        deep = json!({ "d": deep });
    }
    let large = json!({ "text": "x".repeat(5000) });

    let cases = [
        (
            api.post_raw("/api/documents", b"{not json").await?,
            400,
            "invalid_json",
        ),
        (
            api.post("/api/documents", &json!([1, 2])).await?,
            422,
            "invalid_change",
        ),
        (
            api.post("/api/documents", &json!({})).await?,
            422,
            "invalid_change",
        ),
        (
            api.post("/api/documents", &deep).await?,
            422,
            "invalid_change",
        ),
        (
            api.post("/api/documents", &large).await?,
            413,
            "body_too_large",
        ),
        (
            api.post(
                &changes,
                &json!({"ops": [{"op": "set", "path": "/d", "value": deep}]}),
            )
            .await?,
            422,
            "invalid_change",
        ),
        (
            api.get("/api/documents/not-an-id").await?,
            400,
            "invalid_document_id",
        ),
        (
            api.get(&format!("/api/documents/{missing}")).await?,
            404,
            "document_not_found",
        ),
        (
            api.get(&format!("/api/documents/{missing}/history"))
                .await?,
            404,
            "document_not_found",
        ),
        (
            api.delete(&format!("/api/documents/{missing}")).await?,
            404,
            "document_not_found",
        ),
        (
            api.get("/api/documents?limit=0").await?,
            400,
            "invalid_query",
        ),
        (
            api.get("/api/documents?limit=many").await?,
            400,
            "invalid_query",
        ),
        (
            api.get(&format!("/api/documents/{id}/history?after=x"))
                .await?,
            400,
            "invalid_query",
        ),
        (api.post_raw(&changes, b"[").await?, 400, "invalid_json"),
        (
            api.post(&changes, &json!({"ops": []})).await?,
            400,
            "invalid_json",
        ),
        (
            api.post(&changes, &json!({"ops": [{"op": "move", "path": "/a"}]}))
                .await?,
            400,
            "invalid_json",
        ),
        (
            api.post(&changes, &json!({"ops": [{"op": "set", "path": "/a"}]}))
                .await?,
            400,
            "invalid_json",
        ),
        (
            api.post(&changes, &json!({"ops": [], "extra": 1})).await?,
            400,
            "invalid_json",
        ),
        (
            api.post(
                &changes,
                &json!({"ops": [{"op": "delete", "path": "/nope"}]}),
            )
            .await?,
            422,
            "invalid_change",
        ),
        (
            api.post(
                &changes,
                &json!({"ops": [{"op": "insert", "path": "/items/5", "value": 1}]}),
            )
            .await?,
            422,
            "invalid_change",
        ),
        (
            api.post(
                &changes,
                &json!({"ops": [{"op": "set", "path": "", "value": 1}]}),
            )
            .await?,
            422,
            "invalid_change",
        ),
    ];
    for (n, (answer, status, code)) in cases.iter().enumerate() {
        assert_eq!(
            (answer.status, answer.code()),
            (*status, *code),
            "case {n}: {answer:?}"
        );
        let message = answer.body["error"]["message"].as_str().unwrap_or("");
        assert!(!message.is_empty(), "case {n} has a message: {answer:?}");
    }

    // A failed change applies nothing, not even its operations before the failing one.
    let partial = json!({"ops": [
        {"op": "set", "path": "/applied", "value": true},
        {"op": "delete", "path": "/nope"},
    ]});
    assert_eq!(api.post(&changes, &partial).await?.status, 422);
    assert_eq!(api.state(&id).await?, json!({"items": [1]}));

    // A peer may nest a document as deeply as it likes: it still renders, cut at the limit.
    let mut peer = RawPeer::connect(&h.server.ws_url(), "nester").await?;
    let (nested, _) = peer
        .create_acknowledged(
            |d| {
                let mut obj = automerge::ROOT;
                for _ in 0..300 {
                    obj = d
                        .put_object(&obj, "d", automerge::ObjType::Map)
                        .expect("nest");
                }
            },
            WAIT,
        )
        .await?;
    let state = api.state(&nested.to_string()).await?;
    let mut level = &state;
    let mut depth = 0;
    while let Some(inner) = level.get("d") {
        level = inner;
        depth += 1;
    }
    assert_eq!(depth, syncline_shared::json::MAX_DEPTH + 1);
    assert!(level.is_null());
    peer.close().await?;
    Ok(())
}

/// A write against stale heads is refused with the current heads; writes made concurrently by
/// a peer and over HTTP are both kept, and every replica ends with the same state.
#[tokio::test]
async fn conflicting_writes_are_refused_or_merged() -> Result<()> {
    let h = Harness::start("").await?;
    let mut peer = RawPeer::connect(&h.server.ws_url(), "editor").await?;
    let (doc, _) = peer
        .create_acknowledged(
            |d| {
                d.put(automerge::ROOT, "price", 100_i64).expect("put");
            },
            WAIT,
        )
        .await?;
    let id = doc.to_string();
    let changes = format!("/api/documents/{id}/changes");

    // 1. Optimistic concurrency: the expected heads are current, so the change applies.
    let current = heads_of(&h.api.get(&format!("/api/documents/{id}")).await?.body);
    let guarded = |price: i64, expected: &[String]| {
        json!({
            "ops": [{"op": "set", "path": "/price", "value": price}],
            "expected_heads": expected,
        })
    };
    let answer = h.api.post(&changes, &guarded(120, &current)).await?;
    assert_eq!(answer.status, 200, "{answer:?}");
    let after_first = heads_of(&answer.body);

    // 2. The same expected heads again are stale now: 409 with the current heads, no change.
    let stale = h.api.post(&changes, &guarded(130, &current)).await?;
    assert_eq!((stale.status, stale.code()), (409, "conflict"), "{stale:?}");
    assert_eq!(stale.body["error"]["heads"], json!(after_first));
    assert_eq!(h.api.state(&id).await?["price"], json!(120));

    // 3. A peer that has not seen the HTTP change writes the same key: both changes are kept
    //    (the peer's does not depend on the HTTP one) and the peer converges with the server.
    let ours = peer
        .change(doc, |d| {
            d.put(automerge::ROOT, "price", 150_i64).expect("put");
        })
        .await?;
    let http_change: ChangeHash = after_first[0].parse()?;
    peer.wait_heads(doc, &[http_change], WAIT).await?;
    peer.sync_until_quiet(WAIT).await?;
    let server = h.api.get(&format!("/api/documents/{id}")).await?;
    assert_eq!(heads_of(&server.body), sorted_hex(&peer.heads(doc)));
    assert_eq!(server.body["state"], to_json(peer.document(doc)));
    let history = h.api.get(&format!("/api/documents/{id}/history")).await?;
    let entries = history.body["changes"].as_array().context("changes")?;
    let peers_entry = entries
        .iter()
        .find(|e| e["hash"] == json!(ours.to_string()))
        .context("the peer's change is in the history")?;
    assert!(
        !peers_entry["deps"]
            .as_array()
            .is_some_and(|deps| deps.contains(&json!(after_first[0]))),
        "the peer's change was made without the HTTP one: {peers_entry}"
    );
    peer.close().await?;
    Ok(())
}

/// A change made over HTTP reaches a connected raw peer and a native client, as the server's
/// own change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_over_http_reaches_connected_peers() -> Result<()> {
    let h = Harness::start("").await?;
    let (id, _) = h.api.create(&json!({"stock": 5})).await?;
    let doc = DocumentId::from_bs58check(&id)?;

    // 1. A native client and a raw peer have the document open.
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path().join("native"), fast_config()).await?;
    client.connect(&h.server.ws_url())?;
    let native = client.find(doc, WAIT).await?;
    let mut peer = RawPeer::connect(&h.server.ws_url(), "raw").await?;
    peer.open(doc).await?;
    peer.sync_until_quiet(WAIT).await?;
    assert_eq!(to_json(peer.document(doc)), json!({"stock": 5}));

    // 2. A change over HTTP; both see it without asking.
    let heads = h
        .api
        .change(&id, json!([{"op": "set", "path": "/stock", "value": 4}]))
        .await?;
    peer.wait_heads(doc, &hashes(&heads)?, WAIT).await?;
    assert_eq!(to_json(peer.document(doc)), json!({"stock": 4}));
    settle(&[&native], WAIT, || native.to_json() == json!({"stock": 4})).await?;

    // 3. And the other way: the native client's change is what HTTP reads next.
    native.change(set("/stock", json!(3))).await?;
    native.wait_acknowledged(WAIT).await?;
    assert_eq!(h.api.state(&id).await?, json!({"stock": 3}));
    client.close().await;
    peer.close().await?;
    Ok(())
}

/// Deleting makes the document unavailable to its peers at once and for ever: a peer holding a
/// copy cannot re-create it, not even after a restart, and its data is purged later.
#[tokio::test]
async fn deleting_leaves_a_tombstone_that_refuses_the_id() -> Result<()> {
    let config = "[documents]\npurge_deleted_after_ms = 200\n";
    let h = Harness::start(config).await?;
    let mut peer = RawPeer::connect(&h.server.ws_url(), "holder").await?;
    let (doc, _) = peer
        .create_acknowledged(
            |d| {
                d.put(automerge::ROOT, "secret", "x").expect("put");
            },
            WAIT,
        )
        .await?;
    let id = doc.to_string();

    // 1. Delete: the connected peer is told the document is unavailable.
    let deleted = h.api.delete(&format!("/api/documents/{id}")).await?;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(deleted.body["deleted"], json!(true));
    peer.wait_unavailable(doc, WAIT).await?;

    // 2. Every route answers 410, and the document is no longer listed.
    for path in ["", "/history", "/diff", "/events"] {
        let answer = h.api.get(&format!("/api/documents/{id}{path}")).await?;
        assert_eq!(
            (answer.status, answer.code()),
            (410, "document_deleted"),
            "{path}"
        );
    }
    let again = h.api.delete(&format!("/api/documents/{id}")).await?;
    assert_eq!(again.status, 410);
    let list = h.api.get("/api/documents").await?;
    assert!(!list.body.to_string().contains(&id), "{list:?}");

    // 3. The data is purged once the retention period is over.
    let deadline = tokio::time::Instant::now() + WAIT;
    while h
        .server
        .metric("syncline_documents_purged_total")
        .await
        .unwrap_or(0.0)
        < 1.0
    {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "not purged within {WAIT:?}"
        );
        h.server
            .log
            .wait_for(WAIT, |line| line.contains("deleted document purged"))
            .await?;
    }

    // 4. After a restart a peer that still holds a copy cannot upload it again.
    peer.close().await?;
    let h = h.restart(config).await?;
    let mut holder = RawPeer::connect(&h.server.ws_url(), "holder-again").await?;
    holder
        .adopt(doc, |d| {
            d.put(automerge::ROOT, "secret", "x").expect("put");
        })
        .await?;
    holder.wait_unavailable(doc, WAIT).await?;
    let read = h.api.get(&format!("/api/documents/{id}")).await?;
    assert_eq!(read.status, 410);
    holder.close().await?;
    Ok(())
}

/// The API applies the same grants as sync: no token 401, no grant 404 (as if missing),
/// read-only 403 for writes, and documents created with an `own` grant belong to their creator.
#[tokio::test]
async fn the_api_applies_the_sync_grants() -> Result<()> {
    let h = Harness::start(AUTH_CONFIG).await?;
    let config = h.server.config_path();
    let alice = h
        .api
        .with_token(&mint(&config, "alice", &Grant::write(&["own"]))?);
    let bob = h
        .api
        .with_token(&mint(&config, "bob", &Grant::write(&["own"]))?);

    // 1. Without a token every API route is refused with a challenge.
    for answer in [
        h.api.get("/api/documents").await?,
        h.api.post("/api/documents", &json!({"a": 1})).await?,
    ] {
        assert_eq!(
            (answer.status, answer.code()),
            (401, "unauthorized"),
            "{answer:?}"
        );
    }

    // 2. Alice creates a document; it is hers: she reads and changes it, Bob sees nothing.
    let (id, _) = alice.create(&json!({"owner": "alice"})).await?;
    alice
        .change(&id, json!([{"op": "set", "path": "/n", "value": 1}]))
        .await?;
    let doc_path = format!("/api/documents/{id}");
    for path in [doc_path.clone(), format!("{doc_path}/history")] {
        let answer = bob.get(&path).await?;
        assert_eq!(
            (answer.status, answer.code()),
            (404, "document_not_found"),
            "{path}"
        );
    }
    let bobs = bob.get("/api/documents").await?;
    assert_eq!(bobs.body["documents"], json!([]));
    let alices = alice.get("/api/documents").await?;
    assert_eq!(alices.body["documents"][0]["id"], json!(id));
    let missing = format!("/api/documents/{}", DocumentId::random_from(rand::random()));
    assert_eq!(
        bob.get(&missing).await?.status,
        404,
        "same answer as a missing id"
    );

    // 3. A reader of the document may read but not change or delete it.
    let reader = h
        .api
        .with_token(&mint(&config, "carol", &Grant::read(&[&id]))?);
    assert_eq!(reader.state(&id).await?["owner"], json!("alice"));
    let change = json!({"ops": [{"op": "set", "path": "/n", "value": 2}]});
    let refused = reader.post(&format!("{doc_path}/changes"), &change).await?;
    assert_eq!((refused.status, refused.code()), (403, "forbidden"));
    assert_eq!(reader.delete(&doc_path).await?.status, 403);
    let create = reader.post("/api/documents", &json!({"a": 1})).await?;
    assert_eq!((create.status, create.code()), (403, "forbidden"));
    assert_eq!(
        alice.state(&id).await?["n"],
        json!(1),
        "nothing was applied"
    );

    // 4. The event stream takes the token in the query, as a browser's EventSource must.
    let token = mint(&config, "carol", &Grant::read(&[&id]))?;
    let stream = h
        .api
        .get(&format!("{doc_path}/events?token={token}"))
        .await?;
    assert_eq!(stream.status, 200);
    assert_eq!(h.api.get(&format!("{doc_path}/events")).await?.status, 401);
    Ok(())
}

/// The event stream announces the heads at once and after every change, then the deletion.
#[tokio::test]
async fn the_event_stream_announces_each_durable_version() -> Result<()> {
    let h = Harness::start("").await?;
    let (id, first) = h.api.create(&json!({"v": 0})).await?;
    let url = format!("{}/api/documents/{id}/events", h.server.http_url());
    let mut response = reqwest::Client::new().get(&url).send().await?;
    assert_eq!(response.status().as_u16(), 200);
    let mut events = EventReader::default();

    assert_eq!(events.next(&mut response).await?, ("heads".into(), first));
    for v in 1..=3 {
        let heads = h
            .api
            .change(&id, json!([{"op": "set", "path": "/v", "value": v}]))
            .await?;
        // A burst may be announced once, with the newest heads: read until these appear.
        loop {
            let (event, announced) = events.next(&mut response).await?;
            assert_eq!(event, "heads");
            if announced == heads {
                break;
            }
        }
    }
    h.api.delete(&format!("/api/documents/{id}")).await?;
    let (event, heads) = events.next(&mut response).await?;
    assert_eq!((event.as_str(), heads.len()), ("deleted", 0));
    Ok(())
}

/// Reads `event:`/`data:` blocks from a server-sent event stream.
#[derive(Default)]
struct EventReader {
    buffer: String,
}

impl EventReader {
    async fn next(&mut self, response: &mut reqwest::Response) -> Result<(String, Vec<String>)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = name.trim().to_owned();
                    } else if let Some(text) = line.strip_prefix("data:") {
                        data.push_str(text.trim());
                    }
                }
                if event.is_empty() {
                    continue; // a keep-alive comment
                }
                let data: Value = serde_json::from_str(&data)?;
                return Ok((event, heads_of(&data)));
            }
            let chunk = tokio::time::timeout(WAIT, response.chunk())
                .await
                .context("no event within the wait")??;
            let Some(chunk) = chunk else {
                bail!("the event stream ended");
            };
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// The OpenAPI description matches the server: every route the source defines is described,
/// and every described operation is served, answering one of its documented statuses.
#[tokio::test]
async fn the_openapi_description_matches_the_routes() -> Result<()> {
    let h = Harness::start("").await?;
    let spec = h.api.get("/openapi.json").await?;
    assert_eq!(spec.status, 200);
    let paths = spec.body["paths"].as_object().context("paths")?;

    // 1. Every `.route("...")` in the server's source is a described path.
    let described: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let routed = routes_in_source(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../server/src"
    )))?;
    ensure!(routed.len() >= 15, "found only {routed:?}");
    for route in &routed {
        assert!(
            described.contains(route.as_str()),
            "{route} is not in openapi.json"
        );
    }
    for path in &described {
        assert!(routed.contains(*path), "{path} is described but not routed");
    }

    // 2. Every described operation answers one of its documented statuses.
    let (id, _) = h.api.create(&json!({"a": 1})).await?;
    let (doomed, _) = h.api.create(&json!({"b": 1})).await?;
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().context("operations")? {
            let target = path
                .replace("{id}", if method == "delete" { &doomed } else { &id })
                .replace("{name}", "no-such-bridge")
                .replace("{document}", &id)
                .replace("{file}", &format!("{id}.ics"));
            let body = match operation["operationId"].as_str() {
                Some("createDocument") => Some(json!({"c": 1})),
                Some("changeDocument") => {
                    Some(json!({"ops": [{"op": "set", "path": "/a", "value": 2}]}))
                }
                _ => None,
            };
            let method: reqwest::Method = method.to_uppercase().parse()?;
            let answer = h
                .api
                .send(
                    method.clone(),
                    &target,
                    body.map(|b| b.to_string().into_bytes()),
                )
                .await?;
            let documented = operation["responses"].as_object().context("responses")?;
            assert!(
                documented.contains_key(&answer.status.to_string()),
                "{method} {target} answered {} ({}), documented: {:?}",
                answer.status,
                answer.body,
                documented.keys().collect::<Vec<_>>()
            );
            if answer.status >= 400 && answer.body.is_object() {
                assert!(
                    !answer.code().is_empty(),
                    "{method} {target}: {}",
                    answer.body
                );
            }
        }
    }
    Ok(())
}

/// The paths given to `.route(` anywhere under `dir`.
fn routes_in_source(dir: &std::path::Path) -> Result<BTreeSet<String>> {
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            routes.extend(routes_in_source(&path)?);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        for (_, rest) in text
            .match_indices(".route(")
            .map(|(i, _)| ((), &text[i + 7..]))
        {
            let rest = rest.trim_start();
            if let Some(quoted) = rest.strip_prefix('"') {
                let end = quoted.find('"').context("closing quote")?;
                routes.insert(quoted[..end].to_owned());
            }
        }
    }
    Ok(routes)
}

/// A known workload moves the counters by the expected amounts.
#[tokio::test]
async fn metrics_move_by_the_expected_amounts() -> Result<()> {
    let h = Harness::start("").await?;
    let metric = |name: &'static str| {
        let server = &h.server;
        async move { server.metric(name).await.unwrap_or(0.0) }
    };
    let committed = metric("syncline_changes_committed_total").await;
    let received = metric("syncline_messages_received_total").await;
    let bytes_in = metric("syncline_bytes_received_total").await;
    let bytes_out = metric("syncline_bytes_sent_total").await;

    // 1. Over HTTP: one document and three changes.
    let (id, _) = h.api.create(&json!({"n": 0})).await?;
    for n in 1..=3 {
        h.api
            .change(&id, json!([{"op": "set", "path": "/n", "value": n}]))
            .await?;
    }
    assert_eq!(
        metric("syncline_changes_committed_total").await - committed,
        4.0
    );
    let changes_ok = h
        .server
        .metric_with(
            "syncline_http_requests_total",
            "method=\"POST\",route=\"/api/documents/{id}/changes\",status=\"200\"",
        )
        .await?;
    assert_eq!(changes_ok, 3.0);

    // 2. A raw peer opens it and makes two changes: two more committed, one peer attached.
    let doc = DocumentId::from_bs58check(&id)?;
    let mut peer = RawPeer::connect(&h.server.ws_url(), "counter").await?;
    peer.open(doc).await?;
    peer.sync_until_quiet(WAIT).await?;
    for n in 10..12_i64 {
        let hash = peer
            .change(doc, |d| {
                d.put(automerge::ROOT, "n", n).expect("put");
            })
            .await?;
        peer.wait_acknowledged(doc, &[hash], WAIT).await?;
    }
    assert_eq!(
        metric("syncline_changes_committed_total").await - committed,
        6.0
    );
    assert_eq!(metric("syncline_peers").await, 1.0);
    assert_eq!(metric("syncline_connections").await, 1.0);
    // join, request, and at least one sync message per change.
    assert!(metric("syncline_messages_received_total").await - received >= 4.0);
    assert!(metric("syncline_bytes_received_total").await > bytes_in);
    assert!(metric("syncline_bytes_sent_total").await > bytes_out);
    let applied = metric("syncline_sync_message_duration_seconds_count").await;
    assert!(applied >= 2.0, "sync messages timed: {applied}");

    // 3. Deleting counts once, and the peer is no longer attached.
    h.api.delete(&format!("/api/documents/{id}")).await?;
    peer.wait_unavailable(doc, WAIT).await?;
    assert_eq!(metric("syncline_documents_deleted_total").await, 1.0);
    assert_eq!(metric("syncline_peers").await, 0.0);
    peer.close().await?;
    Ok(())
}

/// A booking created over HTTP is decided by the server like one from a peer, and the history
/// shows the decision as the server's own change.
#[tokio::test]
async fn a_booking_made_over_http_is_decided_and_shows_in_the_history() -> Result<()> {
    let h = Harness::start("").await?;
    let booking = |guest: &str| {
        json!({"guest": guest, "check_in": "2026-12-24", "check_out": "2026-12-27",
               "channel": "direct", "status": "pending"})
    };
    let (id, _) = h
        .api
        .create(&json!({"type": "calendar", "name": "Loft", "bookings": {"b1": booking("Ana")}}))
        .await?;
    h.api
        .change(
            &id,
            json!([{"op": "set", "path": "/bookings/b2", "value": booking("Bo")}]),
        )
        .await?;

    // 1. The first booking is confirmed, the overlapping second rejected, both by the server.
    let state = h.api.state(&id).await?;
    assert_eq!(
        state["bookings"]["b1"]["status"],
        json!("confirmed"),
        "{state}"
    );
    assert_eq!(
        state["bookings"]["b2"]["status"],
        json!("rejected"),
        "{state}"
    );

    // 2. The history: each edit is followed by the server's decision, with its record.
    let history = h.api.get(&format!("/api/documents/{id}/history")).await?;
    let entries = history.body["changes"].as_array().context("changes")?;
    let kinds: Vec<&str> = entries.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["edit", "booking_decision", "edit", "booking_decision"]
    );
    let decision = &entries[3]["resolution"]["bookings"][0];
    assert_eq!(decision["booking"], json!("b2"));
    assert_eq!(decision["status"], json!("rejected"));
    Ok(())
}
