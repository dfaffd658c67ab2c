//! iCalendar feed export: `GET /calendars/{document}.ics?token=...`.
//!
//! Booking sites poll a listing's exported feed on their own schedule, so the feed must be
//! cheap to poll and stable: it answers `ETag` (a hash of the body) and `304 Not Modified` for
//! a matching `If-None-Match`, and renders the durable state deterministically, with UIDs that
//! never change. It shows only that nights are taken, never guests. Access needs the
//! document's token, an HMAC of its id under a secret kept in storage, so feed URLs survive
//! restarts and cannot be guessed from a document id; a wrong token answers the same 404 as a
//! missing document, so ids cannot be probed. The feed token is the route's access control, with
//! or without `[auth]`: calendar apps fetch a URL and can present nothing else.
//!
//! `GET /admin/calendars/{document}/feed` gives the feed's path with its token. With `[auth]` it
//! needs a token that can read the document (or an operator's); to anyone else it answers 404, as
//! for a document that does not exist.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router, middleware};
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

use crate::auth::http::{Gate, require_token};
use crate::auth::{Access, Principal};
use crate::net::json_error;
use crate::storage::Storage;

/// The routes, reading from `storage`; `gate` guards the feed-path route.
pub fn router(storage: Storage, gate: Gate) -> Router {
    let guarded = Router::new()
        .route("/admin/calendars/{document}/feed", get(feed_path))
        .route_layer(middleware::from_fn_with_state(gate, require_token));
    Router::new()
        .route("/calendars/{file}", get(feed))
        .merge(guarded)
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

async fn feed_path(
    State(storage): State<Storage>,
    Extension(principal): Extension<std::sync::Arc<Principal>>,
    Path(document): Path<String>,
) -> Response {
    let Ok(document) = document.parse::<DocumentId>() else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_document_id",
            "not a document id",
        );
    };
    if !may_read(&storage, &principal, document).await {
        return json_error(StatusCode::NOT_FOUND, "not_found", "no such document");
    }
    let token = token(storage.feed_secret(), &document);
    Json(json!({ "path": format!("/calendars/{document}.ics?token={token}") })).into_response()
}

/// Whether `principal` may read `document` (operators may read every document).
async fn may_read(storage: &Storage, principal: &Principal, document: DocumentId) -> bool {
    if principal.is_admin() {
        return true;
    }
    if let Some(access) = principal.access_if_known(&document) {
        return access >= Access::Read;
    }
    let storage = storage.clone();
    let meta = tokio::task::spawn_blocking(move || storage.document_meta(&document)).await;
    let creator = match meta {
        Ok(Ok(Some(meta))) => meta.created_by,
        Ok(Ok(None)) => return false,
        Ok(Err(err)) => {
            warn!(doc = %document, error = %err, "cannot read a document's creator");
            return false;
        }
        Err(_) => return false,
    };
    principal.access(&document, creator.as_deref()) >= Access::Read
}
