//! Start-up configuration against the real binary: each invalid setting ends the process with a
//! non-zero status and one line on standard error that names it; `--log-format json` turns every
//! log line into a JSON object; the example config loads; and the configuration reference names
//! every flag the binary offers and every key it knows.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use automerge::transaction::Transactable;
use serde_json::Value;
use syncline_tests::peer::RawPeer;
use syncline_tests::server::server_binary;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

/// Bound on every run of the binary: refusing, announcing itself, or exiting after SIGTERM.
const WAIT: Duration = Duration::from_secs(30);

/// Variables the server reads, cleared so that the caller's environment cannot change a run.
const SERVER_ENV: [&str; 6] = [
    "SYNCLINE_LISTEN",
    "SYNCLINE_DATA_DIR",
    "SYNCLINE_CONFIG",
    "SYNCLINE_INSECURE_NO_AUTH",
    "SYNCLINE_LOG_FORMAT",
    "RUST_LOG",
];

/// A webhook bridge that resolves, for cases that need one.
const BRIDGE: &str = "[[bridge]]\nname = \"ledger\"\nkind = \"webhook\"\n\
                      url = \"http://127.0.0.1:9/hook\"\ndocuments = \"*\"\n\
                      secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n";

/// An `[auth]` table that resolves.
const AUTH: &str = "[auth]\nsecret = \"0123456789abcdef0123456789abcdef\"\n";

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn reference() -> Result<String> {
    std::fs::read_to_string(repo_file("docs/CONFIGURATION.md")).context("read CONFIGURATION.md")
}

/// The server binary with a clean environment, logging at `info`.
fn server() -> Command {
    let mut command = Command::new(server_binary());
    for name in SERVER_ENV {
        command.env_remove(name);
    }
    command
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// A temporary directory for a config file and a data directory.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Result<Self> {
        Ok(Self(tempfile::tempdir()?))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// The server on a free loopback port with a fresh data directory and `text` as its config.
    fn with_config(&self, text: &str) -> Result<(Command, String)> {
        let path = self.path("syncline.toml");
        std::fs::write(&path, text)?;
        let mut command = self.on_loopback(&self.path("data"));
        command.arg("--config").arg(&path);
        Ok((command, path.display().to_string()))
    }

    /// The server on a free loopback port with `data_dir`.
    fn on_loopback(&self, data_dir: &Path) -> Command {
        let mut command = server();
        command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir);
        command
    }
}

/// What a server that refused to start left behind.
struct Refusal {
    status: ExitStatus,
    lines: Vec<String>,
}

impl Refusal {
    /// The one line at error level, which must hold every part of `wanted`.
    fn error_line(&self, wanted: &[&str]) -> Result<&str> {
        let errors: Vec<&String> = self
            .lines
            .iter()
            .filter(|l| l.contains(" ERROR "))
            .collect();
        let [line] = errors.as_slice() else {
            bail!("expected one error line, got:\n{}", self.lines.join("\n"));
        };
        for part in wanted {
            ensure!(line.contains(part), "{part:?} is missing from: {line}");
        }
        Ok(line)
    }

    /// A refusal of the configuration: status 2 and nothing on stderr but the one line.
    fn of_config(&self, wanted: &[&str]) -> Result<()> {
        ensure!(self.status.code() == Some(2), "status {}", self.status);
        self.error_line(wanted)?;
        ensure!(
            self.lines.len() == 1,
            "more than one line:\n{}",
            self.lines.join("\n")
        );
        Ok(())
    }
}

/// Runs a server that must not start: it exits non-zero within [`WAIT`] without announcing a
/// listener.
async fn refused(mut command: Command) -> Result<Refusal> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command.spawn().context("start the server binary")?;
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .context("the server neither refused nor exited")??;
    let stderr = String::from_utf8(output.stderr)?;
    ensure!(!output.status.success(), "it exited 0; stderr:\n{stderr}");
    ensure!(
        output.stdout.is_empty(),
        "it announced a listener: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let lines = stderr.lines().map(str::to_owned).collect();
    Ok(Refusal {
        status: output.status,
        lines,
    })
}

/// A server that announced itself; stopped by SIGTERM to its pid.
struct Running {
    child: Child,
    addr: SocketAddr,
    /// Kept open so that the server's standard output stays writable.
    _stdout: Lines<BufReader<ChildStdout>>,
    stderr: JoinHandle<Vec<String>>,
}

