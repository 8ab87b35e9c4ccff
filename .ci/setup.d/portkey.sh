#!/usr/bin/env bash
# The Portkey AI gateway (harness/gateways/portkey.py): `@portkey-ai/gateway`, pinned, installed with npm into
# .tools/portkey (node_modules there; started as `node .../build/start-server.js`). Idempotent: skipped when that
# version is there. Needs Node.js >= 18 and npm (Debian's nodejs/npm, or the machine's own).
set -euo pipefail
cd "$(dirname "$0")/../.."

PORTKEY_VERSION=1.15.2
DIR=.tools/portkey
if [ -f "$DIR/node_modules/@portkey-ai/gateway/build/start-server.js" ] \
    && [ "$(cat "$DIR/.portkey-version" 2>/dev/null)" = "$PORTKEY_VERSION" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  # The Portkey tests skip without it, and fail under CI=true.
  echo "setup: warning: node/npm are missing: the Portkey gateway is not installed (apt-get install nodejs npm)" >&2
  exit 0
fi
echo "setup: installing the Portkey AI gateway $PORTKEY_VERSION (npm)" >&2
mkdir -p "$DIR"
[ -f "$DIR/package.json" ] || printf '{"name": "chaosgate-portkey", "private": true}\n' > "$DIR/package.json"
npm install --prefix "$DIR" --no-audit --no-fund --save-exact --loglevel=error "@portkey-ai/gateway@$PORTKEY_VERSION" >&2
echo "$PORTKEY_VERSION" > "$DIR/.portkey-version"
