#!/usr/bin/env bash
# Installs from Debian what some tests run besides Python, if it is missing: promtool (Debian's
# prometheus package) for the alert rule tests, and Chromium for the headless /docs test. Only
# the binaries are wanted: a Prometheus daemon the package may have started is stopped.
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "tests: needs ${missing[*]} (apt-get install -y ${missing[*]}) and root to install" >&2
    exit 0  # the tests that need them skip, saying why
fi
echo "tests: installing ${missing[*]} from Debian"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v service >/dev/null 2>&1; then
    service prometheus stop >/dev/null 2>&1 || true
fi
