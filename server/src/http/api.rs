//! The document API: JSON over HTTP for servers and scripts that do not speak the sync
//! protocol.
//!
//! | route | does |
//! |---|---|
//! | `POST /api/documents` | creates a document from a JSON object |
//! | `GET /api/documents` | lists documents the token may read, in id order, paged |
//! | `GET /api/documents/{id}` | the document as JSON, now or `?heads=h1,h2` |
//! | `POST /api/documents/{id}/changes` | applies `set`, `delete` and `insert` operations |
//! | `GET /api/documents/{id}/history` | the event log, one entry per change, paged |
//! | `GET /api/documents/{id}/diff` | patches between `?from=` and `?to=` heads |
//! | `GET /api/documents/{id}/events` | server-sent events: the heads after every commit |
//! | `DELETE /api/documents/{id}` | deletes the document, for ever |
//!
//! Every document request goes to the document's worker, the same task that serves its peers,
//! so a change made here is one more change of the document: it is durable before it is
//! answered, and it reaches every connected peer like a peer's own.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router, middleware};
use serde_json::{Value, json};
use syncline_shared::ids::DocumentId;
use tokio_util::sync::CancellationToken;

use crate::auth::http::{Gate, require_token};
use crate::auth::{Access, Principal};
use crate::documents::Registry;
use crate::documents::api::{
    ApiError, ApiRequest, ChangeRequest, ErrorKind, check_depth, parse_heads,
};
use crate::metrics::Metrics;
use crate::net::json_error;
use crate::storage::Storage;

/// Most documents or history entries one page may hold.
pub const MAX_PAGE: usize = 1000;

/// Page size when the request names none.
pub const DEFAULT_PAGE: usize = 100;

/// What the API routes share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// Loaded documents, whose workers answer document requests.
    pub registry: Registry,
    /// For listing documents and reading the event log.
    pub storage: Storage,
    /// Who a request is.
    pub gate: Gate,
    /// Server-wide metrics.
    pub metrics: Arc<Metrics>,
    /// Cancelled at shutdown; ends event streams.
    pub shutdown: CancellationToken,
    /// Largest request body accepted (`sync.max_message_bytes`, as for a sync message).
    pub max_body_bytes: usize,
}

/// The `/api/` routes, each behind the token check.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/documents", get(list).post(create))
        .route("/api/documents/{id}", get(read).delete(delete))
        .route("/api/documents/{id}/changes", axum::routing::post(change))
        .route("/api/documents/{id}/history", get(history))
        .route("/api/documents/{id}/diff", get(diff))
        .route("/api/documents/{id}/events", get(super::events::stream))
        .route_layer(middleware::from_fn_with_state(
            state.gate.clone(),
            require_token,
        ))
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state)
}

/// A refusal, rendered as the JSON error body (boxed: a response is large, and refusals are
/// the exception).
#[derive(Debug)]
pub(super) struct Refusal(Box<Response>);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl From<Response> for Refusal {
    fn from(response: Response) -> Self {
        Self(Box::new(response))
    }
}

impl From<ApiError> for Refusal {
    fn from(err: ApiError) -> Self {
        let (status, code) = match err.kind {
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "document_not_found"),
            ErrorKind::Deleted => (StatusCode::GONE, "document_deleted"),
            ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::InvalidChange => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_change"),
            ErrorKind::UnknownHeads => (StatusCode::BAD_REQUEST, "unknown_heads"),
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        let Some(heads) = err.heads else {
            return json_error(status, code, &err.message).into();
        };
        let body = json!({ "error": { "code": code, "message": err.message, "heads": heads } });
        (status, Json(body)).into_response().into()
    }
}

fn bad_request(code: &str, message: &str) -> Refusal {
    json_error(StatusCode::BAD_REQUEST, code, message).into()
}

fn internal(message: &str) -> Refusal {
    tracing::error!(%message, "HTTP API request failed");
    json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", message).into()
}

type Answer = Result<Response, Refusal>;

/// A document id from the path.
pub(super) fn document_id(text: &str) -> Result<DocumentId, Refusal> {
    let text = text.strip_prefix("automerge:").unwrap_or(text);
    DocumentId::from_bs58check(text).map_err(|err| {
        bad_request(
            "invalid_document_id",
            &format!("{text:?} is not a document id: {err}"),
        )
    })
}

/// The query string's parameters; a repeated name keeps its last value.
fn params(query: Option<&str>) -> HashMap<String, String> {
    query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// A comma-separated list of heads, or `None` when the parameter is absent.
fn heads_param(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<Vec<automerge::ChangeHash>>, Refusal> {
    let Some(text) = params.get(name) else {
        return Ok(None);
    };
    let texts: Vec<String> = text
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(Some(parse_heads(&texts)?))
}

/// A page size: at least 1, at most [`MAX_PAGE`].
fn limit_param(params: &HashMap<String, String>) -> Result<usize, Refusal> {
    let Some(text) = params.get("limit") else {
        return Ok(DEFAULT_PAGE);
    };
    match text.parse::<usize>() {
        Ok(limit) if (1..=MAX_PAGE).contains(&limit) => Ok(limit),
        _ => Err(bad_request(
            "invalid_query",
            &format!("limit must be a whole number from 1 to {MAX_PAGE}, not {text:?}"),
        )),
    }
}

/// A request body as JSON of type `T`; a body over the limit is refused as JSON too.
fn body<T: serde::de::DeserializeOwned>(
    bytes: Result<Bytes, BytesRejection>,
) -> Result<T, Refusal> {
    let bytes = bytes.map_err(|rejection| -> Refusal {
        let status = rejection.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            _ => "invalid_body",
        };
        json_error(status, code, &rejection.body_text()).into()
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|err| bad_request("invalid_json", &format!("the body is not valid: {err}")))
}

/// Runs blocking storage work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, crate::storage::StorageError> + Send + 'static,
) -> Result<T, Refusal> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(internal(&format!("storage read failed: {err}"))),
        Err(err) => Err(internal(&format!("storage task failed: {err}"))),
    }
}

