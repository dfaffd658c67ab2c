//! A webhook receiver on loopback that misbehaves on purpose.
//!
//! It speaks just enough HTTP/1.1 for one request per connection: it reads the request, asks
//! the test's behaviour what to do, records the request, and answers (or does not). A request
//! is an *effect* when the receiver accepted it, even if its answer then came too late for the
//! sender (a slow reply): exactly the case where the sender retries and the receiver must
//! deduplicate by `webhook-id`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the receiver does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer with this status (2xx accepts the request).
    Status(u16),
    /// Answer 429 with this `Retry-After` value.
    Throttle(String),
    /// Accept the request, but answer 200 only after this long (past the sender's timeout).
    Slow(Duration),
    /// Close the connection without answering.
    Drop,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `webhook-id`.
    pub id: String,
    /// Every header, by lower-case name.
    pub headers: HashMap<String, String>,
    /// The raw body.
    pub body: Vec<u8>,
    /// The body as JSON (null if it is not JSON).
    pub json: Value,
    /// When it arrived.
    pub at: Instant,
    /// Whether the receiver accepted it (its effect happened).
    pub accepted: bool,
    /// What the receiver did.
    pub reply: Reply,
}

type Behaviour = Box<dyn FnMut(&Delivery) -> Reply + Send>;

/// A running receiver; stops when dropped.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    arrived: Arc<Notify>,
    behaviour: Arc<Mutex<Behaviour>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Receiver {
    /// Starts on a free loopback port, answering as `behaviour` says.
    pub async fn start(behaviour: impl FnMut(&Delivery) -> Reply + Send + 'static) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let behaviour: Arc<Mutex<Behaviour>> = Arc::new(Mutex::new(Box::new(behaviour)));
        let shared = (deliveries.clone(), arrived.clone(), behaviour.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (deliveries, arrived, behaviour) = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, &deliveries, &arrived, &behaviour).await;
                });
            }
        });
        Ok(Self {
            addr,
            deliveries,
            arrived,
            behaviour,
            task,
        })
    }

    /// The URL to configure as the bridge's target.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Replaces the behaviour for the requests to come.
    pub fn behave(&self, behaviour: impl FnMut(&Delivery) -> Reply + Send + 'static) {
        *self.behaviour.lock().expect("receiver lock") = Box::new(behaviour);
    }

    /// Every request so far, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().expect("receiver lock").clone()
    }

    /// Waits until `done` holds for the requests so far; fails after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> Result<Vec<Delivery>> {
        let deadline = Instant::now() + timeout;
        loop {
            let arrived = self.arrived.notified();
            let deliveries = self.deliveries();
            if done(&deliveries) {
                return Ok(deliveries);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                bail!(
                    "receiver condition not met within {timeout:?}; {} requests",
                    deliveries.len()
                );
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut socket: TcpStream,
    deliveries: &Mutex<Vec<Delivery>>,
    arrived: &Notify,
    behaviour: &Mutex<Behaviour>,
) -> Result<()> {
    let (headers, body) = read_request(&mut socket).await?;
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut delivery = Delivery {
        id: headers.get("webhook-id").cloned().unwrap_or_default(),
        headers,
        body,
        json,
        at: Instant::now(),
        accepted: false,
        reply: Reply::Drop,
    };
    let reply = (behaviour.lock().expect("receiver lock"))(&delivery);
    delivery.accepted = matches!(reply, Reply::Slow(_) | Reply::Status(200..=299));
    delivery.reply = reply.clone();
    deliveries.lock().expect("receiver lock").push(delivery);
    arrived.notify_waiters();

    let head = match reply {
        Reply::Drop => return Ok(()),
        Reply::Status(status) => format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n"),
        Reply::Throttle(after) => {
            format!("HTTP/1.1 429 Too Many\r\nretry-after: {after}\r\ncontent-length: 0\r\n")
        }
        Reply::Slow(delay) => {
            tokio::time::sleep(delay).await;
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n".to_owned()
        }
    };
    socket
        .write_all(format!("{head}connection: close\r\n\r\n").as_bytes())
        .await?;
    Ok(())
}

async fn read_request(socket: &mut TcpStream) -> Result<(HashMap<String, String>, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before the request head ended");
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .context("no content-length")?
        .parse()?;
    let mut body = buffer[end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed inside the body");
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok((headers, body))
}
