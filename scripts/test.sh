#!/usr/bin/env bash
# Runs the whole Syncline test suite: builds the workspace binaries, runs the Rust tests, then the
# JavaScript suites (the real automerge-repo client against target/debug/syncline-server, and the
# inspector page and the calendar app in headless Chromium), then a short run of the load
# benchmark to prove it still works end to end, then every side-by-side benchmark scenario at a
# tiny size against Syncline, the reference JavaScript server and the samod-based server, with
# each criterion micro-benchmark run once (benches/compare.sh --smoke), then a short fuzz run of
# every cargo-fuzz target (scripts/fuzz.sh).
#
# usage: ./scripts/test.sh
#
# Needs: the Rust toolchain pinned in rust-toolchain.toml (rustup installs it), Node.js 20 or newer
# with npm. The JS dependencies are installed from tests/js/package-lock.json with `npm install`
# (not `npm ci`: the lock file names cbor-x's optional native helpers, which npm ci insists on).
# Chromium for the browser suites: $SYNCLINE_CHROMIUM, default /usr/bin/chromium; when it is
# missing and apt-get exists, Debian's `chromium` package is installed (with sudo unless root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

STAGE=0
STAGES=7
FAILED=()

header() {
  STAGE=$((STAGE + 1))
  printf '\n==> [%d/%d] %s\n' "$STAGE" "$STAGES" "$*"
}

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "error: '$1' is not installed or not on PATH ($2)" >&2
    exit 1
  fi
}

need cargo "install Rust with rustup: https://rustup.rs"
need node "install Node.js 20 or newer"
need npm "install npm (it ships with Node.js)"
need python3 "install Python 3 with venv (for the Radicale CalDAV server the tests start)"
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$NODE_MAJOR" -lt 20 ]; then
  echo "error: Node.js 20 or newer is required (found $(node --version))" >&2
  exit 1
fi

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  else
    need sudo "run as root, or install Debian's chromium package yourself"
    sudo "$@"
  fi
}

install_chromium() {
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
}

# playwright-core drives a browser it does not download: Debian's Chromium. The package lists
# are refreshed only if the install fails with the ones at hand.
CHROMIUM="${SYNCLINE_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing Debian's chromium package (no executable at $CHROMIUM)"
  install_chromium || { as_root apt-get update && install_chromium; } || true
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "error: no Chromium at $CHROMIUM for the browser suites (install Debian's chromium" \
    "package, or set SYNCLINE_CHROMIUM to a Chromium or Chrome executable)" >&2
  exit 1
fi
export SYNCLINE_CHROMIUM="$CHROMIUM"

header "cargo build --workspace --bins"
cargo build --workspace --bins

# The JS suite starts the server binary built above; honour CARGO_TARGET_DIR and friends.
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps |
  node -e 'let s = ""; process.stdin.on("data", d => (s += d)).on("end", () => console.log(JSON.parse(s).target_directory))')"
export SYNCLINE_SERVER_BIN="${SYNCLINE_SERVER_BIN:-$TARGET_DIR/debug/syncline-server}"

# A real CalDAV server for the calendar bridge suite: Radicale from PyPI, in a virtualenv.
RADICALE_VENV="$TARGET_DIR/radicale-venv"
if [ ! -x "$RADICALE_VENV/bin/radicale" ]; then
  python3 -m venv "$RADICALE_VENV"
  "$RADICALE_VENV/bin/pip" install --quiet --disable-pip-version-check radicale==3.9.0
fi
export SYNCLINE_RADICALE_BIN="$RADICALE_VENV/bin/radicale"
export SYNCLINE_CLIENT_BIN="${SYNCLINE_CLIENT_BIN:-$TARGET_DIR/debug/syncline}"

header "cargo test --workspace --no-fail-fast"
if ! cargo test --workspace --no-fail-fast; then
  FAILED+=("cargo test --workspace --no-fail-fast")
fi

header "npm install (tests/js), and app/dist/ checked against a fresh build of app/src/"
(cd tests/js && npm install --no-audit --no-fund --loglevel=error)
if ! ./scripts/build-app.sh --check; then
  FAILED+=("scripts/build-app.sh --check")
fi

header "node --test tests/js/ (JavaScript interop, server: $SYNCLINE_SERVER_BIN)"
if ! node --test --test-concurrency=1 tests/js/; then
  FAILED+=("node --test tests/js/")
fi

header "syncline-load --smoke (load benchmark, short run, also through a webhook bridge and over HTTP)"
if ! "$TARGET_DIR/debug/syncline-load" --smoke; then
  FAILED+=("syncline-load --smoke")
fi
if ! "$TARGET_DIR/debug/syncline-load" --smoke --auth; then
  FAILED+=("syncline-load --smoke --auth")
fi
if ! "$TARGET_DIR/debug/syncline-load" --smoke --bridge state; then
  FAILED+=("syncline-load --smoke --bridge state")
fi
if ! "$TARGET_DIR/debug/syncline-load" --smoke --http --auth; then
  FAILED+=("syncline-load --smoke --http --auth")
fi

header "benches/compare.sh --smoke (every side-by-side scenario, tiny, against all three servers)"
if ! ./benches/compare.sh --smoke; then
  FAILED+=("benches/compare.sh --smoke")
fi

header "scripts/fuzz.sh 20 (saved crashers and seeds once, then 20 s of fuzzing per target)"
if ! ./scripts/fuzz.sh 20; then
  FAILED+=("scripts/fuzz.sh 20")
fi

echo
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "==> FAILED: ${FAILED[*]}" >&2
  exit 1
fi
echo "==> all test stages passed"
