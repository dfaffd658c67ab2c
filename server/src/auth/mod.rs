//! Access control: signed tokens, the grants they carry, and where requests present them.
//!
//! A token is a JWT signed with HS256 (a shared secret) or EdDSA (Ed25519 public keys), with
//! these claims:
//!
//! ```json
//! { "sub": "alice", "exp": 1767225600,
//!   "docs": { "*": "read", "own": "write", "4NMNnkMhL8jXrdJ9jamS58PAVdXu": "write" },
//!   "admin": false }
//! ```
//!
//! `docs` maps `*` (every document), `own` (documents this subject created) or a document id to
//! `read` or `write`; the highest matching grant applies. `admin` opens the operator routes.
//! `iss` and `aud` are checked when the `[auth]` section names them.
//!
//! Peers present the token as `?token=` on the WebSocket URL (browsers cannot set headers on a
//! WebSocket) or as `Authorization: Bearer`; HTTP clients do the same. Without an `[auth]`
//! section every request is [`Principal::unrestricted`].

mod grants;
pub mod http;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub use grants::{ALL_DOCUMENTS, Access, OWN_DOCUMENTS, Principal};

/// The shortest HS256 secret accepted: 256 bits, as RFC 7518 requires for HS256.
pub const MIN_SECRET_BYTES: usize = 32;

/// The `[auth]` section, resolved.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// The HS256 secret.
    pub secret: Option<Vec<u8>>,
    /// Ed25519 public keys, PEM (`-----BEGIN PUBLIC KEY-----`), for EdDSA tokens.
    pub ed25519_public_keys: Vec<Vec<u8>>,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    pub audience: Option<String>,
    /// Clock tolerance for `exp` and `nbf`.
    pub leeway: Duration,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("ed25519_public_keys", &self.ed25519_public_keys.len())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// The `[auth]` table as written in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthFile {
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    #[serde(default)]
    ed25519_public_keys: Vec<String>,
    #[serde(default)]
    ed25519_public_key_files: Vec<PathBuf>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_s: Option<u64>,
}

impl AuthFile {
    /// Reads the files it names and checks the keys.
    pub(crate) fn resolve(self) -> Result<AuthConfig, String> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        let secret = match (self.secret, self.secret_file) {
            (Some(_), Some(_)) => {
                return Err("set auth.secret or auth.secret_file, not both".into());
            }
            (Some(secret), None) => Some(secret.into_bytes()),
            (None, Some(path)) => Some(trim_line_end(read(&path)?)),
            (None, None) => None,
        };
        let mut keys: Vec<Vec<u8>> = self
            .ed25519_public_keys
            .into_iter()
            .map(String::into_bytes)
            .collect();
        for path in &self.ed25519_public_key_files {
            keys.push(read(path)?);
        }
        let config = AuthConfig {
            secret,
            ed25519_public_keys: keys,
            issuer: self.issuer,
            audience: self.audience,
            leeway: Duration::from_secs(self.leeway_s.unwrap_or(5)),
        };
        Authenticator::new(&config)?;
        Ok(config)
    }
}

fn trim_line_end(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    bytes
}

/// The claims of a Syncline token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who holds the token; documents it creates are recorded as theirs.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch. Required.
    pub exp: u64,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Grants: `*`, `own` or a document id, to `read` or `write`.
    #[serde(default)]
    pub docs: BTreeMap<String, Access>,
    /// Opens the operator routes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

/// Why a token was refused. The text is what the peer is told; it never includes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token in the query or the `Authorization` header.
    #[error("a token is required: pass ?token= or an Authorization: Bearer header")]
    Missing,
    /// Not a JWT, or a header or claim that does not decode.
    #[error("the token is malformed: {0}")]
    Malformed(String),
    /// Signed with an algorithm this server has no key for.
    #[error("the token's algorithm is not accepted by this server")]
    Algorithm,
    /// The signature does not verify with any configured key.
    #[error("the token's signature is invalid")]
    Signature,
    /// Past its `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before its `nbf`.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Wrong `iss` or `aud`.
    #[error("the token was issued by or for someone else")]
    WrongParty,
    /// A well-signed token whose grants do not parse.
    #[error("the token's grants are invalid: {0}")]
    Grants(String),
}

impl AuthError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed(_) => "malformed",
            AuthError::Algorithm => "algorithm",
            AuthError::Signature => "signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongParty => "wrong_party",
            AuthError::Grants(_) => "grants",
        }
    }
}

/// Verifies tokens against the configured keys.
pub struct Authenticator {
    leeway: u64,
    secret: Option<DecodingKey>,
    ed25519: Vec<DecodingKey>,
    hs256: Validation,
    eddsa: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("hs256", &self.secret.is_some())
            .field("ed25519_keys", &self.ed25519.len())
            .finish()
    }
}

