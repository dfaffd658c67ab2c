#!/usr/bin/env bash
# Runs the side-by-side benchmarks: Syncline, the reference JavaScript server
# (@automerge/automerge-repo-sync-server from npm) and a minimal samod-based server, each started
# fresh on 127.0.0.1 for every scenario and driven by syncline-loadgen in its own process; then
# writes BENCHMARKS.md (and its plots under benches/plots/) from the results.
#
# usage: benches/compare.sh [--smoke] [--servers "syncline reference samod"]
#
#   --smoke    every scenario at a tiny size and each criterion micro-benchmark once, results in
#              target/bench-smoke/ (BENCHMARKS.md is left alone); the test command runs this so
#              the harness cannot rot.
#
# Needs what the test command needs (Rust, Node.js 20+ with npm, Python 3 with venv); matplotlib
# for the plots is installed into target/bench-venv from PyPI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SMOKE=0
SERVERS="syncline reference samod"
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --servers) SERVERS="$2"; shift ;;
    *) echo "usage: benches/compare.sh [--smoke] [--servers LIST]" >&2; exit 2 ;;
  esac
  shift
done

if [ "$SMOKE" -eq 1 ]; then
  PROFILE=debug
  OUT="$ROOT/target/bench-smoke"
  cargo build -q -p syncline-server -p syncline-benches
else
  PROFILE=release
  OUT="$ROOT/target/bench"
  cargo build -q --release -p syncline-server -p syncline-benches
fi
TARGET="$ROOT/target"
LOADGEN="$TARGET/$PROFILE/syncline-loadgen"
SYNCLINE="$TARGET/$PROFILE/syncline-server"
rm -rf "$OUT"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"

case " $SERVERS " in
  *" samod "*)
    SAMOD_PROFILE=$([ "$SMOKE" -eq 1 ] && echo "" || echo "--release")
    cargo build -q $SAMOD_PROFILE --manifest-path benches/samod-server/Cargo.toml \
      --target-dir "$TARGET/samod"
    SAMOD="$TARGET/samod/$([ "$SMOKE" -eq 1 ] && echo debug || echo release)/samod-bench-server"
    ;;
esac
case " $SERVERS " in
  *" reference "*)
    (cd tests/js && npm install --no-audit --no-fund --loglevel=error)
    REFERENCE="$(node -e 'const r = require.resolve("@automerge/automerge-repo-sync-server/package.json", { paths: ["tests/js"] }); const m = require(r); console.log(require("path").resolve(require("path").dirname(r), typeof m.bin === "string" ? m.bin : Object.values(m.bin)[0]))')"
    ;;
esac

# One server at a time: SERVER_PID and SERVER_URL describe the running one.
SERVER_PID=""
SERVER_URL=""
SCRATCH=""

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits (at most 60 s) until FILE has a line matching PATTERN; prints the line.
wait_for_line() {
  local file="$1" pattern="$2" waited=0
  until grep -m1 -E "$pattern" "$file" 2>/dev/null; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "error: the server exited before it was ready; its output:" >&2
      cat "$file" "$SCRATCH/stderr" >&2 || true
      return 1
    fi
    waited=$((waited + 1))
    if [ "$waited" -gt 600 ]; then
      echo "error: the server was not ready within 60 s" >&2
      return 1
    fi
    sleep 0.1
  done
}

# Starts server NAME in a fresh scratch directory, or with --again in the current one, on the
# data the last run of it left (for the cold-load scenario).
start_server() {
  local name="$1"
  [ "${2:-}" = --again ] || SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/syncline-compare-$name-XXXXXX")"
  local port
  port="$(free_port)"
  case "$name" in
    syncline)
      # Documents nobody has open unload after 5 s (default 60 s), so the documents scenario
      # shows memory after unloading within its watch window.
      cat > "$SCRATCH/config.toml" <<TOML