/// The document's bookkeeping row, refusing documents that do not exist, that the principal
/// may not read (the same 404, so ids cannot be probed), or that were deleted. Answering from
/// storage first keeps requests for unknown ids from loading a worker each.
pub(super) async fn readable(
    state: &ApiState,
    principal: &Principal,
    id: DocumentId,
) -> Result<(), Refusal> {
    let storage = state.storage.clone();
    let meta = blocking(move || storage.document_meta(&id)).await?;
    let Some(meta) = meta else {
        return Err(ApiError::new(ErrorKind::NotFound, "no such document").into());
    };
    if principal.access(&id, meta.created_by.as_deref()) == Access::None {
        return Err(ApiError::new(ErrorKind::NotFound, "no such document").into());
    }
    if meta.deleted_at_ms.is_some() {
        return Err(ApiError::new(ErrorKind::Deleted, "the document was deleted").into());
    }
    Ok(())
}

/// Sends a request to the document's worker, once storage says it may exist for `principal`.
async fn ask(
    state: &ApiState,
    principal: Arc<Principal>,
    id: DocumentId,
    request: ApiRequest,
) -> Result<Value, Refusal> {
    readable(state, &principal, id).await?;
    let handle = state.registry.open(id);
    Ok(handle.request(principal, request).await?)
}

async fn create(
    State(state): State<ApiState>,
    Extension(principal): Extension<Arc<Principal>>,
    bytes: Result<Bytes, BytesRejection>,
) -> Answer {
    let root: Value = body(bytes)?;
    if !root.is_object() {
        return Err(ApiError::new(
            ErrorKind::InvalidChange,
            "the body must be a JSON object: the document's root",
        )
        .into());
    }
    check_depth(None, &root)?;
    let id = DocumentId::random_from(rand::random());
    let handle = state.registry.open(id);
    let created = handle
        .request(principal, ApiRequest::Create { root })
        .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn list(
    State(state): State<ApiState>,
    Extension(principal): Extension<Arc<Principal>>,
    RawQuery(query): RawQuery,
) -> Answer {
    let params = params(query.as_deref());
    let limit = limit_param(&params)?;
    let after = params.get("after").map(|a| document_id(a)).transpose()?;
    let storage = state.storage.clone();
    let listing = blocking(move || {
        let scan = limit.saturating_mul(10).saturating_add(1000);
        storage.list_documents(after.as_ref(), limit, scan, |id, meta| {
            principal.access(id, meta.created_by.as_deref()) > Access::None
        })
    })
    .await?;
    let next = match listing.complete {
        true => None,
        false => listing.last.map(|id| id.to_string()),
    };
    let documents: Vec<Value> = listing
        .documents
        .iter()
        .map(|(id, meta)| {
            let peers = state.registry.peers_of(id);
            json!({
                "id": id.to_string(),
                "url": id.url(),
                "created_at_ms": meta.created_at_ms,
                "changes": meta.change_count,
                "bytes": meta.bytes_logged,
                "loaded": peers.is_some(),
                "peers": peers.unwrap_or(0),
            })
        })
        .collect();
    Ok(Json(json!({ "documents": documents, "next": next })).into_response())
}

async fn read(
    State(state): State<ApiState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let id = document_id(&id)?;
    let heads = heads_param(&params(query.as_deref()), "heads")?;
    let mut answer = ask(&state, principal, id, ApiRequest::Read { heads }).await?;
    if let Some(fields) = answer.as_object_mut() {
        fields.insert("id".into(), id.to_string().into());
        fields.insert("url".into(), id.url().into());
    }
    Ok(Json(answer).into_response())
}

async fn change(
    State(state): State<ApiState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Answer {
    let id = document_id(&id)?;
    let change: ChangeRequest = body(bytes)?;
    if change.ops.is_empty() {
        return Err(bad_request(
            "invalid_json",
            "ops is empty: name at least one operation",
        ));
    }
    change.check_depth()?;
    let answer = ask(&state, principal, id, ApiRequest::Change(change)).await?;
    Ok(Json(answer).into_response())
}

async fn history(
    State(state): State<ApiState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let id = document_id(&id)?;
    let params = params(query.as_deref());
    let limit = limit_param(&params)?;
    let after = match params.get("after") {
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            bad_request(
                "invalid_query",
                &format!("after must be a log position (a whole number), not {text:?}"),
            )
        })?),
        None => None,
    };
    readable(&state, &principal, id).await?;
    let storage = state.storage.clone();
    let log = blocking(move || storage.change_log_page(&id, after, limit)).await?;
    let next = (log.len() == limit)
        .then(|| log.last().map(|entry| entry.seq))
        .flatten();
    let handle = state.registry.open(id);
    let mut answer = handle
        .request(principal, ApiRequest::Describe { log })
        .await?;
    if let Some(fields) = answer.as_object_mut() {
        fields.insert("next".into(), next.into());
    }
    Ok(Json(answer).into_response())
}

async fn diff(
    State(state): State<ApiState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let id = document_id(&id)?;
    let params = params(query.as_deref());
    let from = heads_param(&params, "from")?.unwrap_or_default();
    let to = heads_param(&params, "to")?;
    let answer = ask(&state, principal, id, ApiRequest::Diff { from, to }).await?;
    Ok(Json(answer).into_response())
}

async fn delete(
    State(state): State<ApiState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Answer {
    let id = document_id(&id)?;
    let answer = ask(&state, principal, id, ApiRequest::Delete).await?;
    Ok(Json(answer).into_response())
}
