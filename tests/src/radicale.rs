//! A real CalDAV server for the suites: Radicale, from the virtualenv the test command makes.
//!
//! Each [`Radicale`] is its own process on a free loopback port with its own storage folder and
//! one user, stopped by its process id when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

/// How long Radicale may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The user every test calendar belongs to.
pub const USER: &str = "host";
/// Its password.
pub const PASSWORD: &str = "secret";

/// A running Radicale.
#[derive(Debug)]
pub struct Radicale {
    child: Child,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
}

/// The Radicale executable: `SYNCLINE_RADICALE_BIN`, else the virtualenv in the target dir.
pub fn radicale_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SYNCLINE_RADICALE_BIN") {
        return PathBuf::from(path);
    }
    crate::server::server_binary()
        .parent()
        .and_then(Path::parent)
        .map(|target| target.join("radicale-venv/bin/radicale"))
        .unwrap_or_default()
}

impl Radicale {
    /// Starts Radicale with storage in `dir`.
    pub async fn start(dir: &Path) -> Result<Self> {
        let binary = radicale_binary();
        if !binary.is_file() {
            bail!(
                "no Radicale at {}: run ./scripts/test.sh, which installs it in a virtualenv",
                binary.display()
            );
        }
        let addr = free_port()?;
        std::fs::create_dir_all(dir)?;
        let users = dir.join("users");
        std::fs::write(&users, format!("{USER}:{PASSWORD}\n"))?;
        let config = dir.join("config");
        std::fs::write(
            &config,
            format!(
                "[server]\nhosts = {addr}\n[auth]\ntype = htpasswd\nhtpasswd_filename = {}\n\
                 htpasswd_encryption = plain\n[rights]\ntype = owner_only\n[storage]\n\
                 filesystem_folder = {}\n[logging]\nlevel = warning\n",
                users.display(),
                dir.join("collections").display()
            ),
        )?;
        let child = Command::new(&binary)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if tokio::time::Instant::now() > deadline {
                bail!("Radicale did not listen on {addr} within {START_TIMEOUT:?}");
            }
            // Polling the port until the process listens, bounded by the deadline.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, addr })
    }

    /// The URL of the calendar collection `name` of the test user.
    pub fn collection(&self, name: &str) -> String {
        format!("http://{}/{USER}/{name}/", self.addr)
    }

    /// The child's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

fn free_port() -> Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}
