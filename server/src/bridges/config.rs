//! `[[bridge]]` tables: what each outbound target is and which documents it wants.

use std::time::Duration;

use serde::Deserialize;
use syncline_shared::ids::DocumentId;

use super::schedule::RetryPolicy;
use super::webhook::Secret;

/// One `[[bridge]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BridgeFile {
    name: String,
    kind: String,
    url: String,
    documents: DocumentsFile,
    timeout_ms: Option<u64>,
    /// One secret, or several while rotating (each request is signed with all).
    secret: Option<SecretsFile>,
    mode: Option<String>,
    username: Option<String>,
    password: Option<String>,
    /// Rows delivered at once across the bridge's documents.
    concurrency: Option<usize>,
    /// Requests per second, at most.
    rate_per_second: Option<f64>,
    retry_quick_attempts: Option<u32>,
    retry_base_ms: Option<u64>,
    retry_cap_ms: Option<u64>,
    retry_tail_ms: Option<Vec<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DocumentsFile {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SecretsFile {
    One(String),
    Many(Vec<String>),
}

/// Which documents a bridge receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentFilter {
    /// `"*"`: every document.
    All,
    /// A list of document ids.
    Ids(Vec<DocumentId>),
    /// Documents whose root `type` is this, such as `"calendar"`.
    Type(String),
}

impl DocumentFilter {
    /// Whether a document with this id and root `type` matches.
    pub fn matches(&self, id: &DocumentId, kind: Option<&str>) -> bool {
        match self {
            DocumentFilter::All => true,
            DocumentFilter::Ids(ids) => ids.contains(id),
            DocumentFilter::Type(wanted) => kind == Some(wanted.as_str()),
        }
    }
}

/// What a webhook delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The newest state; rows not attempted yet coalesce into one.
    State,
    /// Every change batch, in log order.
    Events,
}

impl Mode {
    /// Whether rows carry change batches.
    pub fn is_events(self) -> bool {
        self == Mode::Events
    }
}

/// A resolved bridge.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Unique name, the key of its rows and metrics.
    pub name: String,
    /// Where requests go.
    pub url: String,
    /// Which documents it receives.
    pub documents: DocumentFilter,
    /// How long one request may take.
    pub timeout: Duration,
    /// Signing secrets, newest first.
    pub secrets: Vec<Secret>,
    /// State or events.
    pub mode: Mode,
    /// Rows in flight at once.
    pub concurrency: usize,
    /// Requests per second, if limited.
    pub rate_per_second: Option<f64>,
    /// When to retry.
    pub retry: RetryPolicy,
    /// Set for a CalDAV bridge: the collection the calendar is kept in step with.
    pub caldav: Option<super::caldav::Collection>,
}

/// Why a bridge table was refused.
#[derive(Debug, thiserror::Error)]
#[error("bridge {name:?}: {why}")]
pub struct BridgeConfigError {
    name: String,
    why: String,
}

impl BridgeFile {
    /// Checks and resolves the table.
    pub(crate) fn resolve(self) -> Result<BridgeConfig, BridgeConfigError> {
        let fail = |why: String| BridgeConfigError {
            name: self.name.clone(),
            why,
        };
        if self.name.is_empty() || self.name.contains('/') {
            return Err(fail("a bridge needs a name without '/'".to_owned()));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(fail(format!(
                "url {:?} must be http:// or https://",
                self.url
            )));
        }
        let (secrets, caldav) = match self.kind.as_str() {
            "webhook" => (self.webhook_secrets().map_err(fail)?, None),
            "caldav" => (Vec::new(), Some(self.collection().map_err(fail)?)),
            other => {
                return Err(fail(format!(
                    "unknown kind {other:?}; use \"webhook\" or \"caldav\""
                )));
            }
        };
        let documents = match &self.documents {
            DocumentsFile::One(all) if all == "*" => DocumentFilter::All,
            DocumentsFile::One(kind) => DocumentFilter::Type(kind.clone()),
            DocumentsFile::Many(ids) => DocumentFilter::Ids(
                ids.iter()
                    .map(|id| {
                        id.parse()
                            .map_err(|e| fail(format!("document {id:?}: {e}")))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        let mode = match (self.mode.as_deref(), &caldav) {
            (None | Some("state"), _) => Mode::State,
            (Some("events"), None) => Mode::Events,
            (Some("events"), Some(_)) => {
                return Err(fail(
                    "a caldav bridge keeps state: mode must be \"state\"".into(),
                ));
            }
            (Some(other), _) => {
                return Err(fail(format!("mode {other:?}: use \"state\" or \"events\"")));
            }
        };
        let defaults = RetryPolicy::default();
        let ms = Duration::from_millis;
        let retry = RetryPolicy {
            quick_attempts: self.retry_quick_attempts.unwrap_or(defaults.quick_attempts),
            base: self.retry_base_ms.map_or(defaults.base, ms),
            cap: self.retry_cap_ms.map_or(defaults.cap, ms),
            tail: self.retry_tail_ms.as_ref().map_or(defaults.tail, |steps| {
                steps.iter().copied().map(ms).collect()
            }),
        };
        if self.rate_per_second.is_some_and(|rate| rate <= 0.0) {
            return Err(fail("rate_per_second must be above 0".into()));
        }
        Ok(BridgeConfig {
            name: self.name.clone(),
            url: self.url.clone(),
            documents,
            timeout: ms(self.timeout_ms.unwrap_or(15_000).max(1)),
            secrets,
            mode,
            concurrency: self.concurrency.unwrap_or(8).max(1),
            rate_per_second: self.rate_per_second,
            retry,
            caldav,
        })
    }

    fn webhook_secrets(&self) -> Result<Vec<Secret>, String> {
        if self.username.is_some() || self.password.is_some() {
            return Err("username and password belong to caldav bridges".into());
        }
        let secrets = match &self.secret {
            None => return Err("a webhook bridge needs a secret (whsec_...)".into()),
            Some(SecretsFile::One(one)) => vec![one.clone()],
            Some(SecretsFile::Many(many)) => many.clone(),
        };
        let secrets = secrets
            .iter()
            .map(|s| s.parse::<Secret>().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        match secrets.is_empty() {
            true => Err("secret lists no secret".into()),
            false => Ok(secrets),
        }
    }

    fn collection(&self) -> Result<super::caldav::Collection, String> {
        if self.secret.is_some() {
            return Err("a caldav bridge takes username and password, not a secret".into());
        }
        let (Some(username), Some(password)) = (&self.username, &self.password) else {
            return Err("a caldav bridge needs username and password".into());
        };
        let mut url = self.url.clone();
        if !url.ends_with('/') {
            url.push('/');
        }
        Ok(super::caldav::Collection {
            url,
            username: username.clone(),
            password: password.clone(),
        })
    }
}
