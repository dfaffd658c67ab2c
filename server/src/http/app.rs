//! The calendar web app at `/app/`: the files Vite builds into `app/dist/` (by
//! `scripts/build-app.sh`), embedded in the binary at compile time in every profile, so the
//! server needs no Node and no files beside it at run time, and tests serve what a release does.
//!
//! The app is a static page that syncs with this server over the WebSocket at `/`, like any
//! automerge-repo client. Files under `assets/` carry a hash of their content in their names and
//! are cached for a year; the others (`index.html`, the service worker `sw.js`) are `no-cache`:
//! revalidated with their `ETag` on every load, so a new build shows at once. None of them needs
//! a token: the page holds no data, and its sync connection presents the page's `?token=`.

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rust_embed::Embed;

/// The built app.
#[derive(Embed)]
#[folder = "../app/dist/"]
struct AppFiles;

/// Vite's folder for content-hashed files.
const HASHED: &str = "assets";
/// A content-hashed file never changes under its name.
const CACHE_HASHED: &str = "public, max-age=31536000, immutable";
/// Anything else is checked with the server before each use.
const CACHE_REVALIDATE: &str = "no-cache";

/// The app's routes: `/app` redirects to `/app/`, which is `index.html`.
pub fn router() -> Router {
    Router::new()
        .route("/app", get(to_index))
        .route("/app/", get(index))
        .route("/app/{file}", get(top_level))
        .route("/app/assets/{file}", get(hashed))
}

/// Relative, so the app also works behind a proxy that mounts the server under a path; the
/// query (a `?token=`) is kept.
async fn to_index(RawQuery(query): RawQuery) -> Redirect {
    match query {
        Some(query) => Redirect::permanent(&format!("app/?{query}")),
        None => Redirect::permanent("app/"),
    }
}

async fn index(request: HeaderMap) -> Response {
    serve("index.html", CACHE_REVALIDATE, &request)
}

async fn top_level(Path(file): Path<String>, request: HeaderMap) -> Response {
    serve(&file, CACHE_REVALIDATE, &request)
}

async fn hashed(Path(file): Path<String>, request: HeaderMap) -> Response {
    serve(&format!("{HASHED}/{file}"), CACHE_HASHED, &request)
}

/// One embedded file, or 304 if the client's copy is current, or 404.
fn serve(path: &str, cache: &'static str, request: &HeaderMap) -> Response {
    let Some(file) = AppFiles::get(path) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let headers: [(HeaderName, String); 4] = [
        (header::CONTENT_TYPE, content_type(path).to_owned()),
        (header::CACHE_CONTROL, cache.to_owned()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        (header::ETAG, etag.clone()),
    ];
    if matches_etag(request, &etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, file.data).into_response()
}

/// Whether `If-None-Match` names `etag` (weakly, as the header's comparison is) or is `*`.
fn matches_etag(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

/// The types of the files a Vite build writes.
fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, extension)| extension);
    match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_build_holds_an_index_a_worker_and_hashed_assets() {
        assert!(AppFiles::get("index.html").is_some());
        assert!(AppFiles::get("sw.js").is_some());
        let assets: Vec<_> = AppFiles::iter()
            .filter(|name| name.starts_with("assets/"))
            .collect();
        assert!(
            assets.iter().any(|name| name.ends_with(".js")),
            "{assets:?}"
        );
        assert!(
            assets.iter().any(|name| name.ends_with(".wasm")),
            "{assets:?}"
        );
    }

    #[test]
    fn if_none_match_is_compared_weakly_and_in_lists() {
        let mut request = HeaderMap::new();
        let etag = "\"abc\"";
        assert!(!matches_etag(&request, etag));
        request.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"abc\""),
        );
        assert!(matches_etag(&request, etag));
        request.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"x\""));
        assert!(!matches_etag(&request, etag));
        request.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(matches_etag(&request, etag));
    }

    #[test]
    fn built_files_get_their_types() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("assets/main-1a2b.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type("assets/automerge_wasm_bg-1a2b.wasm"),
            "application/wasm"
        );
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }
}
