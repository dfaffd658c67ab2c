//! `samod-bench-server PORT DATA_DIR`: the samod crate's repo behind an axum WebSocket endpoint
//! at `/`, on 127.0.0.1 only, storing documents on disk in automerge-repo's layout. As the
//! reference JavaScript server does, it syncs only documents a peer asks for. Prints
//! `samod-bench-server listening on ADDR` once it accepts connections; SIGTERM or Ctrl-C stop it.

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;
use axum::routing::get;
use samod::{AcceptorHandle, ShareConfig};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .and_then(|p| p.parse().ok())
        .expect("usage: samod-bench-server PORT DATA_DIR");
    let data_dir = args.next().expect("usage: samod-bench-server PORT DATA_DIR");

    let repo = samod::Repo::build_tokio()
        .with_storage(samod::storage::TokioFilesystemStorage::new(&data_dir))
        .with_share_policy(ShareConfig::read_write().with_announce(false))
        .load()
        .await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("a bound address");
    let url = url::Url::parse(&format!("ws://{addr}/")).expect("a valid URL");
    let acceptor = repo.make_acceptor(url).expect("the repo is running");
    let app = axum::Router::new()
        .route("/", get(upgrade))
        .with_state(acceptor);
    println!("samod-bench-server listening on {addr}");
    axum::serve(listener, app)
        .with_graceful_shutdown(stopped())
        .await
        .expect("serve");
    repo.stop().await;
}

async fn upgrade(State(acceptor): State<AcceptorHandle>, ws: WebSocketUpgrade) -> Response {
    // The repo runs the connection from here on; the handle is only for watching it.
    ws.on_upgrade(move |socket| async move {
        let _ = acceptor.accept_axum(socket, None);
    })
}

async fn stopped() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("listen for SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
