//! The CalDAV bridge against a real CalDAV server (Radicale, started by this suite).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use reqwest::Method;
use serde_json::json;
use syncline_client::Client;
use syncline_shared::json::create_root;
use syncline_tests::native::{fast_config, set, settle};
use syncline_tests::radicale::{PASSWORD, Radicale, USER};
use syncline_tests::server::{ServerOptions, ServerProcess};

const WAIT: Duration = Duration::from_secs(30);

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// Creates the calendar collection.
async fn make_calendar(url: &str) -> Result<()> {
    let status = http()
        .request(Method::from_bytes(b"MKCALENDAR")?, url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await?
        .status();
    ensure!(status.is_success(), "MKCALENDAR answered {status}");
    Ok(())
}

/// Every object in the collection: file name → body.
async fn objects(url: &str) -> Result<BTreeMap<String, String>> {
    let body = r#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>"#;
    let listing = http()
        .request(Method::from_bytes(b"PROPFIND")?, url)
        .basic_auth(USER, Some(PASSWORD))
        .header("depth", "1")
        .body(body)
        .send()
        .await?
        .text()
        .await?;
    let mut found = BTreeMap::new();
    for part in listing.split("href>").skip(1).step_by(2) {
        let href = &part[..part.find('<').unwrap_or(part.len())];
        let Some(name) = href.rsplit('/').next().filter(|n| n.ends_with(".ics")) else {
            continue;
        };
        let object = format!("{url}{name}");
        let name = name.replace("%40", "@");
        let text = http()
            .get(&object)
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await?
            .text()
            .await?;
        found.insert(name, text);
    }
    Ok(found)
}

/// Waits until the collection satisfies `done`, polling it (bounded by `WAIT`).
async fn wait_collection(
    url: &str,
    done: impl Fn(&BTreeMap<String, String>) -> bool,
) -> Result<BTreeMap<String, String>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = objects(url).await?;
        if done(&now) {
            return Ok(now);
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the collection did not reach the expected state; it holds {:?}",
                now.keys()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn has_dates(body: &str, start: &str, end: &str) -> bool {
    body.contains(&format!("DTSTART;VALUE=DATE:{start}"))
        && body.contains(&format!("DTEND;VALUE=DATE:{end}"))
}

/// A host edits and blocks nights offline while guests book on two clients: the collection
/// ends with exactly the confirmed booking and the blocked run, with the right dates; a
/// cancellation removes its event and a new booking of those nights is a new event; an event
/// edited directly on the server is brought back to the document's state without a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collection_follows_the_calendar() -> Result<()> {
    // 1. Radicale with an empty calendar, and a server bridging calendars to it.
    let dir = tempfile::tempdir()?;
    let radicale = Radicale::start(&dir.path().join("radicale")).await?;
    let url = radicale.collection("loft");
    make_calendar(&url).await?;
    let config = format!(
        "[[bridge]]\nname = \"caldav\"\nkind = \"caldav\"\nurl = \"{url}\"\ndocuments = \"calendar\"\n\
         username = \"{USER}\"\npassword = \"{PASSWORD}\"\ntimeout_ms = 5000\nretry_base_ms = 50\n\
         retry_cap_ms = 500\nretry_quick_attempts = 40\n"
    );
    let options = ServerOptions {
        config,
        log_filter: "warn".to_owned(),
        ..ServerOptions::default()
    };
    let server = ServerProcess::start(&dir.path().join("server"), &options).await?;

    // 2. The host publishes the calendar; two guests open it.
    let host = Client::open(dir.path().join("host"), fast_config()).await?;
    host.connect(&server.ws_url())?;
    let calendar = host
        .create(|tx| {
            create_root(
                tx,
                &json!({ "type": "calendar", "name": "Loft", "nights": {}, "bookings": {} }),
            )
        })
        .await?;
    calendar.wait_acknowledged(WAIT).await?;
    let (ana, ben) = (
        Client::open(dir.path().join("ana"), fast_config()).await?,
        Client::open(dir.path().join("ben"), fast_config()).await?,
    );
    ana.connect(&server.ws_url())?;
    ben.connect(&server.ws_url())?;
    let ana_doc = ana.find(calendar.id(), WAIT).await?;
    let ben_doc = ben.find(calendar.id(), WAIT).await?;

    // 3. Offline, the host blocks two nights and sets a price; the guests book at once.
    host.disconnect().await;
    calendar
        .change(set(
            "nights.2026-12-30",
            json!({ "blocked": true, "blocked_by": "owner" }),
        ))
        .await?;
    calendar
        .change(set(
            "nights.2026-12-31",
            json!({ "blocked": true, "blocked_by": "owner" }),
        ))
        .await?;
    calendar
        .change(set("nights.2026-12-24", json!({ "price": 200 })))
        .await?;
    let stay = |guest: &str, check_in: &str| json!({ "guest": guest, "check_in": check_in, "check_out": "2026-12-27", "status": "pending" });
    let (a, b) = tokio::join!(
        ana_doc.change(set("bookings.ana", stay("Ana", "2026-12-24"))),
        ben_doc.change(set("bookings.ben", stay("Ben", "2026-12-25"))),
    );
    a?;
    b?;
    host.connect(&server.ws_url())?;
    let decided = || {
        let state = calendar.to_json();
        state["bookings"]["ana"]["status"] != "pending"
            && state["bookings"]["ben"]["status"] != "pending"
    };
    settle(&[&calendar, &ana_doc, &ben_doc], WAIT, decided).await?;
    let state = calendar.to_json();
    let (winner, loser) = match state["bookings"]["ana"]["status"].as_str() {
        Some("confirmed") => ("ana", "ben"),
        _ => ("ben", "ana"),
    };

    // 4. Exactly the confirmed stay and the blocked run, dates exclusive at the end.
    let id = calendar.id();
    let booking_file = format!("{id}-booking-{winner}@syncline.ics");
    let block_file = format!("{id}-block-2026-12-30@syncline.ics");
    let collection =
        wait_collection(&url, |c| c.len() == 2 && c.contains_key(&booking_file)).await?;
    ensure!(
        !collection.keys().any(|k| k.contains(loser)),
        "rejected booking in {collection:?}"
    );
    let check_in = state["bookings"][winner]["check_in"]
        .as_str()
        .context("check_in")?
        .replace('-', "");
    ensure!(
        has_dates(&collection[&booking_file], &check_in, "20261227"),
        "{}",
        collection[&booking_file]
    );
    ensure!(
        has_dates(&collection[&block_file], "20261230", "20270101"),
        "{}",
        collection[&block_file]
    );

    // 5. Cancelled: the event goes. A new booking of those nights is a new event.
    calendar
        .change(set(
            &format!("bookings.{winner}.status"),
            json!("cancelled"),
        ))
        .await?;
    wait_collection(&url, |c| c.len() == 1 && c.contains_key(&block_file)).await?;
    calendar
        .change(set("bookings.cleo", stay("Cleo", "2026-12-24")))
        .await?;
    let cleo_file = format!("{id}-booking-cleo@syncline.ics");
    let collection = wait_collection(&url, |c| c.len() == 2 && c.contains_key(&cleo_file)).await?;
    ensure!(
        !collection.contains_key(&booking_file),
        "the cancelled event came back"
    );

    // 6. Someone edits the blocked run directly on the server; the next delivery restores it.
    let edited =
        collection[&block_file].replace("SUMMARY:Blocked (owner)", "SUMMARY:Edited by hand");
    let status = http()
        .put(format!("{url}{}", block_file.replace('@', "%40")))
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", "text/calendar")
        .body(edited)
        .send()
        .await?
        .status();
    ensure!(status.is_success(), "direct edit answered {status}");
    calendar
        .change(set("nights.2026-12-24.price", json!(210)))
        .await?;
    let restored = wait_collection(&url, |c| {
        c.len() == 2
            && c.get(&block_file)
                .is_some_and(|b| b.contains("SUMMARY:Blocked (owner)"))
    })
    .await?;
    ensure!(restored.len() == 2, "duplicates in {:?}", restored.keys());

    for client in [&host, &ana, &ben] {
        client.close().await;
    }
    ensure!(
        server.terminate(WAIT).await?.success(),
        "server exit status"
    );
    drop(radicale);
    Ok(())
}