impl Running {
    async fn start(mut command: Command) -> Result<Self> {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().context("start the server binary")?;
        let stderr = child.stderr.take().context("stderr is piped")?;
        let stderr = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut all = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                all.push(line);
            }
            all
        });
        let mut stdout = BufReader::new(child.stdout.take().context("stdout is piped")?).lines();
        match tokio::time::timeout(WAIT, announced(&mut stdout)).await {
            Ok(Ok(addr)) => Ok(Self {
                child,
                addr,
                _stdout: stdout,
                stderr,
            }),
            failed => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                let log = tokio::time::timeout(WAIT, stderr).await??;
                bail!("no announcement ({failed:?}); stderr:\n{}", log.join("\n"))
            }
        }
    }

    /// Sends SIGTERM by pid, waits for status 0, and returns every line of standard error.
    async fn stop(mut self) -> Result<Vec<String>> {
        let pid = self.child.id().context("the server is running")?;
        let sent = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()?;
        ensure!(sent.success(), "kill -TERM {pid} failed");
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .context("no exit after SIGTERM")??;
        let lines = tokio::time::timeout(WAIT, self.stderr).await??;
        ensure!(
            status.success(),
            "status {status}; stderr:\n{}",
            lines.join("\n")
        );
        Ok(lines)
    }
}

async fn announced(stdout: &mut Lines<BufReader<ChildStdout>>) -> Result<SocketAddr> {
    while let Some(line) = stdout.next_line().await? {
        if let Some(addr) = line.strip_prefix("syncline-server listening on ") {
            return Ok(addr.trim().parse()?);
        }
    }
    bail!("standard output closed before the announcement")
}

/// Each line parsed as a JSON object, or the first line that is not one.
fn json_lines(lines: &[String]) -> Result<Vec<serde_json::Map<String, Value>>> {
    lines
        .iter()
        .map(|line| match serde_json::from_str(line) {
            Ok(Value::Object(object)) => Ok(object),
            _ => bail!("not a JSON object: {line}"),
        })
        .collect()
}

/// An unknown key, at the top level or in any table, is refused naming the key, its line and
/// the file.
#[tokio::test]
async fn unknown_keys_are_refused_naming_the_key_and_the_file() -> Result<()> {
    let cases = [
        (
            "colour = \"blue\"\n".to_owned(),
            "line 1, column 1: unknown key `colour`",
        ),
        (
            "[sync]\nidle_unload = 5\n".to_owned(),
            "line 2, column 1: unknown key `sync.idle_unload`",
        ),
        (
            format!("{AUTH}leeway = 5\n"),
            "line 3, column 1: unknown key `auth.leeway`",
        ),
        (
            format!("{BRIDGE}retries = 3\n"),
            "unknown key `bridge.retries`",
        ),
        (
            "[documents]\npurge_after_ms = 5\n".to_owned(),
            "unknown key `documents.purge_after_ms`",
        ),
    ];
    for (text, wanted) in cases {
        let scratch = Scratch::new()?;
        let (command, path) = scratch.with_config(&text)?;
        let refusal = refused(command).await?;
        refusal
            .of_config(&[&path, wanted])
            .with_context(|| format!("config {text:?}"))?;
    }

    // The refusal lists the keys that would be accepted.
    let scratch = Scratch::new()?;
    let (command, _) = scratch.with_config("[sync]\nidle_unload = 5\n")?;
    refused(command)
        .await?
        .of_config(&["expected one of", "`idle_unload_ms`"])
}

