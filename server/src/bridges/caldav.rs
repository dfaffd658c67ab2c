//! The CalDAV bridge: a calendar document kept in step with a CalDAV collection.
//!
//! Each delivery brings the collection to the document's current events, one object per event
//! (`{uid}.ics`). It lists the collection (`PROPFIND`, depth 1) for the objects of this document
//! and their ETags, then creates what is missing with `If-None-Match: *`, rewrites what differs
//! with `If-Match`, and deletes what the document no longer has with `If-Match`. Whether an
//! object differs is judged on its dates and title, so a new `SEQUENCE` alone causes no write.
//! A `412` (someone changed the object in between) leads to fetching the current object: if it
//! already says what we meant, the step is done; otherwise it is written again with the fresh
//! ETag. A server that stores a normalised copy and returns no ETag on `PUT` is handled by the
//! listing at the start of the next delivery. The same UID under another name is reported as a
//! permanent failure for the row.

use std::collections::HashMap;

use reqwest::{Client, Method, StatusCode};
use syncline_shared::ical::Event;
use syncline_shared::ids::DocumentId;

use super::schedule::{Verdict, classify};

/// Where and as whom to write.
#[derive(Debug, Clone)]
pub struct Collection {
    /// The collection's URL, ending in `/`.
    pub url: String,
    /// HTTP Basic user.
    pub username: String,
    /// HTTP Basic password.
    pub password: String,
}

/// Why a delivery did not finish.
#[derive(Debug)]
pub struct Failure {
    /// What the failure means for the row.
    pub verdict: Verdict,
    /// For the operator.
    pub description: String,
}

/// One object of ours found in the collection.
#[derive(Debug, Clone)]
struct Remote {
    href: String,
    etag: Option<String>,
}

impl Collection {
    /// Brings the collection to `events`, the document's events now.
    pub async fn sync(
        &self,
        client: &Client,
        document: DocumentId,
        events: &[Event],
        render: impl Fn(&Event) -> String,
    ) -> Result<(), Failure> {
        let mut remote = self.list(client, document).await?;
        for event in events {
            let body = render(event);
            match remote.remove(&event.uid) {
                Some(found) => self.update(client, &found, event, &body).await?,
                None => self.create(client, event, &body).await?,
            }
        }
        for (_, stale) in remote {
            self.delete(client, &stale).await?;
        }
        Ok(())
    }

    fn href(&self, uid: &str) -> String {
        format!("{}{}.ics", self.url, uid)
    }

    fn request(&self, client: &Client, method: Method, url: &str) -> reqwest::RequestBuilder {
        client
            .request(method, url)
            .basic_auth(&self.username, Some(&self.password))
    }

    /// Our objects in the collection, by UID (from the file name).
    async fn list(
        &self,
        client: &Client,
        document: DocumentId,
    ) -> Result<HashMap<String, Remote>, Failure> {
        let propfind = Method::from_bytes(b"PROPFIND").expect("a valid method name");
        let body = r#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>"#;
        let response = self
            .request(client, propfind, &self.url)
            .header("depth", "1")
            .header("content-type", "application/xml")
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if status != StatusCode::MULTI_STATUS {
            return Err(refused("PROPFIND", status));
        }
        let text = response.text().await.map_err(transport)?;
        let prefix = format!("{document}-");
        let mut ours = HashMap::new();
        for (href, etag) in multistatus(&text) {
            let Some(name) = href.rsplit('/').next().and_then(|n| n.strip_suffix(".ics")) else {
                continue;
            };
            if name.starts_with(&prefix) {
                let uid = percent_decode(name);
                let href = absolute(&self.url, &href);
                ours.insert(uid, Remote { href, etag });
            }
        }
        Ok(ours)
    }

    async fn create(&self, client: &Client, event: &Event, body: &str) -> Result<(), Failure> {
        let url = self.href(&event.uid);
        let response = self
            .put(client, &url, body)
            .header("if-none-match", "*")
            .send()
            .await
            .map_err(transport)?;
        match response.status() {
            status if status.is_success() => Ok(()),
            // Created meanwhile by somebody else: compare and overwrite if needed.
            StatusCode::PRECONDITION_FAILED => self.reconcile(client, &url, event, body).await,
            StatusCode::CONFLICT => Err(Failure {
                verdict: Verdict::Permanent,
                description: format!(
                    "the server holds UID {} under another name (409)",
                    event.uid
                ),
            }),
            status => Err(refused("PUT", status)),
        }
    }

    async fn update(
        &self,
        client: &Client,
        found: &Remote,
        event: &Event,
        body: &str,
    ) -> Result<(), Failure> {
        let (current, etag) = self.fetch(client, &found.href).await?;
        if same_event(&current, event) {
            return Ok(());
        }
        self.write_if_match(client, &found.href, etag.as_deref(), event, body)
            .await
    }

    /// After a 412: fetch, and write only if the object does not already say what we meant.
    async fn reconcile(
        &self,
        client: &Client,
        url: &str,
        event: &Event,
        body: &str,
    ) -> Result<(), Failure> {
        let (current, etag) = self.fetch(client, url).await?;
        if same_event(&current, event) {
            return Ok(());
        }
        self.write_if_match(client, url, etag.as_deref(), event, body)
            .await
    }

