//! Tokens on HTTP requests: where they are read from, and the layer that guards routes.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{AuthError, Authenticator, Principal};
use crate::metrics::Metrics;

/// Decides who a request is: the one place both the WebSocket upgrade and the HTTP routes ask.
#[derive(Debug, Clone)]
pub struct Gate {
    /// `None`: access control is off and everyone is [`Principal::unrestricted`].
    authenticator: Option<Arc<Authenticator>>,
    unrestricted: Arc<Principal>,
    metrics: Arc<Metrics>,
}

impl Gate {
    /// A gate checking tokens with `authenticator`, or letting everyone in without one.
    pub fn new(authenticator: Option<Authenticator>, metrics: Arc<Metrics>) -> Self {
        Self {
            authenticator: authenticator.map(Arc::new),
            unrestricted: Arc::new(Principal::unrestricted()),
            metrics,
        }
    }

    /// Whether tokens are checked.
    pub fn is_enforcing(&self) -> bool {
        self.authenticator.is_some()
    }

    /// The principal of a request, from its `Authorization: Bearer` header or `token` query
    /// parameter (the header wins when both are present).
    pub fn identify(&self, headers: &HeaderMap, uri: &Uri) -> Result<Arc<Principal>, AuthError> {
        let Some(authenticator) = &self.authenticator else {
            return Ok(self.unrestricted.clone());
        };
        let verified = match presented_token(headers, uri) {
            Some(token) => authenticator.verify(&token),
            None => Err(AuthError::Missing),
        };
        match verified {
            Ok(principal) => Ok(Arc::new(principal)),
            Err(err) => {
                self.metrics
                    .auth_refused
                    .get_or_create(&vec![("reason", err.reason())])
                    .inc();
                Err(err)
            }
        }
    }
}

/// The token a request carries, if any.
fn presented_token(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    if let Some(token) = bearer {
        return Some(token.to_owned());
    }
    let query = uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
}

/// The answer to a request without a valid token: 401 with a `WWW-Authenticate` challenge.
pub fn unauthorized(err: &AuthError) -> Response {
    let mut response =
        crate::net::json_error(StatusCode::UNAUTHORIZED, "unauthorized", &err.to_string());
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"syncline\""),
    );
    response
}

/// The answer to a valid token that does not allow the request.
pub fn forbidden(message: &str) -> Response {
    crate::net::json_error(StatusCode::FORBIDDEN, "forbidden", message)
}

/// Route layer: refuses requests without a valid token and hands the [`Principal`] to the
/// handler as a request extension.
pub async fn require_token(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    match gate.identify(request.headers(), request.uri()) {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(err) => unauthorized(&err),
    }
}

/// Route layer for the operator routes: a valid token that carries `admin`.
pub async fn require_admin(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    match gate.identify(request.headers(), request.uri()) {
        Ok(principal) if principal.is_admin() => next.run(request).await,
        Ok(_) => forbidden("this route needs a token with \"admin\": true"),
        Err(err) => unauthorized(&err).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_from_the_header_or_the_query() {
        let mut headers = HeaderMap::new();
        let uri: Uri = "/sync?a=1&token=abc%2Edef".parse().expect("uri");
        assert_eq!(presented_token(&headers, &uri).as_deref(), Some("abc.def"));
        headers.insert(header::AUTHORIZATION, "Bearer xyz".parse().expect("value"));
        assert_eq!(presented_token(&headers, &uri).as_deref(), Some("xyz"));
        let bare: Uri = "/sync".parse().expect("uri");
        headers.clear();
        assert_eq!(presented_token(&headers, &bare), None);
    }
}