impl Authenticator {
    /// Checks the keys; an unusable key is an error naming it.
    pub fn new(config: &AuthConfig) -> Result<Self, String> {
        let secret = match &config.secret {
            Some(secret) if secret.len() < MIN_SECRET_BYTES => {
                return Err(format!(
                    "auth.secret must be at least {MIN_SECRET_BYTES} bytes (it is {})",
                    secret.len()
                ));
            }
            Some(secret) => Some(DecodingKey::from_secret(secret).map_err(|e| e.to_string())?),
            None => None,
        };
        let ed25519 = config
            .ed25519_public_keys
            .iter()
            .enumerate()
            .map(|(n, pem)| {
                DecodingKey::from_ed_pem(pem)
                    .map_err(|e| format!("auth Ed25519 public key {} is not usable: {e}", n + 1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if secret.is_none() && ed25519.is_empty() {
            return Err("[auth] needs a secret (HS256) or Ed25519 public keys (EdDSA)".into());
        }
        let validation = |alg| {
            let mut v = Validation::new(alg);
            v.leeway = config.leeway.as_secs();
            v.validate_nbf = true;
            v.set_required_spec_claims(&["exp", "sub"]);
            match &config.issuer {
                Some(issuer) => v.set_issuer(&[issuer]),
                None => v.iss = None,
            }
            match &config.audience {
                Some(audience) => v.set_audience(&[audience]),
                None => v.validate_aud = false,
            }
            v
        };
        Ok(Self {
            leeway: config.leeway.as_secs(),
            secret,
            ed25519,
            hs256: validation(Algorithm::HS256),
            eddsa: validation(Algorithm::EdDSA),
        })
    }

    /// Verifies a token and returns what it allows.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(classify)?;
        let (keys, validation): (Vec<&DecodingKey>, _) = match header.alg {
            Algorithm::HS256 => (self.secret.iter().collect(), &self.hs256),
            Algorithm::EdDSA => (self.ed25519.iter().collect(), &self.eddsa),
            _ => return Err(AuthError::Algorithm),
        };
        if keys.is_empty() {
            return Err(AuthError::Algorithm);
        }
        let mut refusal = AuthError::Signature;
        for key in keys {
            match jsonwebtoken::decode::<Claims>(token, key, validation) {
                Ok(data) => {
                    // A live connection is cut at the first second the server would refuse
                    // the token: the check passes while `exp >= now - leeway`.
                    let claims = data.claims;
                    let until = claims.exp.saturating_add(self.leeway).saturating_add(1);
                    return Principal::from_grants(claims.sub, until, &claims.docs, claims.admin)
                        .map_err(AuthError::Grants);
                }
                Err(err) => {
                    refusal = classify(err);
                    // Another key may verify; any other failure holds for every key.
                    if refusal != AuthError::Signature {
                        return Err(refusal);
                    }
                }
            }
        }
        Err(refusal)
    }
}

fn classify(err: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::InvalidSignature => AuthError::Signature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => AuthError::WrongParty,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => AuthError::Algorithm,
        _ => AuthError::Malformed(err.to_string()),
    }
}

/// Signs `claims` with an HS256 secret: the development command `syncline-server token`, and
/// tests. Production tokens come from the application's own sign-in service.
pub fn mint_hs256(secret: &[u8], claims: &Claims) -> Result<String, String> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "the secret must be at least {MIN_SECRET_BYTES} bytes"
        ));
    }
    let key = EncodingKey::from_secret(secret).map_err(|e| e.to_string())?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).map_err(|e| e.to_string())
}

/// Seconds since the Unix epoch, for `exp`.
pub fn unix_now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn config() -> AuthConfig {
        AuthConfig {
            secret: Some(SECRET.to_vec()),
            ..AuthConfig::default()
        }
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "alice".into(),
            exp,
            nbf: None,
            iss: None,
            aud: None,
            docs: BTreeMap::from([("*".to_owned(), Access::Read)]),
            admin: false,
        }
    }

    #[test]
    fn a_minted_token_verifies() {
        let auth = Authenticator::new(&config()).expect("valid config");
        let token = mint_hs256(SECRET, &claims(unix_now() + 60)).expect("mint");
        let principal = auth.verify(&token).expect("valid token");
        assert_eq!(principal.subject(), Some("alice"));
    }

    #[test]
    fn bad_tokens_are_refused_with_their_reason() {
        let auth = Authenticator::new(&config()).expect("valid config");
        let expired = mint_hs256(SECRET, &claims(unix_now() - 60)).expect("mint");
        assert_eq!(auth.verify(&expired), Err(AuthError::Expired));
        let other = mint_hs256(
            b"another secret, also 32 bytes lo",
            &claims(unix_now() + 60),
        )
        .expect("mint");
        assert_eq!(auth.verify(&other), Err(AuthError::Signature));
        assert!(matches!(
            auth.verify("not.a.jwt"),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(auth.verify(""), Err(AuthError::Malformed(_))));
        // An unsigned token ("alg": "none") is never accepted.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhIiwiZXhwIjo5OTk5OTk5OTk5fQ.";
        assert!(auth.verify(none).is_err());
    }

    #[test]
    fn short_secrets_and_empty_sections_are_refused() {
        let short = AuthConfig {
            secret: Some(b"short".to_vec()),
            ..AuthConfig::default()
        };
        assert!(Authenticator::new(&short).is_err());
        assert!(Authenticator::new(&AuthConfig::default()).is_err());
    }
}
