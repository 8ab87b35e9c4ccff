#!/usr/bin/env bash
# Debian's Chromium, for the report tests: they open generated HTML reports in a real
# headless browser and take a screenshot. Idempotent: does nothing when it is installed.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  # Only the browser tests need it: they skip without it, and fail under CI=true.
  echo "setup: warning: chromium is missing and installing it needs root (apt-get install chromium)" >&2
  exit 0
fi
echo "setup: installing Debian's chromium (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version >&2
