//! The native client against the real server binary: offline edits, restarts of either side,
//! the token provider, and the CLI's exit behaviour.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use automerge::transaction::Transactable;
use automerge::{AutomergeError, ObjType, ROOT, ReadDoc};
use serde_json::{Value, json};
use syncline_client::{Client, ClientConfig, Document, TokenProvider};
use syncline_shared::json::create_root;
use syncline_tests::native::{fast_config, settle, sorted};
use syncline_tests::server::{ServerOptions, ServerProcess, server_binary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bound of every single wait in this suite.
const WAIT: Duration = Duration::from_secs(20);

fn fast() -> ClientConfig {
    fast_config()
}

fn listen_on(addr: Option<std::net::SocketAddr>) -> ServerOptions {
    ServerOptions {
        log_filter: "warn".to_owned(),
        listen: addr,
        ..ServerOptions::default()
    }
}

/// Waits until both replicas hold the same version and a server holds it too.
async fn converge(a: &Document, b: &Document) -> Result<()> {
    settle(&[a, b], WAIT, || true).await
}

fn items_of(doc: &Value) -> Vec<String> {
    doc["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Two clients edit one document while the server is down (distinct keys, the same key, list
/// inserts); once it is back both converge on the same heads with every edit present.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_edits_of_two_clients_converge_when_the_server_returns() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");

    // 1. With the server up, A creates the document and B fetches it.
    let server = ServerProcess::start(&data, &listen_on(None)).await?;
    let (addr, url) = (server.addr, server.ws_url());
    let a = Client::open(dir.path().join("a"), fast()).await?;
    let b = Client::open(dir.path().join("b"), fast()).await?;
    a.connect(&url)?;
    b.connect(&url)?;
    let doc_a = a
        .create(|tx| create_root(tx, &json!({ "items": ["start"] })))
        .await?;
    doc_a.wait_acknowledged(WAIT).await?;
    let doc_b = b.find(doc_a.id(), WAIT).await?;

    // 2. The server stops; both edit offline.
    ensure!(
        server.terminate(WAIT).await?.success(),
        "server exit status"
    );
    doc_a.change(|tx| edit(tx, "a", &[(1, "a1")])).await?;
    doc_b
        .change(|tx| edit(tx, "b", &[(1, "b1"), (0, "b0")]))
        .await?;
    let offline_edits = [doc_a.heads(), doc_b.heads()].concat();
    ensure!(
        doc_a.to_json().get("from_b").is_none(),
        "A saw B's edit offline"
    );

    // 3. The server returns on the same address; both clients reconnect by themselves.
    let server = ServerProcess::start(&data, &listen_on(Some(addr))).await?;
    converge(&doc_a, &doc_b).await?;

    // 4. Same heads, same content, and every edit is there; the key both wrote shows one of
    //    the two (the later-stamped, or Automerge's choice within the same second).
    assert_eq!(sorted(doc_a.heads()), sorted(doc_b.heads()));
    let state = doc_a.to_json();
    assert_eq!(state, doc_b.to_json());
    assert_eq!(state["from_a"], json!(true));
    assert_eq!(state["from_b"], json!(true));
    let mut items = items_of(&state);
    items.sort();
    assert_eq!(items, ["a1", "b0", "b1", "start"]);
    assert!(
        state["same"] == "a" || state["same"] == "b",
        "same: {}",
        state["same"]
    );
    for hash in &offline_edits {
        for doc in [&doc_a, &doc_b] {
            assert!(
                doc.read(|d| d.get_change_by_hash(hash).is_some()),
                "{hash} missing"
            );
        }
    }

    a.close().await;
    b.close().await;
    ensure!(
        server.terminate(WAIT).await?.success(),
        "server exit status"
    );
    Ok(())
}

/// One offline edit: a key of its own, the shared key, and list inserts.
fn edit(
    tx: &mut automerge::transaction::Transaction<'_>,
    who: &str,
    inserts: &[(usize, &str)],
) -> Result<(), AutomergeError> {
    tx.put(ROOT, format!("from_{who}"), true)?;
    tx.put(ROOT, "same", who)?;
    let Some((_, items)) = tx.get(ROOT, "items")? else {
        return Err(AutomergeError::InvalidOp(ObjType::List));
    };
    for (index, value) in inserts {
        tx.insert(&items, *index, *value)?;
    }
    Ok(())
}

/// The server is killed and restarted while a client keeps editing: the client reconnects by
/// itself and every one of its changes reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_during_editing_loses_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let mut server = Some(ServerProcess::start(&data, &listen_on(None)).await?);
    let (addr, url) = server
        .as_ref()
        .map(|s| (s.addr, s.ws_url()))
        .context("server")?;

    // 1. A connected client edits continuously; the server dies at change 40 and returns at 80.
    let client = Client::open(dir.path().join("editor"), fast()).await?;
    client.connect(&url)?;
    let doc = client
        .create(|tx| create_root(tx, &json!({ "log": [] })))
        .await?;
    for i in 0..120_i64 {
        doc.change(|tx| {
            let (_, log) = tx.get(ROOT, "log")?.ok_or(AutomergeError::Fail)?;
            let len = tx.length(&log);
            tx.insert(&log, len, i)
        })
        .await?;
        if i == 40 {
            server.take().context("server")?.kill().await?;
        }
        if i == 80 {
            server = Some(ServerProcess::start(&data, &listen_on(Some(addr))).await?);
        }
    }
    doc.wait_acknowledged(WAIT)
        .await
        .with_context(|| format!("status: {:?}, heads {:?}", doc.status(), doc.heads()))?;

    // 2. A fresh client fetches the document from the server: all 120 entries, in order.
    let reader = Client::open(dir.path().join("reader"), fast()).await?;
    reader.connect(&url)?;
    let copy = reader.find(doc.id(), WAIT).await?;
    converge(&doc, &copy).await?;
    let expected: Vec<Value> = (0..120).map(|i| json!(i)).collect();
    assert_eq!(copy.to_json()["log"], Value::Array(expected));

    client.close().await;
    reader.close().await;
    server.context("server")?.kill().await?;
    Ok(())
}

/// Edits made by one process with no server stay in the store; a later process that only
/// connects, without opening the document, uploads them, and another client receives them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_made_offline_by_an_earlier_process_are_uploaded() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = dir.path().join("laptop");
    let store_arg = store.to_str().context("utf-8 path")?;

    // 1. Process 1 (the CLI, no server): create a document and change it; both exit 0.
    let created = cli(&["--store", store_arg, "create", "--json", r#"{"draft": 1}"#]).await?;
    let url = created.stdout.trim().to_owned();
    cli(&["--store", store_arg, "set", &url, "draft", "2"]).await?;
    cli(&["--store", store_arg, "set", &url, "notes", r#"["offline"]"#]).await?;

    // 2. Process 2 (this one) opens the same store and connects; it never names the document.
    let server = ServerProcess::start(&dir.path().join("server"), &listen_on(None)).await?;
    let laptop = Client::open(&store, fast()).await?;
    laptop.connect(&server.ws_url())?;

    // 3. Another client asks the server for the document (which keeps the request open if the
    //    upload has not happened yet) and receives it with both offline edits.
    let phone = Client::open(dir.path().join("phone"), fast()).await?;
    phone.connect(&server.ws_url())?;
    let id = url
        .parse::<syncline_shared::ids::AutomergeUrl>()?
        .document_id;
    let copy = phone.document(id).await?;
    let mut versions = copy.subscribe();
    while copy.to_json() != json!({ "draft": 2, "notes": ["offline"] }) {
        tokio::time::timeout(WAIT, versions.next())
            .await
            .with_context(|| format!("the phone holds {}", copy.to_json()))?;
    }

    laptop.close().await;
    phone.close().await;
    ensure!(
        server.terminate(WAIT).await?.success(),
        "server exit status"
    );
    Ok(())
}

/// The token provider is asked before every connection attempt, and its token is sent as a
/// bearer credential; here a local server refuses every upgrade with 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_provider_is_called_on_every_connect() -> Result<()> {
    // 1. A local HTTP server that records each request head and answers 401.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/", listener.local_addr()?);
    let (heads_tx, mut heads) = tokio::sync::mpsc::channel::<String>(16);
    let refuser = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let head = read_head(&mut socket).await.unwrap_or_default();
            let _ = socket
                .write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n")
                .await;
            if heads_tx.send(head).await.is_err() {
                break;
            }
        }
    });

    // 2. A provider that hands out a new token each time.
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let provider: TokenProvider = Arc::new(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move { Some(format!("token-{n}")) })
    });
    let dir = tempfile::tempdir()?;
    let client = Client::open(
        dir.path(),
        ClientConfig {
            token: Some(provider),
            ..fast()
        },
    )
    .await?;
    client.connect(&url)?;

    // 3. Three attempts, each with the token fetched for it.
    for n in 1..=3 {
        let head = tokio::time::timeout(WAIT, heads.recv())
            .await?
            .context("refuser stopped")?
            .to_ascii_lowercase();
        let expected = format!("authorization: bearer token-{n}\r\n");
        ensure!(head.contains(&expected), "attempt {n} sent:\n{head}");
    }
    let error = client.last_connection_error().unwrap_or_default();
    ensure!(error.contains("401"), "last error: {error}");

    client.close().await;
    refuser.abort();
    Ok(())
}

