//! Webhook bridges end to end: the real server delivering to a local receiver that fails on
//! purpose (errors, throttling, slow replies, dropped connections), across a SIGKILL, into dead
//! letters and back out by replay.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use automerge::transaction::Transactable;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use syncline_shared::ids::DocumentId;
use syncline_tests::peer::RawPeer;
use syncline_tests::receiver::{Delivery, Receiver, Reply};
use syncline_tests::server::{ServerOptions, ServerProcess, http_get};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(60);

fn config(url: &str, extra: &str) -> String {
    format!(
        "[[bridge]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\ndocuments = \"*\"\n\
         secret = \"{SECRET}\"\ntimeout_ms = 300\nretry_base_ms = 20\nretry_cap_ms = 200\n\
         retry_quick_attempts = 60\nretry_tail_ms = [500]\n{extra}"
    )
}

fn options(config: String, listen: Option<std::net::SocketAddr>) -> ServerOptions {
    ServerOptions {
        config,
        log_filter: "warn".to_owned(),
        listen,
    }
}

/// The counter `n` in a delivered state, with the document it belongs to.
fn state_of(delivery: &Delivery) -> Option<(String, i64)> {
    let document = delivery.json["document_id"].as_str()?.to_owned();
    Some((document, delivery.json["state"]["n"].as_i64()?))
}

fn verify(delivery: &Delivery) -> Result<()> {
    let webhook = standardwebhooks::Webhook::new(SECRET)?;
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let value = delivery.headers.get(name).context("a signature header")?;
        headers.insert(name, value.parse()?);
    }
    webhook
        .verify(&delivery.body, &headers)
        .map_err(|e| anyhow::anyhow!("signature of {} does not verify: {e:?}", delivery.id))?;
    ensure!(delivery.headers.get("idempotency-key") == Some(&delivery.id));
    Ok(())
}

async fn make_changes(url: &str, documents: usize, changes: i64) -> Result<Vec<DocumentId>> {
    let mut peer = RawPeer::connect(url, "writer").await?;
    let mut ids = Vec::new();
    for _ in 0..documents {
        let doc = peer.create_document(|d| put_n(d, 0)).await?;
        ids.push(doc);
    }
    for n in 1..=changes {
        for doc in &ids {
            let hash = peer.change(*doc, |d| put_n(d, n)).await?;
            peer.wait_acknowledged(*doc, &[hash], WAIT).await?;
        }
    }
    peer.close().await?;
    Ok(ids)
}

fn put_n(doc: &mut automerge::AutoCommit, n: i64) {
    doc.put(automerge::ROOT, "n", n)
        .expect("a put on a local document succeeds");
}

