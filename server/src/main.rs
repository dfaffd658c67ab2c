//! `syncline-server`: flags, logging and signals around [`syncline_server::Server`].

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use syncline_server::Server;
use syncline_server::config::{Args, Cli, Command, Config, LogFormat, TokenArgs};
use tracing::{error, warn};
use tracing_subscriber::EnvFilter;

/// jemalloc, with its background threads purging freed pages: with the system allocator a
/// server that once held many documents kept that memory resident after they unloaded
/// (measured: about 800 MiB after 20,000 documents, against about 90 MiB with jemalloc).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // clap prints its own refusals (and --help), so the command line comes before logging.
    let cli = Cli::parse();
    let flag_format = cli.serve.log_format.unwrap_or_default();
    match cli.command {
        Some(Command::Token(token)) => mint(&token, flag_format),
        None => serve(cli.serve, flag_format).await,
    }
}

/// `syncline-server token`: prints the token, or why it cannot be signed.
fn mint(token: &TokenArgs, format: LogFormat) -> ExitCode {
    init_logging(format);
    match token.mint() {
        Ok(token) => {
            let _ = writeln!(std::io::stdout(), "{token}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            error!("{err}");
            ExitCode::from(2)
        }
    }
}

/// Serves until SIGTERM or Ctrl-C: status 2 for a configuration that cannot be used, 1 for a
/// server that cannot start.
async fn serve(args: Args, flag_format: LogFormat) -> ExitCode {
    let config = match Config::from_args(args) {
        Ok(config) => config,
        Err(err) => {
            // The file's own `log_format` is unknown when the file is what failed.
            init_logging(flag_format);
            error!("{err}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    let stop = StopSignals::install();
    let server = match Server::start(config).await {
        Ok(server) => server,
        Err(err) => {
            error!("{err}");
            return ExitCode::FAILURE;
        }
    };
    announce(&server);
    stop.wait().await;
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// Logs go to standard error, as text lines or JSON objects; `RUST_LOG` overrides the default
/// of `info`, and one that does not parse is reported once the log is set up.
fn init_logging(format: LogFormat) {
    let (filter, unparsed) = match EnvFilter::try_from_default_env() {
        Ok(filter) => (filter, None),
        Err(err) => (
            EnvFilter::new("info"),
            std::env::var_os("RUST_LOG").map(|_| err),
        ),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(false).init(),
        // The span list carries the `conn` and `doc` spans, so each line names its peer and
        // document.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    if let Some(err) = unparsed {
        warn!(error = %err, "RUST_LOG is not a valid filter; logging at info");
    }
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

/// SIGTERM and Ctrl-C, listened for from before the server announces itself: a supervisor that
/// stops it right after the announcement must get a clean shutdown, not the default action
/// of a signal nobody listens for yet.
#[derive(Debug)]
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    #[cfg(unix)]
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind, name: &str| match signal(kind) {
            Ok(signal) => Some(signal),
            Err(err) => {
                error!(
                    error = %err,
                    signal = name,
                    "cannot listen for a stop signal; it will not stop the server cleanly"
                );
                None
            }
        };
        Self {
            term: listen(SignalKind::terminate(), "SIGTERM"),
            interrupt: listen(SignalKind::interrupt(), "Ctrl-C"),
        }
    }

    #[cfg(not(unix))]
    fn install() -> Self {
        Self {}
    }

    /// Returns once either signal arrives.
    #[cfg(unix)]
    async fn wait(mut self) {
        tokio::select! {
            () = received(&mut self.term) => {}
            () = received(&mut self.interrupt) => {}
        }
    }

    #[cfg(not(unix))]
    async fn wait(self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Waits for the signal, or for ever if it could not be listened for.
#[cfg(unix)]
async fn received(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}
