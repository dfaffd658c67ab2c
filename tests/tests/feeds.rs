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

/// A booking site's export, served on loopback with an ETag; counts the polls it gets.
struct FeedServer {
    addr: std::net::SocketAddr,
    body: std::sync::Arc<std::sync::Mutex<String>>,
    polls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    polled: std::sync::Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl FeedServer {
    async fn start(body: &str) -> Result<Self> {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let body = std::sync::Arc::new(std::sync::Mutex::new(body.to_owned()));
        let polls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let polled = std::sync::Arc::new(tokio::sync::Notify::new());
        let (shared, count, notify) = (body.clone(), polls.clone(), polled.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = vec![0u8; 4096];
                let n = socket.read(&mut request).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&request[..n]).to_ascii_lowercase();
                let body = shared.lock().expect("feed lock").clone();
                let etag = format!(
                    "\"{}\"",
                    body.len() * 31 + body.bytes().map(usize::from).sum::<usize>()
                );
                count.fetch_add(1, Ordering::SeqCst);
                let response = if request.contains(&format!("if-none-match: {etag}")) {
                    format!(
                        "HTTP/1.1 304 Not Modified\r\netag: {etag}\r\nconnection: close\r\n\r\n"
                    )
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/calendar\r\netag: {etag}\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = socket.write_all(response.as_bytes()).await;
                notify.notify_waiters();
            }
        });
        Ok(Self {
            addr,
            body,
            polls,
            polled,
            task,
        })
    }

    /// Waits until `more` further polls were answered.
    async fn wait_polls(&self, more: usize) -> Result<()> {
        let target = self.polls() + more;
        let wait = async {
            loop {
                let polled = self.polled.notified();
                if self.polls() >= target {
                    return;
                }
                polled.await;
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .context("the feed is not polled")
    }

    fn serve(&self, body: &str) {
        *self.body.lock().expect("feed lock") = body.to_owned();
    }

    fn polls(&self) -> usize {
        self.polls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn ics(start: &str, end: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:r1@site\r\n\
         DTSTART;VALUE=DATE:{start}\r\nDTEND;VALUE=DATE:{end}\r\nSUMMARY:Reserved\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// The nights `channel` blocks in a calendar's JSON.
fn blocked_by(state: &Value, channel: &str) -> Vec<String> {
    state["nights"]
        .as_object()
        .map(|nights| {
            nights
                .iter()
                .filter(|(_, n)| n["blocked"] == true && n["blocked_by"] == channel)
                .map(|(night, _)| night.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// A booking site's feed becomes nights blocked for its channel, with one server change per
/// poll that changed something; a direct booking over them is rejected; nights the feed drops
/// are freed, the host's own blocks are not; and a broken feed wipes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_feeds_block_nights_and_a_broken_one_wipes_nothing() -> Result<()> {
    // 1. The site's feed: one stay, 20 to 22 December; the server polls every 100 ms.
    let site = FeedServer::start(&ics("20261220", "20261222")).await?;
    let dir = tempfile::tempdir()?;
    let options = ServerOptions {
        config: "[calendars]\nimport_interval_ms = 100\n".to_owned(),
        log_filter: "warn".to_owned(),
        ..ServerOptions::default()
    };
    let server = ServerProcess::start(&dir.path().join("server"), &options).await?;
    let host = Client::open(dir.path().join("host"), fast_config()).await?;
    host.connect(&server.ws_url())?;
    let url = format!("http://{}/export.ics", site.addr);
    let calendar = host
        .create(|tx| {
            create_root(
                tx,
                &json!({
                    "type": "calendar",
                    "imports": [{ "url": url, "channel": "airbnb" }],
                    "nights": { "2026-12-24": { "blocked": true } },
                    "bookings": {}
                }),
            )
        })
        .await?;

    // 2. Its nights appear, blocked by the channel.
    let imported = || blocked_by(&calendar.to_json(), "airbnb") == ["2026-12-20", "2026-12-21"];
    settle(&[&calendar], WAIT, imported).await?;

    // 3. Polls of the unchanged feed write nothing.
    site.wait_polls(3).await?;
    let imports = |doc: &syncline_client::Document| {
        doc.read(|d| {
            d.get_changes(&[])
                .iter()
                .filter(|c| {
                    c.message()
                        .is_some_and(|m| m.starts_with("syncline-import"))
                })
                .count()
        })
    };
    calendar.wait_synced(WAIT).await?;
    assert_eq!(
        imports(&calendar),
        1,
        "one change for the one poll that changed something"
    );

    // 4. A direct booking over an imported night is rejected, naming the channel.
    calendar
        .change(set(
            "bookings.direct",
            json!({ "guest": "Dan", "check_in": "2026-12-21", "check_out": "2026-12-23", "status": "pending" }),
        ))
        .await?;
    let rejected = || calendar.to_json()["bookings"]["direct"]["status"] == "rejected";
    settle(&[&calendar], WAIT, rejected).await?;
    assert_eq!(
        calendar.to_json()["bookings"]["direct"]["rejected_reason"],
        "night 2026-12-21 is blocked by airbnb"
    );

    // 5. The stay moves: the dropped night is freed, the new one blocked, the host's untouched.
    site.serve(&ics("20261221", "20261223"));
    let moved = || blocked_by(&calendar.to_json(), "airbnb") == ["2026-12-21", "2026-12-22"];
    settle(&[&calendar], WAIT, moved).await?;
    let state = calendar.to_json();
    assert_eq!(state["nights"]["2026-12-20"]["blocked"], false);
    assert_eq!(state["nights"]["2026-12-24"]["blocked"], true);

    // 6. The site breaks: garbage and errors change nothing.
    site.serve("<html>maintenance</html>");
    site.wait_polls(3).await?;
    calendar.wait_synced(WAIT).await?;
    assert_eq!(
        blocked_by(&calendar.to_json(), "airbnb"),
        ["2026-12-21", "2026-12-22"]
    );
    ensure!(
        server
            .log
            .lines()
            .iter()
            .any(|l| l.contains("feed does not parse")),
        "the broken feed is reported"
    );

    host.close().await;
    ensure!(
        server.terminate(WAIT).await?.success(),
        "server exit status"
    );
    Ok(())
}
