//! The HTTP API under the same load as sync peers: N clients, each with a document of its own
//! created over HTTP, each in a loop of "POST one change, wait for the answer". The answer comes
//! once the change is durable, so its latency is the same durable acknowledgement a sync peer
//! waits for.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use syncline_tests::api::ApiClient;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::load::{Level, Outcome};

/// How long creating every client's document may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Clients of a level, each holding its document, waiting for the start.
#[derive(Debug)]
pub struct Prepared {
    level: Level,
    clients: Vec<(ApiClient, String)>,
}

/// Creates one document per client (or one shared by all) over HTTP.
pub async fn prepare(api: &ApiClient, level: &Level) -> Result<Prepared> {
    let create = async {
        let mut clients = Vec::with_capacity(level.peers);
        let shared = match level.shared_doc {
            true => Some(api.create(&json!({ "n": 0 })).await?.0),
            false => None,
        };
        for _ in 0..level.peers {
            let id = match &shared {
                Some(id) => id.clone(),
                None => api.create(&json!({ "n": 0 })).await?.0,
            };
            clients.push((api.clone(), id));
        }
        anyhow::Ok(clients)
    };
    let clients = tokio::time::timeout(SETUP_TIMEOUT, create)
        .await
        .context("creating the level's documents took too long")??;
    Ok(Prepared {
        level: level.clone(),
        clients,
    })
}

impl Prepared {
    /// Starts every client at once and gathers their latencies.
    pub async fn run(self) -> Result<Outcome> {
        let started = Instant::now();
        let end = started + self.level.duration;
        let max_changes = self.level.max_changes;
        let mut tasks = JoinSet::new();
        for (index, (api, id)) in self.clients.into_iter().enumerate() {
            tasks.spawn(async move {
                let key = format!("/p{index}");
                let mut latencies = Vec::new();
                let mut last = None;
                let mut n: u64 = 0;
                while Instant::now() < end && n < max_changes {
                    n += 1;
                    let sent = Instant::now();
                    api.change(&id, json!([{ "op": "set", "path": key, "value": n }]))
                        .await?;
                    let acked = Instant::now();
                    latencies.push(acked - sent);
                    last = Some(acked);
                }
                anyhow::Ok((latencies, last))
            });
        }
        let mut outcome = Outcome {
            latencies: Vec::new(),
            elapsed: Duration::ZERO,
            errors: Vec::new(),
        };
        let mut last_ack = started;
        while let Some(joined) = tasks.join_next().await {
            match joined.map_err(anyhow::Error::from).and_then(|run| run) {
                Ok((latencies, last)) => {
                    outcome.latencies.extend(latencies);
                    last_ack = last_ack.max(last.unwrap_or(started));
                }
                Err(error) => outcome.errors.push(error),
            }
        }
        outcome.elapsed = last_ack - started;
        Ok(outcome)
    }
}
