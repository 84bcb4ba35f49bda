#!/usr/bin/env bash
# Test-harness only: make a Docker engine and the images docker-compose.yml names available here.
#
#   1. If no engine answers: install docker.io + docker-compose from Debian (when missing) and
#      start dockerd in the background.
#   2. Unless TACSO_COMPOSE_IMAGES=official (a machine that can pull from Docker Hub): build local
#      stand-ins for the third-party images from a debootstrapped Debian 12 base and tag them with
#      the names the compose file uses. The base image is cached (built once per machine); the
#      stand-ins are rebuilt with Docker's layer cache, so warm runs take seconds.
#
# The machine's CA bundle ($PIP_CERT) goes into the python stand-in only, so that pip inside the
# operator's (unchanged) Dockerfiles can verify PyPI here. Nothing of this is in docker/.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
LOG_DIR=${TACSO_COMPOSE_LOG_DIR:-/tmp/tacso-compose}
mkdir -p "$LOG_DIR"
BASE_IMAGE=tacso-standin/debian:bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

say() { echo "compose-harness: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

# ---- 1. engine ------------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null || ! { command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1; }; then
    say "installing docker.io and docker-compose from Debian"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
      docker.io docker-compose >"$LOG_DIR/apt.log" 2>&1 || {
      as_root apt-get update -q >>"$LOG_DIR/apt.log" 2>&1
      as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
        docker.io docker-compose >>"$LOG_DIR/apt.log" 2>&1
    } || { say "apt-get install failed, see $LOG_DIR/apt.log"; exit 1; }
  fi
  if ! docker info >/dev/null 2>&1; then
    say "starting dockerd in the background (log: $LOG_DIR/dockerd.log)"
    as_root setsid -f dockerd >"$LOG_DIR/dockerd.log" 2>&1 </dev/null
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { say "dockerd did not start, see $LOG_DIR/dockerd.log"; exit 1; }
  fi
fi

if [ "${TACSO_COMPOSE_IMAGES:-standin}" = official ]; then
  say "TACSO_COMPOSE_IMAGES=official: using the official images (docker compose pulls them)"
  exit 0
fi

# ---- 2. the Debian 12 base (cached per machine) ---------------------------------------------
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 install -y -q debootstrap >>"$LOG_DIR/apt.log" 2>&1
  ROOTFS=$(mktemp -d /tmp/tacso-rootfs.XXXXXX)
  trap 'as_root rm -rf "$ROOTFS"' EXIT
  say "debootstrapping Debian 12 into $ROOTFS (about a minute; log: $LOG_DIR/debootstrap.log)"
  as_root debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >"$LOG_DIR/debootstrap.log" 2>&1 \
    || { say "debootstrap failed, see $LOG_DIR/debootstrap.log"; exit 1; }
  # What the official debian images do: no daemons started by postinst, small apt footprint.
  printf '#!/bin/sh\nexit 101\n' | as_root tee "$ROOTFS/usr/sbin/policy-rc.d" >/dev/null
  as_root chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    | as_root tee "$ROOTFS/etc/apt/apt.conf.d/90tacso-slim" >/dev/null
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
    "$MIRROR" "$MIRROR" | as_root tee "$ROOTFS/etc/apt/sources.list" >/dev/null
  as_root rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
  as_root tar -C "$ROOTFS" -c . | docker import --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
  say "base image $BASE_IMAGE ready"
fi

# ---- 3. stand-ins, tagged as the compose file's images ----------------------------------------
# Names come from the compose file so the two cannot drift apart.
image_of() { grep -E "^\s+image: *$1" "$HERE/../../docker-compose.yml" | head -n1 | sed -E 's/^\s+image: *//; s/["'\'']//g'; }
build() {  # tag context: one stand-in, its output in $LOG_DIR/build-<name>.log
  local log="$LOG_DIR/build-$(basename "$2").log"
  if docker build -q --build-arg BASE="$BASE_IMAGE" -t "$1" "$2" >"$log" 2>&1; then
    say "stand-in $1 ready"
  else
    tail -n 40 "$log" >&2; say "building $1 failed (log: $log)"; return 1
  fi
}

CA=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
[ -r "$CA" ] || { say "no CA bundle at $CA (set PIP_CERT)"; exit 1; }
PYCTX=$(mktemp -d /tmp/tacso-pyctx.XXXXXX)
mkdir -p "$PYCTX/python"
cp -r "$HERE/standins/python/." "$PYCTX/python/"
cp "$CA" "$PYCTX/python/host-ca-bundle.crt"
# The Mailpit stand-in runs the project's SMTP catcher: copy that module next to it.
MPCTX=$(mktemp -d /tmp/tacso-mpctx.XXXXXX)/mailpit  # .../mailpit: the build log's name
mkdir -p "$MPCTX"
cp -r "$HERE/standins/mailpit/." "$MPCTX/"
mkdir -p "$MPCTX/tacso_devtools"
cp "$HERE/../../devtools/tacso_devtools/__init__.py" "$HERE/../../devtools/tacso_devtools/smtp_catcher.py" \
  "$MPCTX/tacso_devtools/"
PYTHON_TAG=$(grep -hE '^ARG PYTHON_IMAGE=' "$HERE/../../docker/"*.Dockerfile | head -n1 | cut -d= -f2)
# Independent builds, in parallel (each is mostly apt downloads and dpkg).
pids=()
build "$PYTHON_TAG" "$PYCTX/python" & pids+=($!)
build "$(image_of rabbitmq)" "$HERE/standins/rabbitmq" & pids+=($!)
build "$(image_of postgres)" "$HERE/standins/postgres" & pids+=($!)
build "$(image_of axllent/mailpit)" "$MPCTX" & pids+=($!)
build "$(image_of prom/prometheus)" "$HERE/standins/prometheus" & pids+=($!)
build "$(image_of redis)" "$HERE/standins/redis" & pids+=($!)
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
rm -rf "$PYCTX" "$(dirname "$MPCTX")"
[ "$failed" = 0 ] || exit 1
say "stand-ins ready"

# Older builds of the stand-ins and of the service images, left untagged by the builds above and
# by earlier runs: remove them (only ours, by label) so repeated runs do not fill the disk.
docker image prune -f --filter label=org.tacso.standin=1 >/dev/null 2>&1 || true
docker image prune -f --filter label=org.opencontainers.image.vendor=TACSO >/dev/null 2>&1 || true
