//! A small client for the server's HTTP API, as a script would use it: JSON in, status and JSON
//! out, with an optional bearer token.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

/// Bound on one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The HTTP API of one server.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// One answer: the status code and the body as JSON (`Value::Null` when it is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The body, parsed.
    pub body: Value,
}

impl Answer {
    /// The stable error code of an error answer, `""` if there is none.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl ApiClient {
    /// A client for the server at `base` (`http://127.0.0.1:port`), without a token. Redirects
    /// are answers like any other, not followed, so a status is the route's own.
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client with a timeout builds");
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token: None,
            http,
        }
    }

    /// The same client presenting `token` as a bearer token.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Answer> {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Answer> {
        self.send(
            reqwest::Method::POST,
            path,
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    /// `POST path` with a body sent as it is, for bodies that are not valid JSON.
    pub async fn post_raw(&self, path: &str, body: &[u8]) -> Result<Answer> {
        self.send(reqwest::Method::POST, path, Some(body.to_vec()))
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Answer> {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// Any method, for checking routes against their description.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status().as_u16();
        let is_stream = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
        if is_stream {
            // An event stream never ends by itself; its status is the answer.
            return Ok(Answer {
                status,
                body: Value::Null,
            });
        }
        let bytes = response.bytes().await.context("read the body")?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }

    /// Creates a document from `root`; its id and heads. Fails unless the answer is 201.
    pub async fn create(&self, root: &Value) -> Result<(String, Vec<String>)> {
        let answer = self.post("/api/documents", root).await?;
        anyhow::ensure!(answer.status == 201, "create answered {answer:?}");
        let id = answer.body["id"].as_str().context("id")?.to_owned();
        Ok((id, heads_of(&answer.body)))
    }

    /// Applies `ops` to a document; the heads after it. Fails unless the answer is 200.
    pub async fn change(&self, id: &str, ops: Value) -> Result<Vec<String>> {
        let path = format!("/api/documents/{id}/changes");
        let answer = self.post(&path, &serde_json::json!({ "ops": ops })).await?;
        anyhow::ensure!(answer.status == 200, "change answered {answer:?}");
        Ok(heads_of(&answer.body))
    }

    /// The document's current JSON state. Fails unless the answer is 200.
    pub async fn state(&self, id: &str) -> Result<Value> {
        let answer = self.get(&format!("/api/documents/{id}")).await?;
        anyhow::ensure!(answer.status == 200, "read answered {answer:?}");
        Ok(answer.body["state"].clone())
    }
}

/// The `heads` array of an answer, as strings.
pub fn heads_of(body: &Value) -> Vec<String> {
    body["heads"]
        .as_array()
        .map(|heads| {
            heads
                .iter()
                .filter_map(|h| h.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