/// A value of the wrong type, a negative number, a number out of range and an unparsable
/// address are each refused naming the key and what would be accepted.
#[tokio::test]
async fn bad_values_are_refused_naming_the_key() -> Result<()> {
    let cases: [(&str, &[&str]); 6] = [
        (
            "[sync]\nmax_message_bytes = \"big\"\n",
            &[
                "line 2, column 21",
                "`sync.max_message_bytes`",
                "\"big\"",
                "expected a whole number",
            ],
        ),
        (
            "[sync]\nmax_message_bytes = -5\n",
            &["`sync.max_message_bytes`", "-5", "expected a whole number"],
        ),
        (
            "[sync]\nmax_message_bytes = 10\n",
            &[
                "[sync] max_message_bytes = 10",
                "minimum, 1024",
                "the default, 104857600",
            ],
        ),
        (
            "[sync]\nhandshake_timeout_ms = 0\n",
            &["[sync] handshake_timeout_ms = 0", "minimum, 1"],
        ),
        (
            "listen = \"nowhere\"\n",
            &["`listen`", "\"127.0.0.1:3030\""],
        ),
        (
            "log_format = \"yaml\"\n",
            &["`log_format`", "`text` or `json`"],
        ),
    ];
    for (text, wanted) in cases {
        let scratch = Scratch::new()?;
        let (command, path) = scratch.with_config(text)?;
        let mut wanted = wanted.to_vec();
        wanted.push(&path);
        refused(command)
            .await?
            .of_config(&wanted)
            .with_context(|| format!("config {text:?}"))?;
    }

    // A bridge's refusal names the bridge.
    let scratch = Scratch::new()?;
    let text = BRIDGE.replace("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "plain");
    let (command, path) = scratch.with_config(&text)?;
    refused(command)
        .await?
        .of_config(&[&path, "bridge \"ledger\"", "whsec_"])
}

/// A config file that is missing, or a directory, is refused naming the path and the flag.
#[tokio::test]
async fn a_missing_config_file_is_refused() -> Result<()> {
    let scratch = Scratch::new()?;
    for path in [scratch.path("absent.toml"), scratch.path("")] {
        let mut command = scratch.on_loopback(&scratch.path("data"));
        command.arg("--config").arg(&path);
        let shown = path.display().to_string();
        refused(command)
            .await?
            .of_config(&["cannot read config file", &shown, "--config"])?;
    }
    Ok(())
}

/// A data directory that is a regular file, or lies under one, is refused before storage is
/// touched; one whose database file is in the way is refused by storage with a hint.
#[tokio::test]
async fn unusable_data_directories_are_refused() -> Result<()> {
    let scratch = Scratch::new()?;
    let file = scratch.path("plain-file");
    std::fs::write(&file, "not a directory")?;
    let shown = file.display().to_string();

    // 1. The path is a file.
    let refusal = refused(scratch.on_loopback(&file)).await?;
    refusal.of_config(&["unusable data directory", &shown, "is a file", "--data-dir"])?;

    // 2. The path lies under a file.
    let refusal = refused(scratch.on_loopback(&file.join("data"))).await?;
    refusal.of_config(&[
        &shown,
        "is a file, so no directory can be created",
        "--data-dir",
    ])?;

    // 3. The database file's name is taken by a directory: storage refuses, status 1.
    let data = scratch.path("data");
    std::fs::create_dir_all(data.join("syncline.redb"))?;
    let refusal = refused(scratch.on_loopback(&data)).await?;
    ensure!(
        refusal.status.code() == Some(1),
        "status {}",
        refusal.status
    );
    refusal.error_line(&[
        "cannot open storage in",
        &data.display().to_string(),
        "--data-dir",
    ])?;
    Ok(())
}

/// An address another socket holds is refused with status 1, naming it and the flag.
#[tokio::test]
async fn an_address_in_use_is_refused() -> Result<()> {
    let scratch = Scratch::new()?;
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = taken.local_addr()?.to_string();
    let mut command = server();
    command
        .args(["--listen", &addr, "--data-dir"])
        .arg(scratch.path("data"));
    let refusal = refused(command).await?;
    ensure!(
        refusal.status.code() == Some(1),
        "status {}",
        refusal.status
    );
    refusal.error_line(&["cannot listen on", &addr, "--listen"])?;
    Ok(())
}

/// Values clap refuses (an unknown log format, by flag or variable; an unparsable address; a
/// variable that is not a boolean) are usage errors with status 2 that name the flag.
#[tokio::test]
async fn bad_flags_and_variables_are_usage_errors() -> Result<()> {
    let scratch = Scratch::new()?;
    let data = scratch.path("data");

    let mut command = scratch.on_loopback(&data);
    command.args(["--log-format", "yaml"]);
    let by_flag = refused(command).await?;
    let mut command = scratch.on_loopback(&data);
    command.env("SYNCLINE_LOG_FORMAT", "yaml");
    let by_variable = refused(command).await?;
    for refusal in [by_flag, by_variable] {
        ensure!(
            refusal.status.code() == Some(2),
            "status {}",
            refusal.status
        );
        let text = refusal.lines.join("\n");
        ensure!(
            text.contains("invalid value 'yaml' for '--log-format"),
            "{text}"
        );
        ensure!(text.contains("[possible values: text, json]"), "{text}");
    }

    let mut command = server();
    command.args(["--listen", "nowhere"]);
    let refusal = refused(command).await?;
    let text = refusal.lines.join("\n");
    ensure!(
        refusal.status.code() == Some(2),
        "status {}",
        refusal.status
    );
    ensure!(
        text.contains("invalid value 'nowhere' for '--listen"),
        "{text}"
    );

    let mut command = scratch.on_loopback(&data);
    command.env("SYNCLINE_INSECURE_NO_AUTH", "perhaps");
    let refusal = refused(command).await?;
    let text = refusal.lines.join("\n");
    ensure!(text.contains("'--insecure-no-auth'"), "{text}");
    Ok(())
}

/// `SYNCLINE_INSECURE_NO_AUTH=1`, the spelling the refusal suggests, is accepted.
#[tokio::test]
async fn the_insecure_variable_takes_1() -> Result<()> {
    let scratch = Scratch::new()?;
    let mut command = scratch.on_loopback(&scratch.path("data"));
    command.env("SYNCLINE_INSECURE_NO_AUTH", "1");
    Running::start(command).await?.stop().await?;
    Ok(())
}

/// With `--log-format json` every line on standard error is a JSON object with a level and a
/// message, and events inside the connection and document spans carry those spans.
#[tokio::test]
async fn json_logs_are_one_object_per_line() -> Result<()> {
    let scratch = Scratch::new()?;
    let mut command = scratch.on_loopback(&scratch.path("data"));
    command
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info,syncline_server=debug");

    // 1. A peer joins and creates a document, so the `conn` and `doc` spans log something.
    let server = Running::start(command).await?;
    let mut peer = RawPeer::connect(&format!("ws://{}/", server.addr), "json-log-peer").await?;
    peer.create_acknowledged(
        |doc| {
            doc.put(automerge::ROOT, "n", 1)
                .expect("a fresh document takes a key");
        },
        WAIT,
    )
    .await?;
    peer.close().await?;

    // 2. SIGTERM; every line is an object with a level and a message.
    let lines = server.stop().await?;
    let objects = json_lines(&lines)?;
    ensure!(!objects.is_empty(), "no log lines");
    for object in &objects {
        ensure!(
            object.get("level").is_some_and(Value::is_string),
            "{object:?}"
        );
        let message = object
            .get("fields")
            .and_then(|fields| fields.get("message"))
            .or_else(|| object.get("message"));
        ensure!(
            message.is_some_and(Value::is_string),
            "no message: {object:?}"
        );
    }

    // 3. The join is logged inside `conn`, whose fields name the peer; the upload inside `doc`.
    let joined = objects
        .iter()
        .find(|o| o["fields"]["message"] == "peer joined")
        .context("no \"peer joined\" line")?;
    ensure!(joined["span"]["name"] == "conn", "{joined:?}");
    ensure!(joined["spans"][0]["peer"] == "json-log-peer", "{joined:?}");
    let in_doc = objects.iter().any(|o| {
        o.get("spans")
            .and_then(Value::as_array)
            .is_some_and(|spans| spans.iter().any(|span| span["name"] == "doc"))
    });
    ensure!(in_doc, "no line inside a doc span:\n{}", lines.join("\n"));
    Ok(())
}

/// The log format comes from the flag, else the variable, else the file's `log_format`.
#[tokio::test]
async fn the_log_format_flag_wins_over_the_variable_and_the_file() -> Result<()> {
    let runs = [
        ("json", None, None, true),
        ("json", Some("text"), None, false),
        ("text", Some("text"), Some("json"), true),
    ];
    for (file, variable, flag, json) in runs {
        let scratch = Scratch::new()?;
        let (mut command, _) = scratch.with_config(&format!("log_format = \"{file}\"\n"))?;
        if let Some(variable) = variable {
            command.env("SYNCLINE_LOG_FORMAT", variable);
        }
        if let Some(flag) = flag {
            command.args(["--log-format", flag]);
        }
        let lines = Running::start(command).await?.stop().await?;
        let parsed = json_lines(&lines);
        let case = format!("file {file}, variable {variable:?}, flag {flag:?}");
        match json {
            true => {
                parsed.with_context(|| case.clone())?;
            }
            false => ensure!(
                lines.iter().all(|l| !l.starts_with('{')) && !lines.is_empty(),
                "{case}: expected text lines:\n{}",
                lines.join("\n")
            ),
        }
    }
    Ok(())
}

/// The example config, with its bridges and `[auth]` table, loads; flags override its address
/// and data directory.
#[tokio::test]
async fn the_example_config_loads() -> Result<()> {
    let scratch = Scratch::new()?;
    let mut command = scratch.on_loopback(&scratch.path("data"));
    command
        .arg("--config")
        .arg(repo_file("docs/syncline.example.toml"));
    let server = Running::start(command).await?;
    ensure!(server.addr.ip().is_loopback(), "{}", server.addr);
    let lines = server.stop().await?;
    ensure!(
        lines.iter().any(|l| l.contains("access control on")),
        "the example's [auth] table was not applied:\n{}",
        lines.join("\n")
    );
    ensure!(
        scratch.path("data").join("syncline.redb").is_file(),
        "the data directory flag lost"
    );
    Ok(())
}

/// Every `--flag` that `--help` and `token --help` print is in the reference.
#[tokio::test]
async fn the_reference_names_every_flag() -> Result<()> {
    let reference = reference()?;
    for args in [&["--help"][..], &["token", "--help"]] {
        let mut command = server();
        command.args(args).stdout(Stdio::piped());
        let output = tokio::time::timeout(WAIT, command.output()).await??;
        ensure!(output.status.success(), "{args:?}: {}", output.status);
        let help = String::from_utf8(output.stdout)?;
        let flags = flags_in(&help);
        ensure!(flags.contains("--help"), "no flags found in:\n{help}");
        for flag in flags {
            ensure!(
                reference.contains(&format!("`{flag}")),
                "{flag} (from {args:?}) is not in docs/CONFIGURATION.md"
            );
        }
    }
    Ok(())
}

/// The `--long-flags` in a help text.
fn flags_in(help: &str) -> BTreeSet<String> {
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '=')
        .filter_map(|word| word.strip_prefix("--"))
        .map(|name| name.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|name| name.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
        .map(|name| format!("--{name}"))
        .collect()
}

/// Every key of the example, and every key the server accepts in each table (as its refusal
/// of an unknown key lists them), is in the example and in the reference.
#[tokio::test]
async fn the_example_and_the_reference_name_every_key() -> Result<()> {
    let reference = reference()?;
    let example = std::fs::read_to_string(repo_file("docs/syncline.example.toml"))?;
    let in_reference = |key: &str| {
        reference.contains(&format!("`{key}`")) || reference.contains(&format!("[{key}]"))
    };

    // 1. The example's keys, set or commented out, are documented.
    let table: toml::Table = toml::from_str(&example).context("the example is TOML")?;
    let mut example_keys = BTreeSet::new();
    collect_keys(&table, &mut example_keys);
    example_keys.extend(commented_keys(&example));
    ensure!(
        example_keys.contains("max_message_bytes"),
        "{example_keys:?}"
    );
    for key in &example_keys {
        ensure!(
            in_reference(key),
            "example key {key} is not in docs/CONFIGURATION.md"
        );
    }

    // 2. The server's keys, table by table, are in the example and documented.
    for table in [
        "",
        "[sync]\n",
        "[auth]\n",
        "[calendars]\n",
        "[documents]\n",
        "[[bridge]]\n",
    ] {
        let scratch = Scratch::new()?;
        let (command, _) = scratch.with_config(&format!("{table}zz_not_a_key = 1\n"))?;
        let refusal = refused(command).await?;
        let line = refusal.error_line(&["unknown key"])?;
        let known = expected_keys(line);
        ensure!(!known.is_empty(), "no expected keys in: {line}");
        for key in known {
            ensure!(
                example_keys.contains(&key),
                "{table:?} key {key} is not in the example"
            );
            ensure!(
                in_reference(&key),
                "{table:?} key {key} is not in docs/CONFIGURATION.md"
            );
        }
    }
    Ok(())
}

fn collect_keys(table: &toml::Table, keys: &mut BTreeSet<String>) {
    for (key, value) in table {
        keys.insert(key.clone());
        match value {
            toml::Value::Table(inner) => collect_keys(inner, keys),
            toml::Value::Array(items) => {
                for item in items {
                    if let toml::Value::Table(inner) = item {
                        collect_keys(inner, keys);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Keys shown commented out (`# key = value`), for those that cannot be set together with
/// others or need a file that exists.
fn commented_keys(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# ")?.split_once(" = "))
        .map(|(key, _)| key)
        .filter(|key| {
            key.chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
        })
        .map(str::to_owned)
        .collect()
}

/// The keys a refusal of an unknown key says would be accepted: the backquoted words after
/// "expected".
fn expected_keys(line: &str) -> Vec<String> {
    let Some((_, expected)) = line.split_once(", expected ") else {
        return Vec::new();
    };
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}
