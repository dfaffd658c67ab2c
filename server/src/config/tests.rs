//! Unit tests of flag, variable and file resolution, and of the messages for refused values.

use super::*;

fn args(config: Option<PathBuf>) -> Args {
    Args {
        listen: None,
        data_dir: None,
        config,
        insecure_no_auth: false,
        log_format: None,
    }
}

#[test]
fn defaults_serve_loopback() {
    let config = Config::from_args(args(None)).expect("defaults are valid");
    assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    assert_eq!(config.sync.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
}

#[test]
fn file_values_apply_and_flags_win() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("syncline.conf");
    let data = dir.path().join("data");
    let text = format!(
        "listen = \"127.0.0.1:4000\"\ndata_dir = {data:?}\nlog_format = \"json\"\n\
         [sync]\nidle_unload_ms = 250\n"
    );
    std::fs::write(&path, text).expect("write config");
    let config = Config::from_args(args(Some(path.clone()))).expect("valid file");
    assert_eq!(config.log_format, LogFormat::Json);
    let mut a = args(Some(path));
    a.listen = Some("127.0.0.1:5000".parse().expect("addr"));
    a.log_format = Some(LogFormat::Text);
    let config = Config::from_args(a).expect("valid file");
    assert_eq!(config.listen.port(), 5000);
    assert_eq!(config.log_format, LogFormat::Text);
    assert_eq!(config.data_dir, data);
    assert_eq!(config.sync.idle_unload, Duration::from_millis(250));
}

/// Writes `text` as a config file and returns the one-line refusal of it.
fn refusal(text: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("syncline.toml");
    std::fs::write(&path, text).expect("write config");
    let err = Config::from_args(args(Some(path.clone()))).expect_err("refused");
    let message = err.to_string();
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    message
}

/// A value of the wrong type names its key and line and says what to write instead.
#[test]
fn wrong_types_name_the_key_and_what_is_expected() {
    let message = refusal("[sync]\nmax_message_bytes = \"big\"\n");
    assert!(message.contains("line 2, column 21"), "{message}");
    assert!(message.contains("`sync.max_message_bytes`"), "{message}");
    assert!(message.contains("expected a whole number"), "{message}");
    let message = refusal("[sync]\nmax_message_bytes = -5\n");
    assert!(message.contains("-5"), "{message}");
    assert!(message.contains("expected a whole number"), "{message}");
    let message = refusal("[sync]\nmax_messages_per_second = 5000000000\n");
    assert!(message.contains("from 0 to 4294967295"), "{message}");
    let message = refusal("listen = \"nowhere\"\n");
    assert!(message.contains("`listen`"), "{message}");
    assert!(message.contains("127.0.0.1:3030"), "{message}");
    let message = refusal("log_format = \"yaml\"\n");
    assert!(message.contains("`log_format`"), "{message}");
    assert!(message.contains("`text` or `json`"), "{message}");
    let message = refusal("sync = 5\n");
    assert!(message.contains("expected a table"), "{message}");
    let bridge = "[[bridge]]\nname = \"b\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n";
    let message = refusal(&format!("{bridge}documents = 5\n"));
    assert!(message.contains("`bridge.documents`"), "{message}");
    assert!(message.contains("a list of document ids"), "{message}");
    let message = refusal(bridge);
    assert!(
        message.contains("missing key `bridge.documents`"),
        "{message}"
    );
}

/// A limit outside its bounds is refused with the bounds and the default.
#[test]
fn out_of_range_limits_name_their_bounds() {
    let message = refusal("[sync]\nmax_message_bytes = 10\n");
    assert!(
        message.contains("[sync] max_message_bytes = 10 is below its minimum, 1024"),
        "{message}"
    );
    assert!(message.contains("the default, 104857600"), "{message}");
    let message = refusal("[sync]\nhandshake_timeout_ms = 18446744073709551615\n");
    assert!(message.contains("above its maximum"), "{message}");
    let message = refusal("[sync]\ncompact_after_changes = 0\n");
    assert!(message.contains("compact_after_changes = 0"), "{message}");
    let message = refusal("[storage]\ncache_bytes = 4096\n");
    assert!(
        message.contains("[storage] cache_bytes = 4096 is below its minimum, 1048576"),
        "{message}"
    );
}

