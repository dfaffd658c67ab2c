//! The HTTP side of the server, beside WebSocket sync on the same port: the document API under
//! `/api/`, its OpenAPI description at `/openapi.json`, the inspector page at `/inspect`, the
//! calendar web app under `/app/` (see [`app`]), and the operational endpoints. `/healthz` and
//! `/readyz` answer 200 while sync traffic is accepted (storage is open before the listener
//! starts) and 503 once shutdown begins; `/metrics` serves Prometheus text. Those three never
//! need a token.
//!
//! The API uses the same tokens and grants as sync (see [`crate::auth`]): every `/api/` route
//! needs a token when access control is on, a document the token may not read answers 404 as
//! if it did not exist, and a write with a read-only grant answers 403. Errors are
//! `{"error": {"code", "message"}}` with a stable `code`; the OpenAPI file lists them.

pub mod api;
mod app;
mod events;

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::Metrics;
use crate::net::NetState;

/// The OpenAPI 3.1 description of every route, served as it is checked in.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The inspector: one self-contained page that reads the API.
const INSPECTOR: &str = include_str!("inspect.html");

/// The document API, the OpenAPI file, the inspector and the app, counting requests in
/// `metrics`, and the health and metrics endpoints of `net`.
pub fn router(state: api::ApiState, net: Arc<NetState>) -> Router {
    let metrics = state.metrics.clone();
    let operational = Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(health))
        .route("/metrics", get(render_metrics))
        .with_state(net);
    Router::new()
        .merge(api::router(state))
        .route("/openapi.json", get(openapi))
        .route("/inspect", get(inspector))
        .merge(app::router())
        .route_layer(middleware::from_fn_with_state(metrics, count))
        .merge(operational)
}

async fn health(State(net): State<Arc<NetState>>) -> Response {
    if net.is_accepting() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

async fn render_metrics(State(net): State<Arc<NetState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        net.metrics.render(),
    )
        .into_response()
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