/// Hundreds of changes over many documents against a receiver that fails most requests in
/// every way it can: in the end it holds every document's final state; each document's states
/// arrived in order; a retried id always carried the same body; after deduplication by id no
/// state took effect twice; every signature verifies independently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_every_final_state_arrives_once_and_in_order() -> Result<()> {
    // 1. The misbehaving receiver: a fixed seed, so a failure replays.
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let receiver = Receiver::start(move |_| match rng.random_range(0..100) {
        0..35 => Reply::Status(200),
        35..50 => Reply::Status(500),
        50..62 => Reply::Status(503),
        62..63 => Reply::Throttle("1".to_owned()),
        63..70 => Reply::Throttle("0".to_owned()),
        70..85 => Reply::Slow(Duration::from_millis(450)),
        _ => Reply::Drop,
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let server = ServerProcess::start(
        &dir.path().join("data"),
        &options(config(&receiver.url(), ""), None),
    )
    .await?;

    // 2. 12 documents, 20 acknowledged changes each.
    let documents = make_changes(&server.ws_url(), 12, 20).await?;
    let names: HashSet<String> = documents.iter().map(ToString::to_string).collect();

    // 3. Every document's final state reaches the receiver.
    let finals = |deliveries: &[Delivery]| {
        let done: HashSet<String> = deliveries
            .iter()
            .filter(|d| d.accepted)
            .filter_map(state_of)
            .filter(|(_, n)| *n == 20)
            .map(|(doc, _)| doc)
            .collect();
        names.iter().all(|name| done.contains(name))
    };
    let deliveries = receiver.wait_until(WAIT, finals).await?;

    // 4. Retries were exact, signatures verify, and deduplicated effects are in order and once.
    let mut bodies: HashMap<&str, &[u8]> = HashMap::new();
    let mut seen = HashSet::new();
    let mut last: HashMap<String, i64> = HashMap::new();
    for delivery in &deliveries {
        verify(delivery)?;
        let first = bodies.entry(&delivery.id).or_insert(&delivery.body);
        ensure!(
            *first == delivery.body.as_slice(),
            "{} was retried with another body",
            delivery.id
        );
        if !delivery.accepted || !seen.insert(delivery.id.clone()) {
            continue;
        }
        let (doc, n) = state_of(delivery).context("a state body")?;
        let previous = last.insert(doc.clone(), n);
        if previous >= Some(n) {
            let history: Vec<String> = deliveries
                .iter()
                .filter(|d| state_of(d).is_some_and(|(d, _)| d == doc))
                .map(|d| format!("{} n={:?} {:?}", d.id, state_of(d).map(|s| s.1), d.reply))
                .collect();
            anyhow::bail!(
                "{doc}: state {n} took effect after {previous:?}:\n{}",
                history.join("\n")
            );
        }
    }
    // Every way of failing happened, so the run proves something.
    let kinds: HashSet<&str> = deliveries
        .iter()
        .map(|d| match &d.reply {
            Reply::Status(200) => "ok",
            Reply::Status(500) => "500",
            Reply::Status(_) => "503",
            Reply::Throttle(_) => "429",
            Reply::Slow(_) => "slow",
            Reply::Drop => "drop",
        })
        .collect();
    ensure!(
        kinds.len() == 6,
        "only {kinds:?} happened; the run is too kind"
    );

    let metrics = http_get(server.addr, "/metrics").await?;
    ensure!(
        metrics.contains("syncline_bridge_failures_total"),
        "{metrics}"
    );
    ensure!(
        server.terminate(WAIT).await?.success(),
        "server exit status"
    );
    Ok(())
}

/// A server killed mid-delivery resumes after restart with the same id and the same body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_in_flight_survives_sigkill() -> Result<()> {
    // 1. The receiver holds the first request open.
    let receiver = Receiver::start(|_| Reply::Slow(Duration::from_secs(30))).await?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let text = config(&receiver.url(), "").replace("timeout_ms = 300", "timeout_ms = 60000");
    let server = ServerProcess::start(&data, &options(text.clone(), None)).await?;
    let addr = server.addr;
    make_changes(&server.ws_url(), 1, 1).await?;
    let first = receiver.wait_until(WAIT, |d| !d.is_empty()).await?[0].clone();

    // 2. SIGKILL while the request is open; the receiver now answers at once.
    server.kill().await?;
    receiver.behave(|_| Reply::Status(200));
    let server = ServerProcess::start(&data, &options(text, Some(addr))).await?;

    // 3. The same delivery arrives again, byte for byte, and is accepted.
    let again = receiver
        .wait_until(WAIT, |d| {
            d.iter().skip(1).any(|d| d.accepted && d.id == first.id)
        })
        .await?;
    let retry = again
        .iter()
        .skip(1)
        .find(|d| d.id == first.id)
        .context("the retry")?;
    assert_eq!(retry.body, first.body);
    verify(retry)?;
    ensure!(
        server.terminate(WAIT).await?.success(),
        "server exit status"
    );
    Ok(())
}

/// A 429 pauses the whole bridge for at least its Retry-After, not just the throttled row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_the_whole_bridge() -> Result<()> {
    let mut first = true;
    let receiver = Receiver::start(move |_| {
        let reply = match first {
            true => Reply::Throttle("1".to_owned()),
            false => Reply::Status(200),
        };
        first = false;
        reply
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let text = config(&receiver.url(), "concurrency = 1\n");
    let server = ServerProcess::start(&dir.path().join("data"), &options(text, None)).await?;
    make_changes(&server.ws_url(), 3, 1).await?;

    let deliveries = receiver
        .wait_until(WAIT, |d| d.iter().filter(|d| d.accepted).count() >= 3)
        .await?;
    let throttled = deliveries[0].at;
    for later in &deliveries[1..] {
        let gap = later.at - throttled;
        ensure!(
            gap >= Duration::from_millis(950),
            "a request came {gap:?} after the 429"
        );
    }
    ensure!(
        server.terminate(WAIT).await?.success(),
        "server exit status"
    );
    Ok(())
}

async fn admin(addr: std::net::SocketAddr, method: &str, path: &str) -> Result<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).with_context(|| format!("{method} {path}: {response}"))
}