[sync]
idle_unload_ms = 5000
max_connections_per_ip = 30000
TOML
      RUST_LOG=warn "$SYNCLINE" --listen "127.0.0.1:$port" --data-dir "$SCRATCH/data" \
        --config "$SCRATCH/config.toml" >"$SCRATCH/stdout" 2>"$SCRATCH/stderr" &
      SERVER_PID=$!
      wait_for_line "$SCRATCH/stdout" "listening on" >/dev/null
      ;;
    reference)
      mkdir -p "$SCRATCH/cwd" "$SCRATCH/data"
      (cd "$SCRATCH/cwd" && PORT="$port" DATA_DIR="$SCRATCH/data" exec node \
        -r "$ROOT/tests/js/force-loopback.cjs" "$REFERENCE" >"$SCRATCH/stdout" 2>"$SCRATCH/stderr") &
      SERVER_PID=$!
      wait_for_line "$SCRATCH/stdout" "Listening on port" >/dev/null
      ;;
    samod)
      "$SAMOD" "$port" "$SCRATCH/data" >"$SCRATCH/stdout" 2>"$SCRATCH/stderr" &
      SERVER_PID=$!
      wait_for_line "$SCRATCH/stdout" "listening on" >/dev/null
      ;;
  esac
  SERVER_URL="ws://127.0.0.1:$port/"
}

# Stops the running server by its pid, keeping its scratch directory.
stop_process() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}

stop_server() {
  stop_process
  [ -n "$SCRATCH" ] && rm -rf "$SCRATCH"
  SCRATCH=""
}

# Waits (at most 60 s) until DIR's size has not changed for two readings a second apart: the
# reference and samod servers acknowledge a change before their storage has written it.
wait_written() {
  local dir="$1" last="" now stable=0
  for _ in $(seq 1 60); do
    now="$(du -sb "$dir" 2>/dev/null | cut -f1)"
    if [ "$now" = "$last" ]; then
      stable=$((stable + 1))
      [ "$stable" -ge 2 ] && return 0
    else
      stable=0
    fi
    last="$now"
    sleep 1
  done
  echo "error: $dir was still being written after 60 s" >&2
  return 1
}
trap stop_server EXIT

# Scenario sizes: full, or tiny with --smoke.
if [ "$SMOKE" -eq 1 ]; then
  COLLAB=(--docs 3 --editors 3 --seconds 1 --large-docs 1 --doc-bytes 4096)
  COLLAB_SMALL=(--docs 2 --editors 2 --seconds 1)
  COLD=(--history-ops 5000)
  PACED_SECONDS=2
  FANOUT=(--subscribers 10 --rate 10 --seconds 1)
  DOCUMENTS=(--docs 300 --seconds 1)
  IDLE=(--connections 50 --seconds 1)
  RUN_LIMIT=120
else
  COLLAB=(--docs 100 --editors 10 --seconds 10 --large-docs 10 --doc-bytes 65536)
  COLLAB_SMALL=(--docs 10 --editors 10 --seconds 10 --large-docs 1 --doc-bytes 65536)
  COLD=(--history-ops 260000)
  PACED_SECONDS=30
  FANOUT=(--subscribers 1000 --rate 10 --seconds 10)
  DOCUMENTS=(--docs 100000 --seconds 15)
  IDLE=(--connections 10000 --seconds 1)
  RUN_LIMIT=900
fi

# Records that LABEL could not run SCENARIO, with the last line of its ERRORS file as the reason.
record_failure() {
  local label="$1" scenario="$2" errors="$3" why
  why="$(tail -n 1 "$errors" 2>/dev/null | sed 's/^syncline-loadgen: //')"
  python3 -c 'import json, sys; print(json.dumps({"label": sys.argv[1], "scenario": sys.argv[2], "failed": sys.argv[4] or "no result within " + sys.argv[3] + " s"}))' \
    "$label" "$scenario" "$RUN_LIMIT" "$why" >>"$RESULTS"
  FAILURES=$((FAILURES + 1))
}

# Runs loadgen against the running server, bounded by RUN_LIMIT; its errors go to ERRORS too.
loadgen() {
  local errors="$1"
  shift
  timeout "$RUN_LIMIT" "$LOADGEN" --url "$SERVER_URL" --server-pid "$SERVER_PID" "$@" \
    2> >(tee -a "$errors" >&2)
}

# Runs one scenario against one server; a failure is recorded, not fatal, so the table can say
# which server could not run what. With LABEL set, the run is recorded under it.
run() {
  local name="$1" scenario="$2"
  shift 2
  local label="${LABEL:-$name}"
  echo "==> $scenario: $label"
  start_server "$name"
  local errors="$OUT/$label-$scenario.stderr"
  local extra=()
  [ "$name" = syncline ] && extra=(--syncline-metrics)
  if ! loadgen "$errors" --label "$label" --scenario "$scenario" --json "$RESULTS" \
      "${extra[@]}" "$@"; then
    record_failure "$label" "$scenario" "$errors"
  fi
  stop_server
}

