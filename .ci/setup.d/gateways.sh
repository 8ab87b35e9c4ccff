#!/usr/bin/env bash
# Debian's HAProxy and nginx, the gateways beside Envoy (harness/gateways/haproxy.py, nginx.py).
# Idempotent: does nothing when both binaries are there; apt-get update only when the package
# lists do not know them. The system services are never started: a policy-rc.d that refuses
# every start is in place during the install (and removed after, unless it was there before).
set -euo pipefail
if [ -x /usr/sbin/haproxy ] && [ -x /usr/sbin/nginx ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  # The HAProxy and nginx tests skip without them, and fail under CI=true.
  echo "setup: warning: haproxy/nginx are missing and installing them needs root (apt-get install haproxy nginx)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show haproxy nginx >/dev/null 2>&1; then
  echo "setup: apt-get update (package lists do not know haproxy/nginx)" >&2
  apt-get update -q >/dev/null
fi
policy=/usr/sbin/policy-rc.d
created_policy=no
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# chaosgate setup: never start services while installing\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  created_policy=yes
fi
trap '[ "$created_policy" = yes ] && rm -f "$policy"' EXIT
echo "setup: installing Debian's haproxy and nginx (apt-get; services are not started)" >&2
apt-get install -y -q --no-install-recommends haproxy nginx >/dev/null
/usr/sbin/haproxy -v | head -n 1 >&2
/usr/sbin/nginx -v
