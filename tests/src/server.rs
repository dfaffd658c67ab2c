//! Runs the real `syncline-server` binary as a child process, as an operator would.
//!
//! The binary is looked up next to the test executable (`target/<profile>/syncline-server`);
//! `scripts/test.sh` builds it before the suites run. The child listens on `127.0.0.1:0`; its
//! one stdout line tells the port. Everything it logs to stderr is kept, so a test can assert on
//! warnings and print the log when it fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

/// How long a server may take to announce that it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Path of the server binary built alongside the tests.
pub fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SYNCLINE_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test executable has a path");
    // target/<profile>/deps/<test> -> target/<profile>/syncline-server
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    profile_dir.join("syncline-server")
}

/// Everything the child wrote to stderr, shared with the task that reads it.
#[derive(Debug, Clone, Default)]
pub struct LogBuffer {
    lines: Arc<Mutex<Vec<String>>>,
    grew: Arc<Notify>,
}

impl LogBuffer {
    fn push(&self, line: String) {
        self.lines.lock().expect("log buffer lock").push(line);
        self.grew.notify_waiters();
    }

    /// All lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("log buffer lock").clone()
    }

    /// Waits until a line satisfying `pred` has been logged.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let grew = self.grew.notified();
            if let Some(line) = self.lines().into_iter().find(|l| pred(l)) {
                return Ok(line);
            }
            if tokio::time::timeout_at(deadline, grew).await.is_err() {
                bail!(
                    "no matching log line within {timeout:?}; log:\n{}",
                    self.lines().join("\n")
                );
            }
        }
    }
}

/// A running server process.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// The address it listens on.
    pub addr: std::net::SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its stderr, line by line.
    pub log: LogBuffer,
}

/// Options for starting a server.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Extra TOML appended to the config file (for example a `[sync]` table).
    pub config: String,
    /// `RUST_LOG` for the child; `info` when empty.
    pub log_filter: String,
    /// Where to listen; a free loopback port when `None`. A restart passes the address of the
    /// previous run so that clients holding its URL find the new process.
    pub listen: Option<std::net::SocketAddr>,
}

impl ServerProcess {
    /// Starts the server on a free loopback port with the given data directory.
    pub async fn start(data_dir: &Path, options: &ServerOptions) -> Result<Self> {
        let config_path = data_dir.with_extension("toml");
        std::fs::write(&config_path, &options.config).context("write server config")?;
        let filter = if options.log_filter.is_empty() {
            "info"
        } else {
            &options.log_filter
        };
        let mut child = Command::new(server_binary())
            .arg("--listen")
            .arg(
                options
                    .listen
                    .map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string()),
            )
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "start {} (run `cargo build -p syncline-server` first)",
                    server_binary().display()
                )
            })?;

        let log = LogBuffer::default();
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.push(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout is piped");
        let addr = tokio::time::timeout(START_TIMEOUT, read_listen_line(stdout))
            .await
            .with_context(|| {
                format!(
                    "server did not announce itself; log:\n{}",
                    log.lines().join("\n")
                )
            })??;
        Ok(Self {
            child,
            addr,
            data_dir: data_dir.to_owned(),
            log,
        })
    }

    /// The config file the server was started with.
    pub fn config_path(&self) -> PathBuf {
        self.data_dir.with_extension("toml")
    }

    /// The value of one labelled sample, `name{labels}` (labels as written, for example
    /// `limit="frame_size"`); 0 when the server has not recorded it yet.
    pub async fn metric_with(&self, name: &str, labels: &str) -> Result<f64> {
        let text = http_get(self.addr, "/metrics").await?;
        let wanted = format!("{name}{{{labels}}} ");
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix(&wanted))
            .map(|value| value.trim().parse())
            .transpose()?
            .unwrap_or(0.0))
    }

    /// `ws://` URL of the sync endpoint.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// `http://` base URL.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("a running child has a pid")
    }

    /// Kills the process with SIGKILL and waits for it to be gone.
    pub async fn kill(mut self) -> Result<()> {
        self.child.start_kill().context("send SIGKILL")?;
        self.child.wait().await.context("reap killed server")?;
        Ok(())
    }

    /// Sends SIGTERM and waits for the exit status, at most `timeout`.
    pub async fn terminate(mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let pid = self.pid();
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .context("run kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
        let waited = tokio::time::timeout(timeout, self.child.wait()).await;
        match waited {
            Ok(status) => Ok(status?),
            Err(_) => {
                let _ = self.child.start_kill();
                bail!(
                    "server did not exit within {timeout:?} of SIGTERM; log:\n{}",
                    self.log.lines().join("\n")
                )
            }
        }
    }

    /// Resident set size of the process in bytes, from /proc.
    pub fn rss_bytes(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .context("no VmRSS line")?;
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .context("VmRSS value")?
            .parse()?;
        Ok(kib * 1024)
    }

    /// Reads one metric's value from `/metrics` (the first sample whose name matches exactly,
    /// labels ignored).
    pub async fn metric(&self, name: &str) -> Result<f64> {
        let text = http_get(self.addr, "/metrics").await?;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (key, value) = l.rsplit_once(' ')?;
                let key_name = key.split('{').next()?;
                (key_name == name).then(|| value.parse().ok()).flatten()
            })
            .with_context(|| format!("metric {name} not found in:\n{text}"))
    }
}

async fn read_listen_line(stdout: tokio::process::ChildStdout) -> Result<std::net::SocketAddr> {
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(addr) = line.strip_prefix("syncline-server listening on ") {
            return addr.trim().parse().context("parse listen address");
        }
    }
    bail!("server exited before announcing its address")
}

/// A minimal HTTP/1.1 GET over a plain TCP socket, returning the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> Result<String> {
    let (status, body) = http_get_status(addr, path).await?;
    if status != 200 {
        bail!("GET {path} answered {status}: {body}");
    }
    Ok(body)
}

/// A minimal HTTP/1.1 GET returning the status code and body.
pub async fn http_get_status(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status: u16 = response
        .split_whitespace()
        .nth(1)
        .context("status code")?
        .parse()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