async fn read_head(socket: &mut tokio::net::TcpStream) -> Result<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            bail!("connection closed before the request head ended");
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// What one CLI run printed.
#[derive(Debug)]
struct Output {
    stdout: String,
    stderr: String,
}

fn cli_binary() -> std::path::PathBuf {
    std::env::var_os("SYNCLINE_CLIENT_BIN")
        .map_or_else(|| server_binary().with_file_name("syncline"), Into::into)
}

/// Runs the CLI to completion (at most `WAIT`) and requires exit status 0.
async fn cli(args: &[&str]) -> Result<Output> {
    let (status, output) = cli_status(args).await?;
    ensure!(status.success(), "syncline {args:?} failed: {output:?}");
    Ok(output)
}

async fn cli_status(args: &[&str]) -> Result<(std::process::ExitStatus, Output)> {
    let child = tokio::process::Command::new(cli_binary())
        .args(args)
        .env_remove("SYNCLINE_SERVER")
        .env_remove("SYNCLINE_STORE")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, child)
        .await
        .with_context(|| format!("syncline {args:?} did not finish"))??;
    let output = Output {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    Ok((out.status, output))
}

/// The CLI against an unreachable server, and for a document nobody has: a non-zero exit, a
/// message on stderr, nothing on stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_failures_exit_non_zero_with_a_message() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = dir.path().join("store");
    let store = store.to_str().context("utf-8 path")?;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let nobody = format!("ws://{}/", closed.local_addr()?);
    drop(closed);

    // 1. create with an unreachable server: refused, but the document is kept locally.
    let args = ["--server", &nobody, "--timeout", "1", "--store", store];
    let (status, out) = cli_status(&[&args[..], &["create", "--json", "{}"]].concat()).await?;
    ensure!(!status.success(), "create succeeded: {out:?}");
    ensure!(out.stdout.is_empty(), "stdout: {}", out.stdout);
    ensure!(
        out.stderr.contains("could not upload"),
        "stderr: {}",
        out.stderr
    );
    ensure!(
        out.stderr.contains("saved in the local store"),
        "stderr: {}",
        out.stderr
    );
    let listed = cli(&["--store", store, "list"]).await?;
    ensure!(
        listed.stdout.lines().count() == 1,
        "list: {}",
        listed.stdout
    );

    // 2. get of a document the store lacks, without a server, and with one that lacks it too.
    let unknown = syncline_shared::ids::DocumentId::random_from(rand::random()).url();
    let (status, out) = cli_status(&["--store", store, "get", &unknown]).await?;
    ensure!(
        !status.success() && out.stderr.contains("not in the local store"),
        "{out:?}"
    );
    let server = ServerProcess::start(&dir.path().join("server"), &listen_on(None)).await?;
    let online = ["--server", &server.ws_url(), "--store", store];
    let (status, out) = cli_status(&[&online[..], &["get", &unknown]].concat()).await?;
    ensure!(
        !status.success() && out.stderr.contains("no connected server has it"),
        "{out:?}"
    );

    // 3. Once the server is reachable, the document kept in step 1 is uploaded by `status`.
    let url = listed.stdout.trim();
    let status_out = cli(&[&online[..], &["status", url]].concat()).await?;
    let report: Value = serde_json::from_str(&status_out.stdout)?;
    let acknowledged = report["acknowledged"]
        .as_object()
        .and_then(|servers| servers.values().next())
        .context("no server acknowledged the document")?;
    assert_eq!(*acknowledged, report["local_heads"]);

    ensure!(
        server.terminate(WAIT).await?.success(),
        "server exit status"
    );
    Ok(())
}

