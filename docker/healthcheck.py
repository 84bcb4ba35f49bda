"""Container health check of the TACSO images: one script for every command the image runs.

It reads the command of PID 1 (the process the container was started with):

- ``tacso-<svc> serve``: ``GET http://127.0.0.1:$<SVC>_PORT/healthz`` must answer 200;
- ``tacso-<svc> relay`` and ``tacso-notify worker``: PID 1 is that process (it has not been
  replaced by a shell) and the broker at ``$AMQP_URL`` accepts a connection and a login: a worker
  or relay that cannot reach RabbitMQ is reported unhealthy. It does not detect a process that is
  alive and connected but stuck; watch queue depth and the ledger for that (docs/operations.md);
- anything else (``migrate``, ``seed``, a shell): healthy while it runs.

Exit 0 when healthy, 1 otherwise (Docker's HEALTHCHECK contract). Cheap: no database access.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

DEFAULT_PORTS = {"registry": 5001, "events": 5002, "notify": 5003}


def pid1_args() -> list[str]:
    raw = Path("/proc/1/cmdline").read_bytes()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def service_of(args: list[str]) -> str | None:
    for arg in args:
        name = os.path.basename(arg)
        if name.startswith("tacso-") and name[len("tacso-") :] in DEFAULT_PORTS:
            return name[len("tacso-") :]
        if name.startswith("tacso_") and name[len("tacso_") :] in DEFAULT_PORTS:
            return name[len("tacso_") :]  # python -m tacso_<svc>
    return None


def check_http(service: str) -> bool:
    port = os.environ.get(f"{service.upper()}_PORT") or str(DEFAULT_PORTS[service])
    url = f"http://127.0.0.1:{port}/healthz"
    with urllib.request.urlopen(url, timeout=4) as response:
        return bool(response.status == 200)


def check_broker() -> bool:
    from kombu import Connection  # only workers and relays pay for the import

    url = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672//")
    with Connection(url, connect_timeout=4) as connection:
        connection.ensure_connection(max_retries=1)
        return bool(connection.connected)


def main() -> int:
    args = pid1_args()
    service = service_of(args)
    if service is None:
        return 0
    try:
        if "serve" in args:
            return 0 if check_http(service) else 1
        if "worker" in args or "relay" in args:
            return 0 if check_broker() else 1
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy; say why
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
