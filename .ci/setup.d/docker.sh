#!/usr/bin/env bash
# The Docker engine for the docker runtime (harness/runtimes/docker.py, docs/docker.md):
#   1. install Debian's docker.io (engine + client), debootstrap and docker-compose (Compose v1,
#      for the compose.yaml test; `docker compose` v2 is used instead where its plugin exists)
#      where they are missing;
#   2. start dockerd when no engine answers (machines of this kind have no init system);
#   3. build the project's images (offline: a debootstrap base, a host wheelhouse, the host's
#      Envoy and Toxiproxy binaries); a second build with nothing changed takes about a second.
# Idempotent and quick when everything is in place. When the engine cannot be had it says
# why and exits 0, so the rest of the suite still runs; the Docker tests then fail under
# CI=true with that reason (tests/integration/docker_helpers.py).
set -uo pipefail
cd "$(dirname "$0")/../.."

DOCKERD_LOG=/var/log/chaosgate-dockerd.log

warn() { echo "setup: docker: $*" >&2; }

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if ! command -v docker-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
  missing+=(docker-compose)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    warn "${missing[*]} missing and installing needs root (apt-get install ${missing[*]})"
  else
    warn "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }; then
      warn "apt-get install ${missing[*]} failed"
    fi
  fi
fi

if ! engine_answers; then
  if [ "$(id -u)" != 0 ] || ! command -v dockerd >/dev/null 2>&1; then
    warn "no Docker engine answers and this user cannot start dockerd; start it, or run this as root"
    exit 0
  fi
  warn "starting dockerd (log: $DOCKERD_LOG)"
  # --ip 127.0.0.1: a port published without an address is bound on loopback only.
  # setsid + nohup: the engine outlives this script (there is no init system to own it).
  setsid nohup dockerd --ip 127.0.0.1 >"$DOCKERD_LOG" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    engine_answers && break
    sleep 0.25
  done
  if ! engine_answers; then
    warn "dockerd did not answer within 30s; last lines of $DOCKERD_LOG:"
    tail -n 20 "$DOCKERD_LOG" >&2
    exit 0
  fi
fi

# The images: cached by content, so this is about a second when nothing changed.
if ! .venv/bin/python -m harness.runtimes.docker_cli build; then
  warn "building the images failed (see above); the docker runtime will not work"
  exit 0
fi