/// A target that keeps failing dead-letters the delivery after the configured attempts; the
/// admin API lists it, and a replay after fixing the target delivers it with the same id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed() -> Result<()> {
    // 1. A target that always fails; three attempts at most.
    let receiver = Receiver::start(|_| Reply::Status(503)).await?;
    let dir = tempfile::tempdir()?;
    let text = config(&receiver.url(), "")
        .replace("retry_quick_attempts = 60", "retry_quick_attempts = 2")
        .replace("retry_tail_ms = [500]", "retry_tail_ms = []");
    let server = ServerProcess::start(&dir.path().join("data"), &options(text, None)).await?;
    make_changes(&server.ws_url(), 1, 1).await?;

    // 2. Three attempts, then the row is dead and listed.
    let listed = async || admin(server.addr, "GET", "/admin/bridges").await;
    receiver.wait_until(WAIT, |d| d.len() >= 3).await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    let dead = loop {
        let report = listed().await?;
        let dead = report["bridges"][0]["dead"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !dead.is_empty() {
            break dead;
        }
        // The row is recorded dead just after the third answer; poll for it, bounded.
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no dead row in {report}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(dead[0]["attempts"], 3);
    assert_eq!(receiver.deliveries().len(), 3, "no attempt after the last");
    let id = dead[0]["id"].as_str().context("an id")?.to_owned();

    // 3. The target is fixed; a replay delivers the same id.
    receiver.behave(|_| Reply::Status(200));
    let wrong = admin(
        server.addr,
        "POST",
        "/admin/bridges/hook/replay?id=msg_other",
    )
    .await?;
    assert_eq!(wrong["replayed"], 0, "a replay by id touches that row only");
    let path = format!("/admin/bridges/hook/replay?id={id}");
    let replayed = admin(server.addr, "POST", &path).await?;
    assert_eq!(replayed["replayed"], 1);
    receiver
        .wait_until(WAIT, |d| d.iter().any(|d| d.accepted && d.id == id))
        .await?;
    let unknown = admin(server.addr, "POST", "/admin/bridges/nope/replay").await?;
    assert_eq!(unknown["error"]["code"], "unknown_bridge");
    ensure!(
        server.terminate(WAIT).await?.success(),
        "server exit status"
    );
    Ok(())
}

/// A calendar's booking decisions go out as their own events, and an events-mode bridge gets
/// the change batch in log order: the guest's booking, then the server's decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booking_decisions_and_change_batches_are_announced() -> Result<()> {
    use automerge::ObjType;

    // 1. Two bridges to one receiver: state for calendars, events for everything.
    let receiver = Receiver::start(|_| Reply::Status(200)).await?;
    let dir = tempfile::tempdir()?;
    let mut text =
        config(&receiver.url(), "").replace("documents = \"*\"", "documents = \"calendar\"");
    text.push_str(
        &config(&receiver.url(), "mode = \"events\"\n")
            .replace("name = \"hook\"", "name = \"log\""),
    );
    let server = ServerProcess::start(&dir.path().join("data"), &options(text, None)).await?;

    // 2. A calendar with two overlapping pending bookings, in one change.
    let mut peer = RawPeer::connect(&server.ws_url(), "guest").await?;
    let doc = peer
        .create_document(|d| {
            d.put(automerge::ROOT, "type", "calendar").expect("put");
            let bookings = d
                .put_object(automerge::ROOT, "bookings", ObjType::Map)
                .expect("map");
            for (id, check_in) in [("ana", "2026-12-01"), ("ben", "2026-12-02")] {
                let booking = d.put_object(&bookings, id, ObjType::Map).expect("map");
                d.put(&booking, "check_in", check_in).expect("put");
                d.put(&booking, "check_out", "2026-12-04").expect("put");
                d.put(&booking, "status", "pending").expect("put");
            }
        })
        .await?;
    let heads = peer.heads(doc);
    peer.wait_acknowledged(doc, &heads, WAIT).await?;

    // 3. One booking.confirmed, one booking.rejected, and the change batches.
    let kind = |d: &Delivery| d.json["type"].as_str().unwrap_or("").to_owned();
    let deliveries = receiver
        .wait_until(WAIT, |d| {
            let kinds: Vec<String> = d.iter().map(kind).collect();
            ["booking.confirmed", "booking.rejected", "document.updated"]
                .iter()
                .all(|k| kinds.iter().any(|seen| seen == k))
                && kinds.iter().any(|k| k == "document.changed")
        })
        .await?;
    let booking = |k: &str| {
        deliveries
            .iter()
            .find(|d| kind(d) == k)
            .map(|d| d.json["booking"].clone())
            .unwrap_or_default()
    };
    assert_eq!(booking("booking.confirmed")["id"], "ana");
    assert_eq!(booking("booking.rejected")["id"], "ben");
    assert_eq!(
        booking("booking.rejected")["rejected_reason"],
        "overlaps confirmed booking ana"
    );

    // 4. The batch (the guest's change and the server's decision, committed together) lists
    //    its changes in log order.
    let batch = deliveries
        .iter()
        .find(|d| kind(d) == "document.changed")
        .context("a change batch")?;
    let changes = batch.json["changes"].as_array().context("changes")?;
    ensure!(
        changes.first().is_some_and(|c| c["message"].is_null()),
        "{changes:?}"
    );
    let decision = changes
        .last()
        .and_then(|c| c["message"].as_str())
        .unwrap_or("");
    ensure!(
        decision.starts_with("syncline-policy "),
        "last change: {decision}"
    );
    for delivery in &deliveries {
        verify(delivery)?;
    }
    peer.close().await?;
    ensure!(
        server.terminate(WAIT).await?.success(),
        "server exit status"
    );
    Ok(())
}
