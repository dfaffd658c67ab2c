#!/usr/bin/env bash
# Rebuilds the calendar web app (app/) into app/dist/, which is committed: the server embeds those
# files when it is compiled, so running it needs no Node. Run this after changing anything under
# app/ and commit app/dist/ with the change; then rebuild the server.
#
# Needs: Node.js 20 or newer with npm. Installs app/'s packages with `npm install` (not `npm ci`:
# the lock file names cbor-x's optional native helpers, which npm ci insists on), type-checks the
# TypeScript and runs the Vite build.
#
# usage: scripts/build-app.sh           rebuild app/dist/
#        scripts/build-app.sh --check   build into a scratch directory and fail if it differs from
#                                       app/dist/ (the test command runs this, so the committed
#                                       build cannot drift from its source)
set -euo pipefail

CHECK=0
case "${1:-}" in
  "") ;;
  --check) CHECK=1 ;;
  *) echo "usage: scripts/build-app.sh [--check]" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/app"

command -v npm >/dev/null || { echo "error: npm is required (install Node.js 20 or newer)" >&2; exit 1; }

echo "==> npm install (app/)"
npm install --no-audit --no-fund --loglevel=error

if [ "$CHECK" -eq 1 ]; then
  SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/syncline-app-XXXXXX")"
  trap 'rm -rf "$SCRATCH"' EXIT
  echo "==> type check and vite build (into $SCRATCH, to compare with app/dist/)"
  npm run --silent build -- --outDir "$SCRATCH" --emptyOutDir >/dev/null
  if ! diff -r "$SCRATCH" dist >/dev/null; then
    diff -rq "$SCRATCH" dist >&2 || true
    echo "error: app/dist/ is not the build of app/src/: run scripts/build-app.sh and commit" \
      "app/dist/" >&2
    exit 1
  fi
  echo "==> app/dist/ is the build of app/src/"
  exit 0
fi

echo "==> type check and vite build (app/dist/)"
npm run --silent build

echo "==> built:"
find dist -type f | sort | while read -r file; do
  printf '  %8s  %s\n' "$(wc -c <"$file")" "$file"
done
