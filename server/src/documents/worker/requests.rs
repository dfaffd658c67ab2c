//! The HTTP API's requests, as the document worker carries them out: reads answer at once from
//! the worker's document (which holds nothing that is not durable, since every turn ends with
//! its commit), writes answer once the turn's commit is done.

use automerge::transaction::CommitOptions;
use syncline_shared::session::{ConnectionId, DocumentSession};
use tracing::{info, warn};

use super::{Worker, now_ms, now_s};
use crate::auth::{Access, Principal};
use crate::documents::WorkerContext;
use crate::documents::api::{self, ApiError, ApiReply, ApiRequest, ChangeRequest, ErrorKind};
use crate::storage::Lifecycle;

impl Worker {
    /// Sends the HTTP API answers that waited for this turn's commit.
    pub(super) fn answer_replies(&mut self, durable: bool) {
        // Every turn comes here; most have nothing to answer.
        if self.replies.is_empty() {
            return;
        }
        let heads = api::heads_json(&self.session.heads());
        for (reply, mut answer) in std::mem::take(&mut self.replies) {
            let result = match durable {
                true => {
                    if let Some(fields) = answer.as_object_mut() {
                        fields.insert("heads".into(), heads.clone().into());
                    }
                    Ok(answer)
                }
                false => Err(ApiError::new(
                    ErrorKind::Unavailable,
                    "the change could not be stored; nothing was applied",
                )),
            };
            let _ = reply.send(result);
        }
    }

    /// Carries out an HTTP API request. Reads answer at once (the worker's document holds
    /// nothing that is not durable, since every turn ends with its commit); writes answer after
    /// this turn's commit. A principal that may not read the document is told it does not exist.
    pub(super) fn handle_api(
        &mut self,
        principal: &Principal,
        request: ApiRequest,
        reply: ApiReply,
        context: &WorkerContext,
    ) {
        if self.deleted {
            let _ = reply.send(Err(ApiError::deleted()));
            return;
        }
        if let ApiRequest::Create { root } = request {
            return self.api_create(principal, &root, reply);
        }
        let access = self.access_for(principal);
        if !self.session.exists() || access == Access::None {
            let _ = reply.send(Err(ApiError::not_found()));
            return;
        }
        let writes = matches!(request, ApiRequest::Change(_) | ApiRequest::Delete);
        if writes && access < Access::Write {
            self.metrics.access_denied("read_only");
            let message = "the token may read this document but not change it";
            let _ = reply.send(Err(ApiError::new(ErrorKind::Forbidden, message)));
            return;
        }
        let doc = self.session.document();
        let answer = match request {
            ApiRequest::Read { heads } => api::read(doc, heads.as_deref()),
            ApiRequest::Describe { log } => {
                Ok(serde_json::json!({ "changes": api::describe(doc, &log) }))
            }
            ApiRequest::Diff { from, to } => api::diff(doc, &from, to.as_deref()),
            ApiRequest::Change(change) => return self.api_change(change, reply),
            ApiRequest::Delete => return self.api_delete(reply, context),
            ApiRequest::Create { .. } => unreachable!("handled above"),
        };
        let _ = reply.send(answer);
    }

    fn api_create(&mut self, principal: &Principal, root: &serde_json::Value, reply: ApiReply) {
        if self.session.exists() {
            let message = "a document with this id exists";
            let _ = reply.send(Err(ApiError::new(ErrorKind::Conflict, message)));
            return;
        }
        if principal.access(&self.id, principal.subject()) < Access::Write {
            self.metrics.access_denied("read_only");
            let message = "the token may not create documents";
            let _ = reply.send(Err(ApiError::new(ErrorKind::Forbidden, message)));
            return;
        }
        let options = CommitOptions::default().with_time(now_s());
        let created = self
            .session
            .change(options, |tx| syncline_shared::json::create_root(tx, root));
        let effects = match created {
            Ok(((), effects)) if !effects.is_empty() => effects,
            Ok(_) => {
                let message = "a document needs at least one key";
                let _ = reply.send(Err(ApiError::new(ErrorKind::InvalidChange, message)));
                return;
            }
            Err(err) => {
                let error = ApiError::new(ErrorKind::InvalidChange, err.to_string());
                let _ = reply.send(Err(error));
                return;
            }
        };
        self.apply(effects);
        let creator = principal.subject().map(str::to_owned);
        self.pending.created_at_ms = Some(now_ms());
        self.pending.created_by.clone_from(&creator);
        self.created_by = creator;
        info!(
            by = principal.subject().unwrap_or("-"),
            "document created over HTTP"
        );
        let answer = serde_json::json!({ "id": self.id.to_string(), "url": self.id.url() });
        self.replies.push((reply, answer));
    }

    fn api_change(&mut self, change: ChangeRequest, reply: ApiReply) {
        if let Some(expected) = &change.expected_heads {
            let current = api::heads_json(&self.session.heads());
            let expected = match api::parse_heads(expected) {
                Ok(expected) => api::heads_json(&expected),
                Err(err) => {
                    let _ = reply.send(Err(err));
                    return;
                }
            };
            if expected != current {
                let mut conflict = ApiError::new(
                    ErrorKind::Conflict,
                    "the document changed since the expected heads; read it again and retry",
                );
                conflict.heads = Some(current);
                let _ = reply.send(Err(conflict));
                return;
            }
        }
        let mut options = CommitOptions::default().with_time(now_s());
        if let Some(message) = change.message {
            options = options.with_message(message);
        }
        let ops = change.ops;
        let effects = match self.session.change(options, |tx| api::apply_ops(tx, &ops)) {
            Ok(((), effects)) => effects,
            Err(err) => {
                let error = ApiError::new(ErrorKind::InvalidChange, err.to_string());
                let _ = reply.send(Err(error));
                return;
            }
        };
        let made = !effects.is_empty();
        self.apply(effects);
        let change = match made {
            // A change of this replica's own depends on every head, so it is the only head.
            true => self.session.heads().first().map(ToString::to_string),
            false => None,
        };
        self.replies
            .push((reply, serde_json::json!({ "change": change })));
    }

    fn api_delete(&mut self, reply: ApiReply, context: &WorkerContext) {
        self.deleted = true;
        context.services.importer.register(self.id, Vec::new());
        self.imports = Some(Vec::new());
        self.pending.lifecycle = Some(Lifecycle::Delete);
        let conns: Vec<ConnectionId> = self.peers.keys().copied().collect();
        for conn in conns {
            let effect = self.session.detach(conn);
            self.apply(effect.into_iter().collect());
            self.send_unavailable(conn);
            if let Some(peer) = self.peers.get_mut(&conn) {
                peer.access = Access::None;
            }
        }
        // No heads from now on: watchers of the document learn it is gone.
        self.session = DocumentSession::absent();
        self.metrics.documents_deleted.inc();
        warn!("document deleted; its id is refused from now on");
        let answer = serde_json::json!({ "id": self.id.to_string(), "deleted": true });
        self.replies.push((reply, answer));
    }
}