/// `watch` prints the current version and then every new one, and exits 0 on SIGINT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_watch_prints_each_new_version() -> Result<()> {
    use tokio::io::AsyncBufReadExt;

    let dir = tempfile::tempdir()?;
    let server = ServerProcess::start(&dir.path().join("server"), &listen_on(None)).await?;
    let editor = Client::open(dir.path().join("editor"), fast()).await?;
    editor.connect(&server.ws_url())?;
    let doc = editor
        .create(|tx| create_root(tx, &json!({ "count": 0 })))
        .await?;
    doc.wait_acknowledged(WAIT).await?;

    // 1. The watcher prints the version it fetched.
    let store = dir.path().join("watcher");
    let mut child = tokio::process::Command::new(cli_binary())
        .args(["--server", &server.ws_url(), "--store"])
        .arg(&store)
        .args(["watch", &doc.url()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut next_count = async || -> Result<Value> {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await?
            .context("watch ended")?
            .context("no line")?;
        let version: Value = serde_json::from_str(&line)?;
        Ok(version["state"]["count"].clone())
    };
    assert_eq!(next_count().await?, json!(0));

    // 2. Each change made elsewhere shows up as a new line.
    for n in 1..=3 {
        doc.change(|tx| tx.put(ROOT, "count", n)).await?;
        assert_eq!(next_count().await?, json!(n));
    }

    // 3. SIGINT ends it with status 0.
    let pid = child.id().context("pid")?;
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()?;
    let status = tokio::time::timeout(WAIT, child.wait()).await??;
    ensure!(status.success(), "watch exited with {status}");

    editor.close().await;
    ensure!(
        server.terminate(WAIT).await?.success(),
        "server exit status"
    );
    Ok(())
}
