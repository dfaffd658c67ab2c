//! The admin HTTP API of the bridges, on the server's port.
//!
//! - `GET /admin/bridges`: every bridge with its queue depth, chains in flight and dead rows.
//! - `POST /admin/bridges/{name}/replay[?since_ms=T][&id=ID]`: replays the dead rows (created
//!   at or after `T`; only row `ID` if given), keeping their ids.
//! - `POST /admin/bridges/{name}/pause` and `/resume`.
//!
//! Limit: open to whoever reaches the port, like the rest of the server until authorization
//! exists; keep the default loopback address or put it behind an authenticating proxy.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::Dispatcher;

/// The routes, sharing the dispatcher.
pub fn router(dispatcher: Dispatcher) -> Router {
    Router::new()
        .route("/admin/bridges", get(list))
        .route("/admin/bridges/{name}/replay", post(replay))
        .route("/admin/bridges/{name}/pause", post(pause))
        .route("/admin/bridges/{name}/resume", post(resume))
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

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}
