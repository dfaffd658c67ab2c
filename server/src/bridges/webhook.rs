//! Webhook requests as the Standard Webhooks convention shapes them.
//!
//! Every request carries `webhook-id` (the delivery row's id, the same on every retry, which is
//! what a receiver deduplicates on), `webhook-timestamp` (Unix seconds of this attempt) and
//! `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, once per
//! configured secret, space-separated, so a secret can be rotated by configuring the new one
//! beside the old until every receiver has switched. `Idempotency-Key` repeats the id for
//! receivers that follow that convention instead.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A signing secret, written `whsec_<base64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a secret was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The text does not start with `whsec_`.
    #[error("a webhook secret starts with whsec_")]
    Prefix,
    /// The rest is not base64.
    #[error("a webhook secret is whsec_ followed by base64")]
    Base64,
    /// Too short or too long to be a good HMAC key.
    #[error("a webhook secret holds 24 to 64 bytes, not {0}")]
    Length(usize),
}

impl std::str::FromStr for Secret {
    type Err = SecretError;

    fn from_str(text: &str) -> Result<Self, SecretError> {
        let encoded = text.strip_prefix("whsec_").ok_or(SecretError::Prefix)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| SecretError::Base64)?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(SecretError::Length(bytes.len()));
        }
        Ok(Secret(bytes))
    }
}

/// The `webhook-signature` header value for one attempt.
pub fn signature(secrets: &[Secret], id: &str, timestamp: u64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&secret.0)
                .expect("HMAC-SHA256 takes a key of any length");
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// An independent implementation of the convention accepts our signature, with either of
    /// two rotated secrets.
    #[test]
    fn signatures_verify_with_the_standard_webhooks_crate() {
        let old: Secret = SECRET.parse().expect("valid secret");
        let new: Secret = "whsec_dGhpcyBpcyBhIG5ldyBzZWNyZXQgZm9yIHRlc3Rz"
            .parse()
            .expect("valid secret");
        let body = br#"{"type":"document.updated"}"#;
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let header = signature(&[old, new], "msg_1", timestamp, body);

        for secret in [SECRET, "whsec_dGhpcyBpcyBhIG5ldyBzZWNyZXQgZm9yIHRlc3Rz"] {
            let webhook = standardwebhooks::Webhook::new(secret).expect("secret");
            let mut headers = http::HeaderMap::new();
            headers.insert("webhook-id", "msg_1".parse().expect("header"));
            headers.insert(
                "webhook-timestamp",
                timestamp.to_string().parse().expect("header"),
            );
            headers.insert("webhook-signature", header.parse().expect("header"));
            webhook
                .verify(body, &headers)
                .expect("the signature verifies");
        }
    }

    #[test]
    fn secrets_are_checked() {
        assert_eq!("abc".parse::<Secret>(), Err(SecretError::Prefix));
        assert_eq!("whsec_!!".parse::<Secret>(), Err(SecretError::Base64));
        assert_eq!("whsec_YWJj".parse::<Secret>(), Err(SecretError::Length(3)));
    }
}
