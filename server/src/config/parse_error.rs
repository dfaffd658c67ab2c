//! TOML errors as one line in the file's terms: where, which key, and what to write instead of
//! Rust's type names.

use super::DEFAULT_LISTEN;

/// One line for a TOML error: where it is, the key it concerns, and what was expected, in the
/// file's terms rather than Rust's type names.
pub(super) fn describe_parse_error(text: &str, error: &toml::de::Error) -> String {
    let at = error.span().map_or_else(String::new, |span| {
        let (line, column) = line_column(text, span.start);
        format!("line {line}, column {column}: ")
    });
    let key = error_key(error);
    let message = error.message();

    // serde names the table of an unknown or missing key; name the key in full instead.
    for (serde_words, ours) in [
        ("unknown field `", "unknown key `"),
        ("missing field `", "missing key `"),
    ] {
        if let Some(rest) = message.strip_prefix(serde_words) {
            let table = key.map(|table| format!("{table}.")).unwrap_or_default();
            return format!("{at}{ours}{table}{rest}");
        }
    }
    let message = plain_expectation(message, key.as_deref());
    match key {
        Some(key) => format!("{at}`{key}`: {message}"),
        None => format!("{at}{message}"),
    }
}

/// The dotted key an error concerns. `toml` shares it only through `Display`, which ends with
/// "in `a.b`" when it has no input to quote.
fn error_key(error: &toml::de::Error) -> Option<String> {
    let mut bare = error.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    let (_, key) = shown.trim_end().rsplit_once("\nin `")?;
    key.strip_suffix('`').map(str::to_owned)
}

/// Rewrites serde's expectation ("expected u32") as what to write in the file.
fn plain_expectation(message: &str, key: Option<&str>) -> String {
    let whole = |max: u64| format!("expected a whole number from 0 to {max}");
    let usize_max = u64::try_from(usize::MAX).unwrap_or(u64::MAX);
    let last_key = key.and_then(|key| key.rsplit('.').next());
    if message.contains("untagged enum") {
        match last_key {
            Some("documents") => {
                return "expected \"*\", a document type such as \"calendar\", or a list of \
                        document ids"
                    .into();
            }
            Some("secret") => return "expected a secret (\"whsec_...\") or a list of them".into(),
            _ => {}
        }
    }
    if message == "invalid socket address syntax" {
        return format!("{message}, expected an address and port such as \"{DEFAULT_LISTEN}\"");
    }
    if let Some((head, _)) = message.split_once("expected struct ") {
        return format!("{head}expected a table");
    }
    [
        ("expected usize", whole(usize_max)),
        ("expected u64", whole(u64::MAX)),
        ("expected u32", whole(u32::MAX.into())),
        ("expected f64", "expected a number".to_owned()),
    ]
    .iter()
    .find_map(|(rust, plain)| {
        message
            .strip_suffix(rust)
            .map(|head| format!("{head}{plain}"))
    })
    .unwrap_or_else(|| message.to_owned())
}

/// The 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
