//! Access control against the real server binary with an `[auth]` section: who may connect,
//! what a reader, a stranger and a creator can do, token expiry, and the HTTP routes.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use automerge::ReadDoc;
use automerge::sync::SyncDoc;
use automerge::transaction::Transactable;
use jsonwebtoken::Algorithm;
use serde_json::json;
use syncline_client::{Client, ClientConfig};
use syncline_shared::ids::DocumentId;
use syncline_shared::json::create_root;
use syncline_shared::protocol::{Ephemeral, Message, SyncMessage};
use syncline_tests::native::{fast_config, set, settle};
use syncline_tests::peer::RawPeer;
use syncline_tests::server::{ServerOptions, ServerProcess};
use syncline_tests::tokens::{
    AUTH_CONFIG, ED25519_PRIVATE_PEM, Grant, SECRET, mint, now, sign, with_token,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Bound on every wait for the server.
const WAIT: Duration = Duration::from_secs(10);

struct Harness {
    server: ServerProcess,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let options = ServerOptions {
            config: AUTH_CONFIG.to_owned(),
            ..ServerOptions::default()
        };
        let server = ServerProcess::start(&dir.path().join("data"), &options).await?;
        Ok(Self { server, _dir: dir })
    }

    fn token(&self, subject: &str, grant: &Grant) -> Result<String> {
        mint(&self.server.config_path(), subject, grant)
    }

    /// A raw peer connected with `token` in the URL.
    async fn peer(&self, name: &str, token: &str) -> Result<RawPeer> {
        RawPeer::connect(&with_token(&self.server.ws_url(), token), name).await
    }

    /// The status the server answers a WebSocket upgrade with: `query` is appended to `/`, and
    /// `bearer` goes in an `Authorization` header.
    async fn upgrade_status(&self, query: &str, bearer: Option<&str>) -> Result<u16> {
        let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let request = format!(
            "GET /{query} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n",
            self.server.addr
        );
        http_status(self.server.addr, &request).await
    }

    async fn denied(&self, reason: &str) -> Result<f64> {
        self.server
            .metric_with(
                "syncline_access_denied_total",
                &format!("reason=\"{reason}\""),
            )
            .await
    }

    /// Polls the metrics, at most [`WAIT`], until `denied(reason)` reaches `at_least`.
    async fn wait_denied(&self, reason: &str, at_least: f64) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            let count = self.denied(reason).await?;
            if count >= at_least {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "access_denied{{{reason}}} stayed at {count}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Sends a raw HTTP request and returns the response's status code.
async fn http_status(addr: std::net::SocketAddr, request: &str) -> Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(WAIT, stream.read(&mut byte)).await??;
        if read == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    head.split_whitespace()
        .nth(1)
        .with_context(|| format!("no status in {head:?}"))?
        .parse()
        .context("status code")
}

/// An HTTP request with an optional bearer token: status and body.
async fn http(method: &str, url: &str, token: Option<&str>) -> Result<(u16, String)> {
    let client = reqwest::Client::new();
    let mut request = client.request(method.parse()?, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.timeout(WAIT).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

fn random_document() -> DocumentId {
    DocumentId::random_from(rand::random())
}

/// Upgrades need a valid token that grants something; the operational endpoints need none.
#[tokio::test]
async fn upgrades_without_a_valid_token_are_refused() -> Result<()> {
    let h = Harness::start().await?;
    let valid = h.token("alice", &Grant::write(&["*"]))?;
    let expired = sign(
        &json!({ "sub": "alice", "exp": now() - 10, "docs": { "*": "write" } }),
        Algorithm::HS256,
        SECRET.as_bytes(),
    )?;
    let wrong_secret = sign(
        &json!({ "sub": "alice", "exp": now() + 60, "docs": { "*": "write" } }),
        Algorithm::HS256,
        b"another-secret-of-enough-length-000000",
    )?;
    let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.\
                    eyJzdWIiOiJhIiwiZXhwIjo5OTk5OTk5OTk5LCJkb2NzIjp7IioiOiJ3cml0ZSJ9fQ.";
    let bad_grant = sign(
        &json!({ "sub": "alice", "exp": now() + 60, "docs": { "nonsense": "write" } }),
        Algorithm::HS256,
        SECRET.as_bytes(),
    )?;
    let no_grants = h.token(
        "alice",
        &Grant {
            ttl_seconds: 60,
            ..Grant::default()
        },
    )?;
    let eddsa = sign(
        &json!({ "sub": "erin", "exp": now() + 60, "docs": { "*": "read" } }),
        Algorithm::EdDSA,
        ED25519_PRIVATE_PEM.as_bytes(),
    )?;

    let cases: [(&str, String, Option<&str>, u16); 9] = [
        ("no token", String::new(), None, 401),
        ("garbage", "?token=garbage".into(), None, 401),
        ("expired", format!("?token={expired}"), None, 401),
        ("wrong secret", format!("?token={wrong_secret}"), None, 401),
        ("alg none", format!("?token={unsigned}"), None, 401),
        ("bad grant key", format!("?token={bad_grant}"), None, 401),
        ("no grants", format!("?token={no_grants}"), None, 403),
        ("valid in the query", format!("?token={valid}"), None, 101),
        ("valid EdDSA", format!("?token={eddsa}"), None, 101),
    ];
    for (what, query, bearer, expected) in &cases {
        let status = h.upgrade_status(query, *bearer).await?;
        ensure!(
            status == *expected,
            "{what}: expected {expected}, got {status}"
        );
    }
    let status = h.upgrade_status("", Some(&valid)).await?;
    ensure!(status == 101, "valid bearer header: got {status}");

    for (reason, at_least) in [
        ("missing", 1.0),
        ("malformed", 1.0),
        ("expired", 1.0),
        ("signature", 1.0),
        ("grants", 1.0),
    ] {
        let count = h
            .server
            .metric_with(
                "syncline_auth_refused_total",
                &format!("reason=\"{reason}\""),
            )
            .await?;
        ensure!(count >= at_least, "auth_refused{{{reason}}} is {count}");
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (status, _) = http("GET", &format!("{}{path}", h.server.http_url()), None).await?;
        ensure!(status == 200, "{path} answered {status} without a token");
    }
    Ok(())
}

/// A reader receives the document and its updates; its own changes are never applied, stored or
/// relayed, even from a peer that ignores the read-only flag.
#[tokio::test]
async fn a_reader_cannot_write() -> Result<()> {
    let h = Harness::start().await?;
    let writer_token = h.token("wendy", &Grant::write(&["*"]))?;
    let mut writer = h.peer("writer", &writer_token).await?;
    let (doc, heads) = writer
        .create_acknowledged(
            |d| {
                d.put(automerge::ROOT, "price", 100).expect("put");
            },
            WAIT,
        )
        .await?;

    let reader_token = h.token("rita", &Grant::read(&[&doc.to_string()]))?;
    let mut reader = h.peer("reader", &reader_token).await?;
    reader.open(doc).await?;
    reader.wait_heads(doc, &heads, WAIT).await?;

    // The reader writes, the way a peer that ignores the read-only flag would.
    let forged = reader
        .change_ignoring_read_only(doc, |d| {
            d.put(automerge::ROOT, "price", 1).expect("put");
        })
        .await?;
    h.wait_denied("read_only", 1.0).await?;

    // The writer still writes, and the reader still receives.
    let later = writer
        .change(doc, |d| {
            d.put(automerge::ROOT, "nights", 3).expect("put");
        })
        .await?;
    writer.wait_acknowledged(doc, &[later], WAIT).await?;
    reader.wait_heads(doc, &[later], WAIT).await?;

    // A fresh peer sees the writer's changes and not the reader's; so does the writer.
    let mut fresh = h.peer("fresh", &writer_token).await?;
    fresh.open(doc).await?;
    fresh.wait_heads(doc, &[later], WAIT).await?;
    for (who, peer) in [("fresh peer", &mut fresh), ("writer", &mut writer)] {
        ensure!(
            peer.document(doc).get_change_by_hash(&forged).is_none(),
            "the {who} received the reader's change"
        );
        let price = peer.document(doc).get(automerge::ROOT, "price")?;
        ensure!(
            price.and_then(|(v, _)| v.as_scalar().and_then(|s| s.as_i64())) == Some(100),
            "the {who} sees a changed price"
        );
    }
    ensure!(
        h.server.metric("syncline_changes_committed_total").await? == 2.0,
        "exactly the writer's two changes were stored"
    );
    Ok(())
}

/// A token without access to a document gets exactly the answer a missing document gets, for
/// `request` and `sync` alike, and its ephemeral messages reach nobody.
#[tokio::test]
async fn a_stranger_cannot_learn_whether_a_document_exists() -> Result<()> {
    let h = Harness::start().await?;
    let owner_token = h.token("olga", &Grant::write(&["*"]))?;
    let mut owner = h.peer("owner", &owner_token).await?;
    let (doc, heads) = owner
        .create_acknowledged(
            |d| {
                d.put(automerge::ROOT, "secret", "yes").expect("put");
            },
            WAIT,
        )
        .await?;

    let elsewhere = random_document().to_string();
    let stranger_token = h.token("sam", &Grant::write(&[&elsewhere]))?;
    let mut stranger = h.peer("stranger", &stranger_token).await?;
    let missing = random_document();
    let mut answers = Vec::new();
    for target in [doc, missing] {
        stranger.open(target).await?;
        let answer = stranger.recv(WAIT).await?.context("no answer")?;
        let Message::DocUnavailable(mut answer) = answer else {
            bail!("expected doc-unavailable for {target}, got {answer:?}");
        };
        ensure!(answer.document_id == target);
        answer.document_id = DocumentId::from_bytes([0; 16]);
        answers.push(Message::DocUnavailable(answer).encode());
    }
    ensure!(answers[0] == answers[1], "the two answers differ");

    // A `sync` carrying changes is refused the same way and changes nothing.
    let mut forged = automerge::AutoCommit::new();
    forged.put(automerge::ROOT, "secret", "overwritten")?;
    let data = forged
        .sync()
        .generate_sync_message(&mut automerge::sync::State::new())
        .context("first message")?
        .encode();
    stranger
        .send(Message::Sync(SyncMessage {
            sender_id: stranger.peer_id().clone(),
            target_id: stranger.server_peer_id().clone(),
            document_id: doc,
            data,
        }))
        .await?;
    let answer = stranger.recv(WAIT).await?.context("no answer to sync")?;
    ensure!(
        matches!(answer, Message::DocUnavailable(_)),
        "got {answer:?}"
    );
    stranger
        .send(Message::Ephemeral(Ephemeral {
            sender_id: stranger.peer_id().clone(),
            target_id: stranger.server_peer_id().clone(),
            count: 1,
            session_id: "s".into(),
            document_id: doc,
            data: vec![0xa0],
        }))
        .await?;
    h.wait_denied("unreadable", 4.0).await?;

    // The owner's copy is untouched and nothing was relayed to it.
    let mut fresh = h.peer("fresh", &owner_token).await?;
    fresh.open(doc).await?;
    fresh.wait_heads(doc, &heads, WAIT).await?;
    fresh.sync_until_quiet(WAIT).await?;
    ensure!(fresh.heads(doc) == heads, "the document changed");
    if let Some(message) = owner.recv(Duration::from_millis(200)).await? {
        ensure!(
            !matches!(message, Message::Ephemeral(_)),
            "the stranger's ephemeral was relayed"
        );
    }
    Ok(())
}

/// `own` grants cover the documents a subject created, across restarts; another subject's
/// `own` does not reach them, and a read-only `own` cannot create.
#[tokio::test]
async fn own_documents_belong_to_their_creator() -> Result<()> {
    let h = Harness::start().await?;
    let alice_token = h.token("alice", &Grant::write(&["own"]))?;
    let mut alice = h.peer("alice", &alice_token).await?;
    let (doc, heads) = alice
        .create_acknowledged(
            |d| {
                d.put(automerge::ROOT, "owner", "alice").expect("put");
            },
            WAIT,
        )
        .await?;

    let bob_token = h.token("bob", &Grant::write(&["own"]))?;
    let mut bob = h.peer("bob", &bob_token).await?;
    bob.open(doc).await?;
    bob.sync_until_quiet(WAIT).await?;
    ensure!(bob.is_unavailable(doc), "bob reached alice's document");

    // A subject with only read access to its own documents cannot create one.
    let carol_token = h.token("carol", &Grant::read(&["own"]))?;
    let mut carol = h.peer("carol", &carol_token).await?;
    let carols = carol.create_document(|_| {}).await?;
    let answer = carol
        .recv(WAIT)
        .await?
        .context("no answer to carol's upload")?;
    ensure!(
        matches!(answer, Message::DocUnavailable(_)),
        "got {answer:?}"
    );
    drop((alice, bob, carol));

    // The creator is durable: after a restart alice still reaches her document, bob still not.
    let data_dir = h.server.data_dir.clone();
    let listen = h.server.addr;
    h.server.kill().await?;
    let options = ServerOptions {
        config: AUTH_CONFIG.to_owned(),
        listen: Some(listen),
        ..ServerOptions::default()
    };
    let server = ServerProcess::start(&data_dir, &options).await?;
    let url = |token: &str| with_token(&server.ws_url(), token);
    let mut alice = RawPeer::connect(&url(&alice_token), "alice-again").await?;
    alice.open(doc).await?;
    alice.wait_heads(doc, &heads, WAIT).await?;
    let mut bob = RawPeer::connect(&url(&bob_token), "bob-again").await?;
    bob.open(doc).await?;
    bob.sync_until_quiet(WAIT).await?;
    ensure!(
        bob.is_unavailable(doc),
        "bob reached alice's document after a restart"
    );
    let mut check = RawPeer::connect(&url(&alice_token), "alice-check").await?;
    check.open(carols).await?;
    check.sync_until_quiet(WAIT).await?;
    ensure!(
        check.is_unavailable(carols),
        "carol's upload created a document"
    );
    Ok(())
}

/// A live connection is closed, with an error saying why, when its token expires.
#[tokio::test]
async fn an_expired_token_cuts_the_connection() -> Result<()> {
    let h = Harness::start().await?;
    let token = h.token(
        "brief",
        &Grant {
            write: vec!["*".into()],
            ttl_seconds: 2,
            ..Grant::default()
        },
    )?;
    let started = Instant::now();
    let mut peer = h.peer("brief", &token).await?;
    peer.create_acknowledged(|_| {}, WAIT).await?;
    let deadline = Instant::now() + WAIT;
    let error = loop {
        ensure!(
            Instant::now() < deadline,
            "still connected after the token expired"
        );
        match peer.recv(WAIT).await {
            Ok(Some(Message::Error(error))) => break error,
            Ok(_) => continue,
            Err(err) => bail!("connection ended without an error message: {err:#}"),
        }
    };
    ensure!(error.message.contains("expired"), "{error:?}");
    ensure!(
        started.elapsed() >= Duration::from_secs(1),
        "cut before the token expired"
    );
    ensure!(peer.recv(WAIT).await.is_err(), "the connection stayed open");
    h.wait_denied("expired", 1.0).await?;
    // Reconnecting with the expired token is refused at the upgrade.
    ensure!(h.upgrade_status(&format!("?token={token}"), None).await? == 401);
    Ok(())
}

/// The native client presents its provider's token on every connection: a reader sees the
/// writer's edits and its own never reach the server, and short-lived tokens are replaced by
/// reconnecting.
#[tokio::test]
async fn native_clients_with_tokens() -> Result<()> {
    let h = Harness::start().await?;
    let config_path = h.server.config_path();
    let client_with = |grant: Grant, subject: &'static str| -> ClientConfig {
        let path = config_path.clone();
        let mut config = fast_config();
        config.token = Some(std::sync::Arc::new(move || {
            let token = mint(&path, subject, &grant).ok();
            Box::pin(async move { token })
        }));
        config
    };
    let dirs = tempfile::tempdir()?;
    // The writer's tokens live two seconds: it must reconnect with fresh ones to keep going.
    let short = Grant {
        write: vec!["*".into()],
        ttl_seconds: 2,
        ..Grant::default()
    };
    let writer = Client::open(dirs.path().join("w"), client_with(short, "wendy")).await?;
    writer.connect(&h.server.ws_url())?;
    let doc = writer
        .create(|tx| create_root(tx, &json!({ "price": 100 })))
        .await
        .context("create")?;
    doc.wait_acknowledged(WAIT).await?;

    let reader_grant = Grant::read(&[&doc.id().to_string()]);
    let reader = Client::open(dirs.path().join("r"), client_with(reader_grant, "rita")).await?;
    reader.connect(&h.server.ws_url())?;
    let seen = reader.find(doc.id(), WAIT).await?;
    settle(&[&doc, &seen], WAIT, || {
        seen.to_json()["price"] == json!(100)
    })
    .await?;

    seen.change(set("price", json!(1))).await?;
    // Once the writer's first token has run out, its edit goes over a reconnection made with
    // a new token.
    h.wait_denied("expired", 1.0).await?;
    doc.change(set("nights", json!(3))).await?;
    doc.wait_acknowledged(WAIT).await?;
    let deadline = Instant::now() + WAIT;
    while seen.to_json()["nights"] != json!(3) {
        ensure!(
            Instant::now() < deadline,
            "the reader never saw the writer's edit"
        );
        let mut events = seen.subscribe();
        let _ = tokio::time::timeout(Duration::from_millis(200), events.next()).await;
    }

    let check = Client::open(
        dirs.path().join("c"),
        client_with(Grant::read(&["*"]), "carl"),
    )
    .await?;
    check.connect(&h.server.ws_url())?;
    let fresh = check.find(doc.id(), WAIT).await?;
    settle(&[&doc, &fresh], WAIT, || {
        fresh.to_json()["nights"] == json!(3)
    })
    .await?;
    ensure!(
        fresh.to_json()["price"] == json!(100),
        "the reader's edit reached the server"
    );
    ensure!(
        doc.to_json()["price"] == json!(100),
        "the reader's edit reached the writer"
    );
    for client in [writer, reader, check] {
        client.close().await;
    }
    Ok(())
}

/// The HTTP routes apply the same grants: the operator routes need `admin`, and a document's
/// feed path is given to its readers and answered 404 to others, as for a missing document.
#[tokio::test]
async fn the_http_routes_enforce_the_same_grants() -> Result<()> {
    let h = Harness::start().await?;
    let base = h.server.http_url();
    let admin = h.token(
        "root",
        &Grant {
            admin: true,
            ttl_seconds: 60,
            ..Grant::default()
        },
    )?;
    let writer = h.token("wendy", &Grant::write(&["own"]))?;
    let mut peer = h.peer("wendy", &writer).await?;
    let (doc, _) = peer.create_acknowledged(|_| {}, WAIT).await?;
    let reader = h.token("rita", &Grant::read(&[&doc.to_string()]))?;
    let stranger = h.token("sam", &Grant::write(&[&random_document().to_string()]))?;

    let bridges = format!("{base}/admin/bridges");
    for (who, token, expected) in [
        ("nobody", None, 401),
        ("a reader", Some(reader.as_str()), 403),
        ("an operator", Some(admin.as_str()), 200),
    ] {
        let (status, body) = http("GET", &bridges, token).await?;
        ensure!(
            status == expected,
            "{who}: GET /admin/bridges answered {status}: {body}"
        );
    }
    let (status, _) = http(
        "POST",
        &format!("{base}/admin/bridges/x/pause"),
        Some(&reader),
    )
    .await?;
    ensure!(status == 403, "a reader paused a bridge: {status}");

    let feed = |d: DocumentId| format!("{base}/admin/calendars/{d}/feed");
    let (status, body) = http("GET", &feed(doc), Some(&reader)).await?;
    ensure!(
        status == 200 && body.contains("/calendars/"),
        "reader: {status} {body}"
    );
    let (status, _) = http("GET", &feed(doc), Some(&writer)).await?;
    ensure!(status == 200, "creator with own: {status}");
    let (status, _) = http("GET", &feed(doc), None).await?;
    ensure!(status == 401, "no token: {status}");
    let (hidden, hidden_body) = http("GET", &feed(doc), Some(&stranger)).await?;
    let (missing, missing_body) = http("GET", &feed(random_document()), Some(&stranger)).await?;
    ensure!(
        hidden == 404 && missing == 404,
        "stranger: {hidden} and {missing}"
    );
    ensure!(
        hidden_body == missing_body,
        "{hidden_body} vs {missing_body}"
    );
    Ok(())
}

/// The server refuses to listen beyond loopback without `[auth]` unless told it may.
#[tokio::test]
async fn no_auth_means_loopback_only() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let output = tokio::process::Command::new(syncline_tests::server::server_binary())
        .arg("--listen")
        .arg("0.0.0.0:0")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("SYNCLINE_INSECURE_NO_AUTH")
        .output()
        .await?;
    ensure!(
        output.status.code() == Some(2),
        "exit status {:?}",
        output.status
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(stderr.contains("--insecure-no-auth"), "{stderr}");
    ensure!(output.stdout.is_empty(), "it announced a listener");
    Ok(())
}

/// Joining under another subject's peer id does not close that subject's connection.
#[tokio::test]
async fn a_peer_id_cannot_be_taken_over_by_another_subject() -> Result<()> {
    let h = Harness::start().await?;
    let alice_token = h.token("alice", &Grant::write(&["own"]))?;
    let mut alice = h.peer("shared-peer-id", &alice_token).await?;
    let mallory_token = h.token("mallory", &Grant::write(&["own"]))?;
    let _mallory = h.peer("shared-peer-id", &mallory_token).await?;
    alice.create_acknowledged(|_| {}, WAIT).await?;
    // The same subject joining again does replace its older connection.
    let _again = h.peer("shared-peer-id", &alice_token).await?;
    let deadline = Instant::now() + WAIT;
    loop {
        ensure!(
            Instant::now() < deadline,
            "alice's older connection stayed open"
        );
        if alice.recv(WAIT).await.is_err() {
            return Ok(());
        }
    }
}

/// The native client of a token without access finds an existing document exactly as
/// unavailable as a missing one.
#[tokio::test]
async fn a_native_stranger_finds_nothing() -> Result<()> {
    let h = Harness::start().await?;
    let owner_token = h.token("olga", &Grant::write(&["*"]))?;
    let mut owner = h.peer("owner", &owner_token).await?;
    let (doc, _) = owner
        .create_acknowledged(
            |d| {
                d.put(automerge::ROOT, "secret", "yes").expect("put");
            },
            WAIT,
        )
        .await?;
    let path = h.server.config_path();
    let mut config = fast_config();
    let grant = Grant::write(&[&random_document().to_string()]);
    config.token = Some(std::sync::Arc::new(move || {
        let token = mint(&path, "sam", &grant).ok();
        Box::pin(async move { token })
    }));
    let dir = tempfile::tempdir()?;
    let stranger = Client::open(dir.path().join("s"), config).await?;
    stranger.connect(&h.server.ws_url())?;
    for (what, target) in [("existing", doc), ("missing", random_document())] {
        match stranger.find(target, WAIT).await {
            Err(syncline_client::ClientError::Unavailable(_)) => {}
            other => bail!("the {what} document: {:?}", other.map(|d| d.to_json())),
        }
    }
    stranger.close().await;
    Ok(())
}
