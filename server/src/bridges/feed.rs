//! iCalendar feed export: `GET /calendars/{document}.ics?token=...`.
//!
//! Booking sites poll a listing's exported feed on their own schedule, so the feed must be
//! cheap to poll and stable: it answers `ETag` (a hash of the body) and `304 Not Modified` for
//! a matching `If-None-Match`, and renders the durable state deterministically, with UIDs that
//! never change. It shows only that nights are taken, never guests. Access needs the
//! document's token, an HMAC of its id under a secret kept in storage, so feed URLs survive
//! restarts and cannot be guessed from a document id; a wrong token answers the same 404 as a
//! missing document, so ids cannot be probed. `GET /admin/calendars/{document}/feed` gives an
//! operator the feed's path with its token.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use syncline_shared::ical::{Detail, render};
use syncline_shared::ids::DocumentId;
use syncline_shared::policy::calendar::is_calendar;
use tracing::warn;

use crate::storage::Storage;

/// The routes, reading from `storage`.
pub fn router(storage: Storage) -> Router {
    Router::new()
        .route("/calendars/{file}", get(feed))
        .route("/admin/calendars/{document}/feed", get(feed_path))
        .with_state(storage)
}

/// The feed token of a document: 128 bits of HMAC-SHA256, URL-safe.
pub fn token(secret: &[u8; 32], document: &DocumentId) -> String {
    URL_SAFE_NO_PAD.encode(&mac(secret, document)[..16])
}

fn mac(secret: &[u8; 32], document: &DocumentId) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"syncline feed ");
    mac.update(document.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Whether `given` is the document's token, compared in constant time.
fn token_matches(secret: &[u8; 32], document: &DocumentId, given: &str) -> bool {
    let Ok(given) = URL_SAFE_NO_PAD.decode(given) else {
        return false;
    };
    let expected = mac(secret, document);
    given.len() == 16
        && given
            .iter()
            .zip(&expected[..16])
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

#[derive(Debug, Deserialize)]
struct Token {
    token: Option<String>,
}

async fn feed(
    State(storage): State<Storage>,
    Path(file): Path<String>,
    Query(query): Query<Token>,
    headers: HeaderMap,
) -> Response {
    let Some(document) = file
        .strip_suffix(".ics")
        .and_then(|id| id.parse::<DocumentId>().ok())
    else {
        return not_found();
    };
    let given = query.token.unwrap_or_default();
    if !token_matches(storage.feed_secret(), &document, &given) {
        return not_found();
    }
    let rendered = tokio::task::spawn_blocking(move || render_feed(&storage, document)).await;
    match rendered {
        Ok(Ok(Some(body))) => respond(&headers, body),
        Ok(Ok(None)) => not_found(),
        Ok(Err(message)) => {
            warn!(doc = %document, %message, "cannot render a calendar feed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The feed of a stored calendar document, or `None` if there is no such calendar. Blocking.
fn render_feed(storage: &Storage, document: DocumentId) -> Result<Option<String>, String> {
    let Some(stored) = storage
        .load_document(&document)
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let doc = stored.load().map_err(|e| e.to_string())?;
    Ok(is_calendar(&doc).then(|| render(document, &doc, Detail::Private)))
}

/// 200 with the body and its ETag, or 304 if the client already has it.
fn respond(headers: &HeaderMap, body: String) -> Response {
    let etag = format!(
        "\"{}\"",
        hex::encode(&Sha256::digest(body.as_bytes())[..16])
    );
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    if cached {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                "text/calendar; charset=utf-8".to_owned(),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
        ],
        body,
    )
        .into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such calendar feed\n").into_response()
}

async fn feed_path(State(storage): State<Storage>, Path(document): Path<String>) -> Response {
    let Ok(document) = document.parse::<DocumentId>() else {
        let error =
            json!({ "error": { "code": "bad_document_id", "message": "not a document id" } });
        return (StatusCode::BAD_REQUEST, Json(error)).into_response();
    };
    let token = token(storage.feed_secret(), &document);
    Json(json!({ "path": format!("/calendars/{document}.ics?token={token}") })).into_response()
}
