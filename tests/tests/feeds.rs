//! The iCalendar feed export against the real server: stable UIDs, ETag and 304, tokens.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use syncline_client::Client;
use syncline_shared::json::create_root;
use syncline_tests::native::{fast_config, set, settle};
use syncline_tests::server::{ServerOptions, ServerProcess, http_get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(20);

/// What one GET answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

async fn get(
    addr: std::net::SocketAddr,
    path: &str,
    if_none_match: Option<&str>,
) -> Result<Answer> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let condition = if_none_match.map_or(String::new(), |tag| format!("If-None-Match: {tag}\r\n"));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{condition}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").context("a response head")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .context("a status")?
        .parse()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// A listing's feed shows its confirmed stay and blocked nights and nothing else; it answers
/// 304 while unchanged, keeps its body, ETag and UIDs across a restart, refuses a wrong token
/// like a missing calendar, and changes when the calendar does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_is_stable_cacheable_and_guarded() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let options = ServerOptions {
        log_filter: "warn".to_owned(),
        ..ServerOptions::default()
    };
    let server = ServerProcess::start(&data, &options).await?;

    // 1. A calendar with a blocked night and two competing bookings; the server decides.
    let host = Client::open(dir.path().join("host"), fast_config()).await?;
    host.connect(&server.ws_url())?;
    let booking = |guest: &str, check_in: &str| json!({ "guest": guest, "check_in": check_in, "check_out": "2026-12-27", "status": "pending" });
    let calendar = host
        .create(|tx| {
            create_root(
                tx,
                &json!({
                    "type": "calendar", "name": "Loft",
                    "nights": { "2026-12-30": { "blocked": true, "blocked_by": "owner" } },
                    "bookings": { "ana": booking("Ana", "2026-12-24"), "ben": booking("Ben", "2026-12-25") }
                }),
            )
        })
        .await?;
    let decided = || calendar.to_json()["bookings"]["ben"]["status"] == "rejected";
    settle(&[&calendar], WAIT, decided).await?;

    // 2. The feed: the confirmed stay and the blocked night, no guest names, no rejected stay.
    let admin: Value = serde_json::from_str(
        &http_get(
            server.addr,
            &format!("/admin/calendars/{}/feed", calendar.id()),
        )
        .await?,
    )?;
    let path = admin["path"].as_str().context("a feed path")?.to_owned();
    let first = get(server.addr, &path, None).await?;
    assert_eq!(first.status, 200);
    assert!(first.headers["content-type"].starts_with("text/calendar"));
    let id = calendar.id();
    assert!(
        first
            .body
            .contains(&format!("UID:{id}-booking-ana@syncline"))
    );
    assert!(!first.body.contains("booking-ben"), "{}", first.body);
    assert!(
        first
            .body
            .contains("DTSTART;VALUE=DATE:20261224\r\nDTEND;VALUE=DATE:20261227")
    );
    assert!(
        first
            .body
            .contains("DTSTART;VALUE=DATE:20261230\r\nDTEND;VALUE=DATE:20261231")
    );
    assert!(!first.body.contains("Ana"));
    let etag = first.headers["etag"].clone();

    // 3. Unchanged: 304. Wrong or missing token: 404, as for a calendar that does not exist.
    assert_eq!(get(server.addr, &path, Some(&etag)).await?.status, 304);
    let wrong = format!("/calendars/{id}.ics?token=AAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(get(server.addr, &wrong, None).await?.status, 404);
    assert_eq!(
        get(server.addr, &format!("/calendars/{id}.ics"), None)
            .await?
            .status,
        404
    );

    // 4. After a restart: the same body, ETag and UIDs.
    let addr = server.addr;
    ensure!(
        server.terminate(WAIT).await?.success(),
        "server exit status"
    );
    let options = ServerOptions {
        listen: Some(addr),
        ..options
    };
    let server = ServerProcess::start(&data, &options).await?;
    let again = get(server.addr, &path, None).await?;
    assert_eq!(
        (again.status, &again.body, &again.headers["etag"]),
        (200, &first.body, &etag)
    );
    assert_eq!(get(server.addr, &path, Some(&etag)).await?.status, 304);

    // 5. A newly blocked night changes the feed.
    calendar
        .change(set("nights.2027-01-02", json!({ "blocked": true })))
        .await?;
    calendar.wait_acknowledged(WAIT).await?;
    let changed = get(server.addr, &path, Some(&etag)).await?;
    assert_eq!(changed.status, 200);
    assert!(
        changed
            .body
            .contains(&format!("UID:{id}-block-2027-01-02@syncline"))
    );
    assert!(
        changed
            .body
            .contains(&format!("UID:{id}-booking-ana@syncline"))
    );

    host.close().await;
    ensure!(
        server.terminate(WAIT).await?.success(),
        "server exit status"
    );
    Ok(())
}
