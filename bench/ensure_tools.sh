#!/usr/bin/env bash
# Installs what `make bench` needs from Debian if it is missing: Postfix's smtp-sink (the SMTP
# server of the benchmark) and wrk (the HTTP load generator). The Postfix daemon itself is not
# wanted: it is stopped if the package started it, so nothing of it stays bound to port 25.
set -euo pipefail

missing=()
command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ] || missing+=(postfix)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "bench: needs ${missing[*]} (apt-get install -y ${missing[*]}) and root to install" >&2
        exit 1
    fi
    echo "bench: installing ${missing[*]}"
    # "No configuration": Postfix installs its binaries without setting up a mail system.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
        || { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
fi
if command -v postfix >/dev/null 2>&1 && postfix status >/dev/null 2>&1; then
    echo "bench: stopping the Postfix daemon the package started (only smtp-sink is used)"
    postfix stop >/dev/null 2>&1 || true
fi
if ! rabbitmqctl -q status >/dev/null 2>&1; then
    echo "bench: RabbitMQ is not running (rabbitmq-server -detached)" >&2
    exit 1
fi
