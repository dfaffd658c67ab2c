//! The HTTP side of the server, beside WebSocket sync on the same port: the document API under
//! `/api/`, its OpenAPI description at `/openapi.json`, and the inspector page at `/inspect`.
//!
//! The API uses the same tokens and grants as sync (see [`crate::auth`]): every `/api/` route
//! needs a token when access control is on, a document the token may not read answers 404 as
//! if it did not exist, and a write with a read-only grant answers 403. Errors are
//! `{"error": {"code", "message"}}` with a stable `code`; the OpenAPI file lists them.

pub mod api;
mod events;

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::Metrics;

/// The OpenAPI 3.1 description of every route, served as it is checked in.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The inspector: one self-contained page that reads the API.
const INSPECTOR: &str = include_str!("inspect.html");

/// The document API, the OpenAPI file and the inspector, counting requests in `metrics`.
pub fn router(state: api::ApiState) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .merge(api::router(state))
        .route("/openapi.json", get(openapi))
        .route("/inspect", get(inspector))
        .route_layer(middleware::from_fn_with_state(metrics, count))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn inspector() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INSPECTOR,
    )
        .into_response()
}

/// Counts each answered request by its route pattern (never the raw path, so ids do not
/// become label values) and status.
async fn count(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!("http", %method, %route);
    let response = tracing::Instrument::instrument(next.run(request), span).await;
    let status = response.status().as_u16().to_string();
    metrics
        .http_requests
        .get_or_create(&vec![
            ("method", method),
            ("route", route),
            ("status", status),
        ])
        .inc();
    response
}
