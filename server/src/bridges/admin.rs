//! The admin HTTP API of the bridges, on the server's port.
//!
//! - `GET /admin/bridges`: every bridge with its queue depth, chains in flight and dead rows.
//! - `POST /admin/bridges/{name}/replay[?since_ms=T][&id=ID]`: replays the dead rows (created
//!   at or after `T`; only row `ID` if given), keeping their ids.
//! - `POST /admin/bridges/{name}/pause` and `/resume`.
//!
//! With an `[auth]` section these routes need a token with `"admin": true` (401 without a valid
//! token, 403 with one that is not an operator's).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use serde::Deserialize;
use serde_json::json;

use super::Dispatcher;
use crate::auth::http::{Gate, require_admin};
use crate::net::json_error as error;

/// The routes, sharing the dispatcher, open to operators.
pub fn router(dispatcher: Dispatcher, gate: Gate) -> Router {
    Router::new()
        .route("/admin/bridges", get(list))
        .route("/admin/bridges/{name}/replay", post(replay))
        .route("/admin/bridges/{name}/pause", post(pause))
        .route("/admin/bridges/{name}/resume", post(resume))
        .route_layer(middleware::from_fn_with_state(gate, require_admin))
        .with_state(dispatcher)
}

async fn list(State(dispatcher): State<Dispatcher>) -> Response {
    Json(json!({ "bridges": dispatcher.report().await })).into_response()
}

#[derive(Debug, Deserialize)]
struct Since {
    since_ms: Option<u64>,
    id: Option<String>,
}

async fn replay(
    State(dispatcher): State<Dispatcher>,
    Path(name): Path<String>,
    Query(since): Query<Since>,
) -> Response {
    let only = since.id.as_deref();
    match dispatcher
        .replay(&name, since.since_ms.unwrap_or(0), only)
        .await
    {
        Some(Ok(replayed)) => Json(json!({ "replayed": replayed })).into_response(),
        Some(Err(message)) => error(StatusCode::INTERNAL_SERVER_ERROR, "replay_failed", &message),
        None => unknown(&name),
    }
}

async fn pause(State(dispatcher): State<Dispatcher>, Path(name): Path<String>) -> Response {
    switch(&dispatcher, &name, false)
}

async fn resume(State(dispatcher): State<Dispatcher>, Path(name): Path<String>) -> Response {
    switch(&dispatcher, &name, true)
}

fn switch(dispatcher: &Dispatcher, name: &str, enabled: bool) -> Response {
    match dispatcher.set_enabled(name, enabled) {
        true => Json(json!({ "name": name, "enabled": enabled })).into_response(),
        false => unknown(name),
    }
}

fn unknown(name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "unknown_bridge",
        &format!("no bridge is named {name:?}"),
    )
}