# Cold load: the history is uploaded, the server stopped once its storage is written and
# started again on the same data, and the document asked for by a fresh peer.
run_cold() {
  local name="$1"
  shift
  echo "==> cold: $name"
  start_server "$name"
  local errors="$OUT/$name-cold.stderr" history
  history="$SCRATCH/history.automerge"
  if loadgen "$errors" --label "$name" --scenario cold-seed --history "$history" "$@" &&
    wait_written "$SCRATCH/data" && stop_process && start_server "$name" --again &&
    loadgen "$errors" --label "$name" --scenario cold --history "$history" --json "$RESULTS" "$@"
  then :; else
    record_failure "$name" cold "$errors"
  fi
  stop_server
}

# Syncline's collaboration run again, each editor paced at the rate the reference server
# sustained per editor in its own run (when it ran), for latency at that load.
run_paced() {
  local rate
  rate="$(python3 -c 'import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ref = [r for r in runs if r["scenario"] == "collab" and r["label"] == "reference" and not r.get("failed")]
print(round(ref[-1]["acked_per_s"] / ref[-1]["peers"], 3) if ref and ref[-1]["acked_per_s"] > 0 else "")' "$RESULTS")"
  if [ -z "$rate" ]; then
    echo "==> collab at the reference server's rate: skipped (the reference server did not run)"
    return 0
  fi
  # Three times as long, so that each editor writes a few times even at a slow rate.
  LABEL=syncline-paced run syncline collab "${COLLAB[@]}" --rate "$rate" --seconds "$PACED_SECONDS"
}

ulimit -n 20000 2>/dev/null || true
FAILURES=0
for name in $SERVERS; do run "$name" collab "${COLLAB[@]}"; done
case " $SERVERS " in *" syncline "*) run_paced ;; esac
echo "==> collab: the automerge crate in-process (the floor)"
"$LOADGEN" --scenario collab-floor --label automerge --json "$RESULTS" "${COLLAB[@]}"
# A tenth of the size, which the samod server can set up.
for name in $SERVERS; do run "$name" collab "${COLLAB_SMALL[@]}" --record-as collab-small; done
for name in $SERVERS; do run "$name" fanout "${FANOUT[@]}"; done
for name in $SERVERS; do run "$name" documents "${DOCUMENTS[@]}"; done
for name in $SERVERS; do run "$name" idle "${IDLE[@]}"; done
for name in $SERVERS; do run_cold "$name" "${COLD[@]}"; done

# redb's own durable commit rate on this disk, one small write per transaction.
echo "==> commit floor: redb"
"$TARGET/$PROFILE/syncline-commit-floor" --seconds "$([ "$SMOKE" -eq 1 ] && echo 1 || echo 5)" \
  --dir "$TARGET" --json "$RESULTS"

# Criterion micro-benchmarks: once each in the smoke run (as the test profile does), measured
# otherwise; report.py reads criterion's estimates.
if [ "$SMOKE" -eq 1 ]; then
  cargo test -q -p syncline-benches --bench micro
else
  echo "==> micro-benchmarks (criterion)"
  rm -rf "$TARGET/criterion"
  cargo bench -q -p syncline-benches --bench micro >/dev/null
fi

if [ "$SMOKE" -eq 1 ]; then
  python3 benches/report.py "$RESULTS" --out "$OUT/BENCHMARKS.md" --plots "$OUT/plots" --no-plots
  # The smoke run proves the harness: every scenario must have run against Syncline.
  if [ "$FAILURES" -gt 0 ]; then
    echo "error: $FAILURES smoke runs failed" >&2
    exit 1
  fi
  echo "==> smoke benchmarks ran; report in $OUT/BENCHMARKS.md"
  exit 0
fi

VENV="$TARGET/bench-venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check matplotlib==3.9.2 || true
fi
"$VENV/bin/python" benches/report.py "$RESULTS" --out BENCHMARKS.md --plots benches/plots \
  --criterion "$TARGET/criterion"
echo "==> BENCHMARKS.md written ($FAILURES runs failed; the table says which)"