    async fn write_if_match(
        &self,
        client: &Client,
        url: &str,
        etag: Option<&str>,
        event: &Event,
        body: &str,
    ) -> Result<(), Failure> {
        let mut request = self.put(client, url, body);
        if let Some(etag) = etag {
            request = request.header("if-match", etag);
        }
        let response = request.send().await.map_err(transport)?;
        match response.status() {
            status if status.is_success() => Ok(()),
            StatusCode::PRECONDITION_FAILED => Err(Failure {
                verdict: Verdict::Retry,
                description: format!(
                    "{} changed again while being written (412); will retry",
                    event.uid
                ),
            }),
            status => Err(refused("PUT", status)),
        }
    }

    async fn delete(&self, client: &Client, stale: &Remote) -> Result<(), Failure> {
        let mut request = self.request(client, Method::DELETE, &stale.href);
        if let Some(etag) = &stale.etag {
            request = request.header("if-match", etag);
        }
        let response = request.send().await.map_err(transport)?;
        match response.status() {
            status if status.is_success() || status == StatusCode::NOT_FOUND => Ok(()),
            StatusCode::PRECONDITION_FAILED => {
                // Edited since the listing: delete what is there now.
                let (_, etag) = self.fetch(client, &stale.href).await?;
                let fresh = Remote {
                    href: stale.href.clone(),
                    etag,
                };
                Box::pin(self.delete(client, &fresh)).await
            }
            status => Err(refused("DELETE", status)),
        }
    }

    fn put(&self, client: &Client, url: &str, body: &str) -> reqwest::RequestBuilder {
        self.request(client, Method::PUT, url)
            .header("content-type", "text/calendar; charset=utf-8")
            .body(body.to_owned())
    }

    /// The object's text and ETag.
    async fn fetch(&self, client: &Client, url: &str) -> Result<(String, Option<String>), Failure> {
        let response = self
            .request(client, Method::GET, url)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(refused("GET", status));
        }
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((response.text().await.map_err(transport)?, etag))
    }
}

/// Whether a stored object already shows `event`: same dates and title (a new `SEQUENCE`
/// alone is no reason to write).
fn same_event(stored: &str, event: &Event) -> bool {
    let unfolded = stored.replace("\r\n ", "").replace("\n ", "");
    let has = |prefix: &str, value: &str| {
        unfolded
            .lines()
            .any(|line| line.trim_end() == format!("{prefix}{value}"))
    };
    has("DTSTART;VALUE=DATE:", &event.start.replace('-', ""))
        && has("DTEND;VALUE=DATE:", &event.end.replace('-', ""))
        && has("SUMMARY:", &syncline_shared::ical::escape(&event.summary))
}

/// `(href, etag)` of every response in a WebDAV multistatus body, whatever its namespace
/// prefixes.
fn multistatus(xml: &str) -> Vec<(String, Option<String>)> {
    xml.split("response>")
        .skip(1)
        .step_by(2)
        .filter_map(|part| {
            let href = element(part, "href")?;
            let etag = element(part, "getetag").map(|e| e.replace("&quot;", "\""));
            Some((href, etag))
        })
        .collect()
}

/// The text of the first `<...name>` element in `xml`.
fn element(xml: &str, name: &str) -> Option<String> {
    let open = xml.find(&format!("{name}>"))? + name.len() + 1;
    let rest = &xml[open..];
    let text = &rest[..rest.find('<')?];
    Some(text.trim().to_owned())
}

fn absolute(collection: &str, href: &str) -> String {
    if href.starts_with("http://") || href.starts_with("https://") {
        return href.to_owned();
    }
    let origin_end = collection
        .find("://")
        .and_then(|scheme| collection[scheme + 3..].find('/').map(|p| p + scheme + 3))
        .unwrap_or(collection.len());
    format!("{}{}", &collection[..origin_end], href)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn transport(error: reqwest::Error) -> Failure {
    Failure {
        verdict: Verdict::Retry,
        description: format!("request failed: {error}"),
    }
}

fn refused(method: &str, status: StatusCode) -> Failure {
    let verdict = match status.as_u16() {
        // Radicale answers 423 under contention: retry, then re-check.
        423 => Verdict::Retry,
        code => classify(code),
    };
    Failure {
        verdict,
        description: format!("{method} answered {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multistatus_yields_hrefs_and_etags_whatever_the_prefix() {
        let xml = r#"<?xml version='1.0'?><multistatus xmlns="DAV:"><response><href>/u/c/</href><propstat><prop><getetag>"c"</getetag></prop></propstat></response><D:response><D:href>/u/c/x%40y.ics</D:href><D:propstat><D:prop><D:getetag>&quot;e1&quot;</D:getetag></D:prop></D:propstat></D:response></multistatus>"#;
        let found = multistatus(xml);
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[1],
            ("/u/c/x%40y.ics".to_owned(), Some("\"e1\"".to_owned()))
        );
        assert_eq!(percent_decode("x%40y"), "x@y");
        assert_eq!(
            absolute("http://h:1/u/c/", "/u/c/a.ics"),
            "http://h:1/u/c/a.ics"
        );
    }
}
