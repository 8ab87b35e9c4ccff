#!/usr/bin/env bash
# vegeta, the HTTP load tool bench/load_ceiling.py measures chaosgate's load against: built with a pinned
# `go install` from the Go module proxy into .tools/bin (under a minute; skipped when that version is there).
set -euo pipefail
cd "$(dirname "$0")/../.."

VEGETA_VERSION=v12.13.0
TOOLS=.tools/bin
if [ ! -x "$TOOLS/vegeta" ] || [ "$(cat "$TOOLS/.vegeta-version" 2>/dev/null)" != "$VEGETA_VERSION" ]; then
  echo "setup: building vegeta $VEGETA_VERSION (go install)" >&2
  mkdir -p "$TOOLS"
  tmp=$(mktemp -d)
  GOBIN="$tmp" go install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
  mv "$tmp/vegeta" "$TOOLS/vegeta"
  rm -rf "$tmp"
  echo "$VEGETA_VERSION" > "$TOOLS/.vegeta-version"
fi
