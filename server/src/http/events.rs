//! `GET /api/documents/{id}/events`: server-sent events announcing each durable version.
//!
//! The first event carries the heads at the moment of subscribing; each later one the heads
//! after a commit that changed them (a burst of commits may be announced once, with the newest
//! heads: a watcher reads the document then anyway). The stream ends with a `deleted` event when
//! the document is deleted, with an `expired` event when the request's token expires (reconnect
//! with a fresh one), and quietly when the server shuts down. While a stream is open the
//! document stays loaded.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde_json::json;

use super::api::{ApiState, Refusal, document_id, readable};
use crate::auth::Principal;
use crate::documents::DocumentHandle;
use crate::documents::api::heads_json;

/// How often an idle stream sends a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(super) async fn stream(
    State(state): State<ApiState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let id = document_id(&id)?;
    readable(&state, &principal, id).await?;
    let handle = state.registry.open(id);
    let until = Until {
        shutdown: state.shutdown.clone(),
        expires: principal.expires_at(),
    };
    let events = heads_events(handle, until);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// What ends a stream besides the document's worker stopping.
struct Until {
    shutdown: tokio_util::sync::CancellationToken,
    expires: Option<std::time::SystemTime>,
}

impl Until {
    /// Resolves when the token expires; never without one.
    async fn expired(&self) {
        match self.expires {
            Some(at) => {
                let left = at
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default();
                tokio::time::sleep(left).await;
            }
            None => std::future::pending().await,
        }
    }
}

/// Where a stream is: about to send the first event, following, or done.
enum Phase {
    First,
    Following,
    Done,
}

fn heads_events(
    handle: DocumentHandle,
    until: Until,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let heads = handle.watch_heads();
    stream::unfold(
        (handle, heads, until, Phase::First),
        |(handle, mut heads, until, phase)| async move {
            match phase {
                Phase::Done => return None,
                Phase::First => {}
                Phase::Following => {
                    tokio::select! {
                        changed = heads.changed() => changed.ok()?,
                        () = handle.stopped() => return None,
                        () = until.shutdown.cancelled() => return None,
                        () = until.expired() => {
                            let event = Event::default().event("expired").data("{}");
                            return Some((Ok(event), (handle, heads, until, Phase::Done)));
                        }
                    }
                }
            }
            let current = heads.borrow_and_update().clone();
            // Only a deleted document has no heads once it exists.
            let (event, next) = match (current.is_empty(), phase) {
                (true, Phase::Following) => ("deleted", Phase::Done),
                _ => ("heads", Phase::Following),
            };
            let data = json!({ "heads": heads_json(&current) }).to_string();
            let event = Event::default().event(event).data(data);
            Some((Ok(event), (handle, heads, until, next)))
        },
    )
}