/// A data directory that is a file, or lies under one, is refused before storage opens.
#[test]
fn data_dir_in_the_way_of_a_file_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("plain");
    std::fs::write(&file, "").expect("write file");
    for (data_dir, why) in [
        (file.clone(), "it is a file".to_owned()),
        (file.join("db"), format!("{} is a file", file.display())),
    ] {
        let mut a = args(None);
        a.data_dir = Some(data_dir);
        let err = Config::from_args(a).expect_err("unusable data directory");
        assert!(err.to_string().contains(&why), "{err}");
        assert!(err.to_string().contains("--data-dir"), "{err}");
    }
    let mut a = args(None);
    a.data_dir = Some(dir.path().join("new").join("nested"));
    Config::from_args(a).expect("a missing directory is created later");
}

/// `[[bridge]]` tables resolve; a bad one is refused naming the bridge.
#[test]
fn bridges_are_read_and_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("c.toml");
    let good = "[[bridge]]\nname = \"ledger\"\nkind = \"webhook\"\n\
                url = \"http://127.0.0.1:9/hook\"\ndocuments = \"calendar\"\n\
                secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\nmode = \"events\"\n";
    std::fs::write(&path, good).expect("write config");
    let config = Config::from_args(args(Some(path.clone()))).expect("valid bridge");
    assert_eq!(config.bridges.len(), 1);
    assert_eq!(config.bridges[0].mode, crate::bridges::Mode::Events);
    assert_eq!(
        config.bridges[0].documents,
        crate::bridges::DocumentFilter::Type("calendar".into())
    );

    for rate in ["nan", "inf", "1e-300"] {
        std::fs::write(&path, format!("{good}rate_per_second = {rate}\n")).expect("write");
        let err = Config::from_args(args(Some(path.clone()))).expect_err("unusable rate");
        assert!(err.to_string().contains("rate_per_second"), "{err}");
    }

    let bad = good.replace("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "plain");
    std::fs::write(&path, bad).expect("write config");
    let err = Config::from_args(args(Some(path))).expect_err("bad secret");
    assert!(err.to_string().contains("ledger"), "{err}");
}

/// Without `[auth]` only loopback addresses are served, unless the insecure flag is given;
/// an `[auth]` section with a short secret is refused.
#[test]
fn exposure_needs_auth_or_the_insecure_flag() {
    let mut a = args(None);
    a.listen = Some("0.0.0.0:3030".parse().expect("addr"));
    let err = Config::from_args(a).expect_err("exposed without auth");
    assert!(err.to_string().contains("--insecure-no-auth"), "{err}");
    let mut a = args(None);
    a.listen = Some("0.0.0.0:3030".parse().expect("addr"));
    a.insecure_no_auth = true;
    Config::from_args(a).expect("explicitly insecure");

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "listen = \"0.0.0.0:1\"\n[auth]\nsecret = \"0123456789abcdef0123456789abcdef\"\n",
    )
    .expect("write config");
    let config = Config::from_args(args(Some(path.clone()))).expect("exposed with auth");
    assert!(config.auth.is_some());
    std::fs::write(&path, "[auth]\nsecret = \"short\"\n").expect("write config");
    let err = Config::from_args(args(Some(path))).expect_err("short secret");
    assert!(err.to_string().contains("32 bytes"), "{err}");
}

#[test]
fn unknown_keys_are_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[sync]\nidle_unload = 5\n").expect("write config");
    let err = Config::from_args(args(Some(path.clone()))).expect_err("unknown key");
    assert!(
        err.to_string().contains("unknown key `sync.idle_unload`"),
        "{err}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("`idle_unload_ms`"), "{err}");
    let message = refusal("[auth]\nsecret = \"0123456789abcdef0123456789abcdef\"\nleeway = 5\n");
    assert!(message.contains("unknown key `auth.leeway`"), "{message}");
    let message = refusal("colour = \"blue\"\n");
    assert!(
        message.contains("line 1, column 1: unknown key `colour`"),
        "{message}"
    );
}

/// The command line is consistent, and `--log-format` is taken after `token` too.
#[test]
fn the_command_line_parses() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
    let cli = Cli::try_parse_from([
        "syncline-server",
        "token",
        "--config",
        "c.toml",
        "--sub",
        "alice",
        "--log-format",
        "json",
    ])
    .expect("token flags");
    assert_eq!(cli.serve.log_format, Some(LogFormat::Json));
    let cli = Cli::try_parse_from(["syncline-server", "--insecure-no-auth"]).expect("flag");
    assert!(cli.serve.insecure_no_auth);
    assert!(Cli::try_parse_from(["syncline-server", "--log-format", "yaml"]).is_err());
}

/// A missing file is named with where its path came from.
#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent.toml");
    let err = Config::from_args(args(Some(path.clone()))).expect_err("missing file");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("--config"), "{err}");
}
