#!/usr/bin/env bash
# Fuzzes Syncline's decoders and its sync core with cargo-fuzz (libFuzzer), one target after
# another: the WebSocket frame codec (frame_decode), the per-document sync session
# (sync_session) and the server's stored-record decoders (stored_records). See fuzz/.
#
# usage: ./scripts/fuzz.sh [seconds-per-target]     (default 20)
#
# For each target it first replays every saved crasher in fuzz/regressions/<target>/ and every
# seed in fuzz/seeds/<target>/ once (libFuzzer's -runs=0), then fuzzes for the given seconds.
# New inputs collect in fuzz/corpus/<target>/ (git-ignored), which later runs start from. A
# crash, a timeout or an out-of-memory (over 2 GiB resident, or over 4 GiB of address space)
# stops the script with the target and the artifact path.
#
# Needs: the Rust toolchain pinned in rust-toolchain.toml, and a C++ compiler for libFuzzer
# (libfuzzer-sys builds it with cc). cargo-fuzz is installed into the target directory if it is
# not there. The toolchain is stable, so everything runs with `--sanitizer none`: the default
# (AddressSanitizer) needs the nightly-only -Zsanitizer. Nothing else is needed on stable: the
# flags cargo-fuzz passes for coverage (-Cpasses=sancov-module, -Cllvm-args=...) are stable, so
# neither nightly nor RUSTC_BOOTSTRAP is. Nothing listens on the network.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SECONDS_PER_TARGET="${1:-20}"
if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 [seconds-per-target]" >&2
  exit 2
fi

TARGETS=(frame_decode sync_session stored_records)
CARGO_FUZZ_VERSION="0.13.2"
# The fuzz build is release with debug assertions; a run that takes this long is a hang.
TIMEOUT_SECONDS=30
# Without a sanitizer libFuzzer cannot see allocation sizes, only resident memory (its
# -rss_limit_mb, 2 GiB), so a decoder that reserves gigabytes it never touches goes unnoticed.
# An address-space limit on the fuzz runs makes such a reservation fail, which aborts: a crash.
ADDRESS_SPACE_KB=$((4 * 1024 * 1024))

header() {
  printf '\n==> %s\n' "$*"
}

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: 'cargo' is not installed or not on PATH (install Rust with rustup: https://rustup.rs)" >&2
  exit 1
fi

# cargo-fuzz lives under the main workspace's target directory (honouring CARGO_TARGET_DIR and
# friends), so it is built once per machine and cleaned with everything else.
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
if [ -z "$TARGET_DIR" ]; then
  echo "error: could not read the target directory from cargo metadata" >&2
  exit 1
fi
TOOLS="$TARGET_DIR/tools"
if [ ! -x "$TOOLS/bin/cargo-fuzz" ]; then
  header "cargo install cargo-fuzz $CARGO_FUZZ_VERSION (into $TOOLS)"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" --root "$TOOLS"
fi
export PATH="$TOOLS/bin:$PATH"

# Logs of each step, for finding the artifact path after a failure.
LOGS="$(mktemp -d "${TMPDIR:-/tmp}/syncline-fuzz.XXXXXX")"

header "cargo fuzz build --sanitizer none (all targets)"
cargo fuzz build --sanitizer none

# Runs one libFuzzer step with its output also in $LOGS/<name>.log; on failure, names the
# target and the artifact libFuzzer wrote, and exits.
run_step() {
  local target="$1" name="$2"
  shift 2
  local log="$LOGS/$name.log"
  if (ulimit -v "$ADDRESS_SPACE_KB" && cargo fuzz run --sanitizer none "$target" "$@") 2>&1 |
    tee "$log"; then
    return 0
  fi
  local artifact
  artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
  echo >&2
  echo "==> FAILED: fuzz target '$target' ($name)" >&2
  if [ -n "$artifact" ]; then
    echo "    crashing input: $artifact" >&2
    # A saved regression that crashes again is already kept; name it instead.
    local kept="" file
    for file in "fuzz/regressions/$target"/*; do
      if [ -f "$file" ] && cmp -s "$file" "$artifact"; then
        kept="$file"
      fi
    done
    if [ -n "$kept" ]; then
      echo "    it is the saved regression $kept: that bug is back (or not fixed yet)" >&2
    else
      echo "    keep it as a regression fixture: cp '$artifact' fuzz/regressions/$target/" >&2
    fi
    echo "    replay it: cargo fuzz run --sanitizer none $target '$artifact'" >&2
  else
    echo "    no artifact was written (a build or setup failure?); see the output above" >&2
  fi
  echo "    full log: $log" >&2
  exit 1
}

for target in "${TARGETS[@]}"; do
  regressions="fuzz/regressions/$target"
  seeds="fuzz/seeds/$target"
  corpus="fuzz/corpus/$target"
  mkdir -p "$regressions" "$corpus"

  # Every saved crasher and every seed, once. A regression that crashes again fails here,
  # before any fuzzing time is spent.
  header "$target: regressions and seeds, once each"
  run_step "$target" "$target-replay" "$regressions" "$seeds" -- \
    -runs=0 -timeout="$TIMEOUT_SECONDS"

  # New inputs go to the first directory, the corpus; the seeds are read as well, so the
  # corpus needs no copy of them. -print_final_stats gives stat::number_of_executed_units.
  header "$target: fuzzing for ${SECONDS_PER_TARGET}s (corpus $corpus)"
  run_step "$target" "$target-fuzz" "$corpus" "$seeds" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT_SECONDS" -print_final_stats=1
done

echo
echo "==> all fuzz targets ran ${SECONDS_PER_TARGET}s without a crash (logs: $LOGS)"
