//! The accept loop: hyper connections with a header-read timeout, so a client that opens a
//! socket and trickles its request (slow-loris) is dropped instead of holding the socket.
//!
//! `axum::serve` sets no timer on its connections, so it cannot time out request headers; this
//! loop is the same wiring with that timeout, the peer's address handed to handlers as
//! [`ConnectInfo`], and graceful shutdown of the plain HTTP connections. Upgraded WebSockets
//! leave hyper at the upgrade and are drained by the server's connection tracker instead.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Service;
use tracing::{debug, warn};

/// How long shutdown waits for plain HTTP requests in progress.
const HTTP_DRAIN: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    // WebSockets over HTTP/2 use the extended CONNECT method.
    builder.http2().enable_connect_protocol();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let router = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            router.clone().call(request)
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                debug!(%remote, error = %err, "http connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(HTTP_DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("http requests did not finish in time; continuing shutdown");
    }
}

/// Accepting fails when the process is out of file descriptors, among other things; going on at
/// once would spin, so pause briefly and let connections close.
async fn accept_failed(err: std::io::Error) {
    warn!(error = %err, "cannot accept a connection; pausing accepts for 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The address a request came from, set by [`serve`].
pub fn remote_addr(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}
