//! `syncline-server`: flags, logging and signals around [`syncline_server::Server`].

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use syncline_server::Server;
use syncline_server::config::{Cli, Command, Config};
use tracing::error;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    if let Some(Command::Token(token)) = cli.command {
        return match token.mint() {
            Ok(token) => {
                let _ = writeln!(std::io::stdout(), "{token}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                error!("{err}");
                ExitCode::from(2)
            }
        };
    }
    let config = match Config::from_args(cli.serve) {
        Ok(config) => config,
        Err(err) => {
            error!("{err}");
            return ExitCode::from(2);
        }
    };
    let server = match Server::start(config).await {
        Ok(server) => server,
        Err(err) => {
            error!("{err}");
            return ExitCode::FAILURE;
        }
    };
    announce(&server);
    wait_for_signal().await;
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// Logs go to standard error; `RUST_LOG` overrides the default of `info`.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

/// One line on standard output once the server accepts connections, so scripts and tests can
/// wait for it and learn the port when listening on port 0.
fn announce(server: &Server) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "syncline-server listening on {}",
        server.local_addr()
    );
    let _ = stdout.flush();
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                error!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
