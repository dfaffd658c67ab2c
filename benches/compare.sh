#!/usr/bin/env bash
# Runs the side-by-side benchmarks: Syncline, the reference JavaScript server
# (@automerge/automerge-repo-sync-server from npm) and a minimal samod-based server, each started
# fresh on 127.0.0.1 for every scenario and driven by syncline-loadgen in its own process; then
# writes BENCHMARKS.md (and its plots under benches/plots/) from the results.
#
# usage: benches/compare.sh [--smoke] [--servers "syncline reference samod"]
#
#   --smoke    every scenario at a tiny size, results in target/bench-smoke/ (BENCHMARKS.md is
#              left alone); the test command runs this so the harness cannot rot.
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

start_server() {
  local name="$1"
  SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/syncline-compare-$name-XXXXXX")"
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

stop_server() {
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
  [ -n "$SCRATCH" ] && rm -rf "$SCRATCH"
  SCRATCH=""
}
trap stop_server EXIT

# Scenario sizes: full, or tiny with --smoke.
if [ "$SMOKE" -eq 1 ]; then
  COLLAB=(--docs 3 --editors 3 --seconds 1)
  FANOUT=(--subscribers 10 --rate 10 --seconds 1)
  DOCUMENTS=(--docs 300 --seconds 1)
  IDLE=(--connections 50 --seconds 1)
  RUN_LIMIT=120
else
  COLLAB=(--docs 100 --editors 10 --seconds 10)
  FANOUT=(--subscribers 1000 --rate 10 --seconds 10)
  DOCUMENTS=(--docs 100000 --seconds 15)
  IDLE=(--connections 10000 --seconds 1)
  RUN_LIMIT=900
fi

# Runs one scenario against one server; a failure is recorded, not fatal, so the table can say
# which server could not run what.
run() {
  local name="$1" scenario="$2"
  shift 2
  echo "==> $scenario: $name"
  start_server "$name"
  local errors="$OUT/$name-$scenario.stderr"
  local extra=()
  [ "$name" = syncline ] && extra=(--syncline-metrics)
  if ! timeout "$RUN_LIMIT" "$LOADGEN" --url "$SERVER_URL" --server-pid "$SERVER_PID" \
      --label "$name" --scenario "$scenario" --json "$RESULTS" "${extra[@]}" "$@" \
      2> >(tee "$errors" >&2); then
    local why
    why="$(tail -n 1 "$errors" | sed 's/^syncline-loadgen: //')"
    python3 -c 'import json, sys; print(json.dumps({"label": sys.argv[1], "scenario": sys.argv[2], "failed": sys.argv[4] or "no result within " + sys.argv[3] + " s"}))' \
      "$name" "$scenario" "$RUN_LIMIT" "$why" >>"$RESULTS"
    FAILURES=$((FAILURES + 1))
  fi
  stop_server
}

ulimit -n 20000 2>/dev/null || true
FAILURES=0
for name in $SERVERS; do run "$name" collab "${COLLAB[@]}"; done
for name in $SERVERS; do run "$name" fanout "${FANOUT[@]}"; done
for name in $SERVERS; do run "$name" documents "${DOCUMENTS[@]}"; done
for name in $SERVERS; do run "$name" idle "${IDLE[@]}"; done

# redb's own durable commit rate on this disk, one small write per transaction.
echo "==> commit floor: redb"
"$TARGET/$PROFILE/syncline-commit-floor" --seconds "$([ "$SMOKE" -eq 1 ] && echo 1 || echo 5)" \
  --dir "$TARGET" --json "$RESULTS"

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
"$VENV/bin/python" benches/report.py "$RESULTS" --out BENCHMARKS.md --plots benches/plots
echo "==> BENCHMARKS.md written ($FAILURES runs failed; the table says which)"
