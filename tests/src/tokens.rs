//! Access tokens for suites that run the server with an `[auth]` section.
//!
//! HS256 tokens are minted by the server binary's own `token` command, the way a developer
//! would; EdDSA tokens are signed here with a fixed test key pair, since the server only ever
//! holds the public half.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::server::server_binary;

/// The HS256 secret of [`AUTH_CONFIG`].
pub const SECRET: &str = "syncline-test-secret-0123456789abcdef";

/// An Ed25519 test key pair; the public half is in [`AUTH_CONFIG`].
pub const ED25519_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIOtij95MbnU6zwT5Yk8icsD1TvzJjaPwQY5O8uMbO3NO
-----END PRIVATE KEY-----
";

/// An `[auth]` section accepting HS256 tokens signed with [`SECRET`] and EdDSA tokens signed
/// with [`ED25519_PRIVATE_PEM`], with no clock leeway so expiry tests are exact.
pub const AUTH_CONFIG: &str = "[auth]
secret = \"syncline-test-secret-0123456789abcdef\"
ed25519_public_keys = [\"\"\"
-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAbaIp9NflIlMAuIzLCbzHlWD4ilAhU77umIVORwDHhtU=
-----END PUBLIC KEY-----
\"\"\"]
leeway_s = 0
";

/// What a token grants, for [`mint`].
#[derive(Debug, Clone, Default)]
pub struct Grant {
    /// Document ids, `*` or `own`, readable.
    pub read: Vec<String>,
    /// Document ids, `*` or `own`, writable.
    pub write: Vec<String>,
    /// Operator routes.
    pub admin: bool,
    /// Seconds until expiry.
    pub ttl_seconds: u64,
}

impl Grant {
    /// Read access to the given documents (ids, `*` or `own`) for an hour.
    pub fn read(docs: &[&str]) -> Self {
        Self {
            read: docs.iter().map(|d| (*d).to_owned()).collect(),
            ttl_seconds: 3600,
            ..Self::default()
        }
    }

    /// Write access to the given documents for an hour.
    pub fn write(docs: &[&str]) -> Self {
        Self {
            write: docs.iter().map(|d| (*d).to_owned()).collect(),
            ttl_seconds: 3600,
            ..Self::default()
        }
    }
}

/// Mints an HS256 token for `subject` with `syncline-server token --config <config>`.
pub fn mint(config: &Path, subject: &str, grant: &Grant) -> Result<String> {
    let mut command = std::process::Command::new(server_binary());
    command
        .arg("token")
        .arg("--config")
        .arg(config)
        .arg("--sub")
        .arg(subject)
        .arg("--ttl-seconds")
        .arg(grant.ttl_seconds.to_string());
    for doc in &grant.read {
        command.arg("--read").arg(doc);
    }
    for doc in &grant.write {
        command.arg("--write").arg(doc);
    }
    if grant.admin {
        command.arg("--admin");
    }
    let output = command.output().context("run syncline-server token")?;
    ensure!(
        output.status.success(),
        "syncline-server token failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// Signs arbitrary claims with `alg` and `key` (an HS256 secret or an Ed25519 private key PEM),
/// for tokens the `token` command would never make.
pub fn sign(claims: &serde_json::Value, alg: Algorithm, key: &[u8]) -> Result<String> {
    let key = match alg {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(key)?,
        _ => EncodingKey::from_secret(key)?,
    };
    Ok(jsonwebtoken::encode(&Header::new(alg), claims, &key)?)
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// `url` with `?token=` appended, as a browser passes it.
pub fn with_token(url: &str, token: &str) -> String {
    format!("{url}?token={token}")
}
