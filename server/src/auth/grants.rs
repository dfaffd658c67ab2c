//! What a verified token allows: the subject and its per-document grants.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use syncline_shared::ids::DocumentId;

/// How much of a document a peer may touch. Ordered: `Write` includes `Read`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Nothing: the document is answered as if it did not exist.
    #[default]
    None,
    /// Receive the document and its changes; changes the peer sends are not applied.
    Read,
    /// Read, change, and create.
    Write,
}

/// A grant key naming every document.
pub const ALL_DOCUMENTS: &str = "*";
/// A grant key naming the documents the token's subject created.
pub const OWN_DOCUMENTS: &str = "own";

/// The verified holder of a token, or everyone when access control is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`; `None` when access control is off.
    subject: Option<String>,
    /// The token's `exp`, seconds since the Unix epoch.
    expires_at: Option<u64>,
    /// The grant on every document.
    all: Access,
    /// The grant on documents this subject created.
    own: Access,
    /// Grants on single documents.
    documents: HashMap<DocumentId, Access>,
    /// May use the operator routes (`/admin/...`).
    admin: bool,
}

impl Principal {
    /// Everyone, when the server runs without an `[auth]` section: every document, writable.
    pub fn unrestricted() -> Self {
        Self {
            subject: None,
            expires_at: None,
            all: Access::Write,
            own: Access::Write,
            documents: HashMap::new(),
            admin: true,
        }
    }

    /// A token holder. `grants` maps `*`, `own` or a document id to an access level.
    pub(super) fn from_grants(
        subject: String,
        expires_at: u64,
        grants: &std::collections::BTreeMap<String, Access>,
        admin: bool,
    ) -> Result<Self, String> {
        let mut principal = Self {
            subject: Some(subject),
            expires_at: Some(expires_at),
            all: Access::None,
            own: Access::None,
            documents: HashMap::new(),
            admin,
        };
        for (key, access) in grants {
            match key.as_str() {
                ALL_DOCUMENTS => principal.all = *access,
                OWN_DOCUMENTS => principal.own = *access,
                id => {
                    let id = id.strip_prefix("automerge:").unwrap_or(id);
                    let doc = id
                        .parse::<DocumentId>()
                        .map_err(|_| format!("grant key {key:?} is not *, own or a document id"))?;
                    principal.documents.insert(doc, *access);
                }
            }
        }
        Ok(principal)
    }

    /// The token's subject; `None` when access control is off.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// When the token stops being valid.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
            .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// Whether the operator routes are open to this holder.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Whether the token grants anything at all: a token that does not is refused at upgrade.
    pub fn grants_anything(&self) -> bool {
        self.admin
            || self.all > Access::None
            || self.own > Access::None
            || self.documents.values().any(|a| *a > Access::None)
    }

    /// The access to `doc`, whose creator is `creator`. For a document that does not exist yet,
    /// pass the subject that would create it: [`Principal::subject`].
    pub fn access(&self, doc: &DocumentId, creator: Option<&str>) -> Access {
        let own = match (creator, self.subject()) {
            (Some(creator), Some(subject)) if creator == subject => self.own,
            _ => Access::None,
        };
        self.without_creator(doc).max(own)
    }

    /// The access to `doc` when it does not depend on who created it, so the caller can decide
    /// without loading the document; `None` when the `own` grant could raise it.
    pub fn access_if_known(&self, doc: &DocumentId) -> Option<Access> {
        let known = self.without_creator(doc);
        (self.own <= known).then_some(known)
    }

    fn without_creator(&self, doc: &DocumentId) -> Access {
        let single = self.documents.get(doc).copied().unwrap_or_default();
        self.all.max(single)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn doc(n: u8) -> DocumentId {
        DocumentId::from_bytes([n; 16])
    }

    fn principal(grants: &[(&str, Access)]) -> Principal {
        let grants: BTreeMap<String, Access> =
            grants.iter().map(|(k, a)| ((*k).to_owned(), *a)).collect();
        Principal::from_grants("alice".into(), 0, &grants, false).expect("valid grants")
    }

    #[test]
    fn the_highest_matching_grant_wins() {
        let p = principal(&[("*", Access::Read), (&doc(1).to_string(), Access::Write)]);
        assert_eq!(p.access(&doc(1), None), Access::Write);
        assert_eq!(p.access(&doc(2), None), Access::Read);
        assert_eq!(p.access_if_known(&doc(2)), Some(Access::Read));
    }

    #[test]
    fn own_applies_only_to_the_subjects_documents() {
        let p = principal(&[("own", Access::Write)]);
        assert_eq!(p.access(&doc(1), Some("alice")), Access::Write);
        assert_eq!(p.access(&doc(1), Some("bob")), Access::None);
        assert_eq!(p.access(&doc(1), None), Access::None);
        assert_eq!(p.access_if_known(&doc(1)), None, "depends on the creator");
    }

    #[test]
    fn grant_keys_are_checked() {
        let grants = BTreeMap::from([("nonsense".to_owned(), Access::Read)]);
        let err = Principal::from_grants("a".into(), 0, &grants, false).expect_err("bad key");
        assert!(err.contains("nonsense"), "{err}");
        let url = format!("automerge:{}", doc(3));
        let p = principal(&[(&url, Access::Read)]);
        assert_eq!(p.access(&doc(3), None), Access::Read);
        assert!(!principal(&[("*", Access::None)]).grants_anything());
    }
}
