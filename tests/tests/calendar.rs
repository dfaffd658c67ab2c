//! The merge policy end to end: native clients against the real server binary.

use std::time::Duration;

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use syncline_client::Client;
use syncline_shared::json::create_root;
use syncline_tests::native::{fast_config, set, settle};
use syncline_tests::server::{ServerOptions, ServerProcess};

const WAIT: Duration = Duration::from_secs(20);

fn options() -> ServerOptions {
    ServerOptions {
        log_filter: "info".to_owned(),
        ..ServerOptions::default()
    }
}

fn booking(guest: &str, check_in: &str, check_out: &str) -> Value {
    json!({
        "guest": guest, "check_in": check_in, "check_out": check_out,
        "channel": "direct", "status": "pending"
    })
}

/// A host changes prices offline while two guests book overlapping stays at once: after sync
/// exactly one booking is confirmed, the other is rejected naming it, the prices are the host's
/// latest, and every client shows the same document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_prices_and_competing_bookings_settle_everywhere() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = ServerProcess::start(&dir.path().join("server"), &options()).await?;
    let url = server.ws_url();

    // 1. The host publishes the listing calendar; both guests open it.
    let host = Client::open(dir.path().join("host"), fast_config()).await?;
    host.connect(&url)?;
    let calendar = host
        .create(|tx| {
            create_root(
                tx,
                &json!({
                    "type": "calendar", "name": "Seaside loft", "currency": "EUR",
                    "nights": { "2026-12-24": { "price": 180 }, "2026-12-25": { "price": 180 } },
                    "bookings": {}
                }),
            )
        })
        .await?;
    calendar.wait_acknowledged(WAIT).await?;
    let ana = Client::open(dir.path().join("ana"), fast_config()).await?;
    let ben = Client::open(dir.path().join("ben"), fast_config()).await?;
    ana.connect(&url)?;
    ben.connect(&url)?;
    let ana_doc = ana.find(calendar.id(), WAIT).await?;
    let ben_doc = ben.find(calendar.id(), WAIT).await?;

    // 2. The host goes offline and changes the Christmas price twice.
    host.disconnect().await;
    calendar
        .change(set("nights.2026-12-24.price", json!(200)))
        .await?;
    calendar
        .change(set("nights.2026-12-24.price", json!(240)))
        .await?;

    // 3. Both guests book overlapping stays at the same moment.
    let (a, b) = tokio::join!(
        ana_doc.change(set(
            "bookings.b-ana",
            booking("Ana", "2026-12-24", "2026-12-27")
        )),
        ben_doc.change(set(
            "bookings.b-ben",
            booking("Ben", "2026-12-25", "2026-12-26")
        )),
    );
    a?;
    b?;

    // 4. The host comes back; everyone settles once both bookings are decided.
    host.connect(&url)?;
    let decided = |doc: &syncline_client::Document| {
        let state = doc.to_json();
        ["b-ana", "b-ben"]
            .iter()
            .all(|id| state["bookings"][id]["status"] != "pending")
    };
    settle(&[&calendar, &ana_doc, &ben_doc], WAIT, || {
        decided(&calendar) && decided(&ana_doc) && decided(&ben_doc)
    })
    .await?;

    // 5. One confirmed, one rejected naming it; the host's latest price; identical everywhere.
    let state = calendar.to_json();
    assert_eq!(state, ana_doc.to_json());
    assert_eq!(state, ben_doc.to_json());
    assert_eq!(state["nights"]["2026-12-24"]["price"], json!(240));
    let status = |id: &str| {
        state["bookings"][id]["status"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let mut statuses = [status("b-ana"), status("b-ben")];
    statuses.sort();
    assert_eq!(statuses, ["confirmed", "rejected"], "{state}");
    let (winner, loser) = match status("b-ana").as_str() {
        "confirmed" => ("b-ana", "b-ben"),
        _ => ("b-ben", "b-ana"),
    };
    assert_eq!(
        state["bookings"][loser]["rejected_reason"],
        json!(format!("overlaps confirmed booking {winner}"))
    );

    // 6. The operator sees the decisions in the log.
    let log = server.log.lines().join("\n");
    ensure!(
        log.contains("booking decided"),
        "no decision logged:\n{log}"
    );

    for client in [&host, &ana, &ben] {
        client.close().await;
    }
    ensure!(
        server.terminate(WAIT).await?.success(),
        "server exit status"
    );
    Ok(())
}

/// A guest who writes `confirmed` on their own booking is put back by the server, everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_confirm_its_own_booking() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = ServerProcess::start(&dir.path().join("server"), &options()).await?;
    let url = server.ws_url();
    let host = Client::open(dir.path().join("host"), fast_config()).await?;
    host.connect(&url)?;
    let calendar = host
        .create(|tx| {
            create_root(
                tx,
                &json!({
                    "type": "calendar",
                    "nights": { "2026-12-24": { "blocked": true, "blocked_by": "owner" } },
                    "bookings": {}
                }),
            )
        })
        .await?;
    calendar.wait_acknowledged(WAIT).await?;

    // 1. A booking over a blocked night is rejected.
    calendar
        .change(set(
            "bookings.b-1",
            booking("Cleo", "2026-12-23", "2026-12-25"),
        ))
        .await?;
    let rejected = || calendar.to_json()["bookings"]["b-1"]["status"] == "rejected";
    settle(&[&calendar], WAIT, rejected).await?;
    assert_eq!(
        calendar.to_json()["bookings"]["b-1"]["rejected_reason"],
        json!("night 2026-12-24 is blocked by owner")
    );

    // 2. The client overrides the rejection; the server puts it back.
    calendar
        .change(set("bookings.b-1.status", json!("confirmed")))
        .await?;
    let reverted = || calendar.to_json()["bookings"]["b-1"]["status"] == "rejected";
    settle(&[&calendar], WAIT, reverted).await?;

    host.close().await;
    ensure!(
        server.terminate(WAIT).await?.success(),
        "server exit status"
    );
    Ok(())
}
