"""Container health check of the TACSO images: one script for every command the image runs.

It reads the command of PID 1 (the process the container was started with):

- ``tacso-<svc> serve``: ``GET http://127.0.0.1:<port>/healthz`` must answer 200;
- ``tacso-<svc> relay`` and ``tacso-notify worker``: PID 1 is that process (it has not been
  replaced by a shell) and the broker at ``$AMQP_URL`` accepts a connection and a login: a worker
  or relay that cannot reach RabbitMQ is reported unhealthy. With a cluster (``AMQP_URL`` listing
  several nodes separated by ``;``) one node that answers is enough: the process fails over to it.
  It does not detect a process that is alive and connected but stuck; watch queue depth and the
  ledger for that (docs/operations.md);
- ``tacso-events scheduler``: its database accepts a connection and answers a query;
- anything else (``migrate``, ``seed``, a shell): healthy while it runs.

The port and the broker's URL are read by the same ``CommonSettings.load`` the process used,
with the service's own name and default port (``tacso_<svc>.SERVICE``/``DEFAULT_PORT``), never
from defaults of its own. Only those light modules are imported: a check that imported the whole
service (tokens, crypto, templates) took seconds under load and timed out.

Exit 0 when healthy, 1 otherwise (Docker's HEALTHCHECK contract). Cheap: no database access.
"""

from __future__ import annotations

import importlib
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

SERVICES = ("registry", "events", "notify")


def pid1_args() -> list[str]:
    raw = Path("/proc/1/cmdline").read_bytes()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def service_of(args: list[str]) -> str | None:
    for arg in args:
        name = os.path.basename(arg)
        if name.startswith("tacso-") and name[len("tacso-") :] in SERVICES:
            return name[len("tacso-") :]
        if name.startswith("tacso_") and name[len("tacso_") :] in SERVICES:
            return name[len("tacso_") :]  # python -m tacso_<svc>
    return None


def common_settings(service: str) -> Any:
    """The service's common settings, read as its own ``load_settings`` reads them."""
    from tacso_shared.config import CommonSettings

    package = importlib.import_module(f"tacso_{service}")
    return CommonSettings.load(package.SERVICE, package.DEFAULT_PORT, os.environ)


def check_http(service: str) -> bool:
    url = f"http://127.0.0.1:{common_settings(service).port}/healthz"
    with urllib.request.urlopen(url, timeout=4) as response:
        return bool(response.status == 200)


def check_broker(service: str) -> bool:
    # Only workers and relays pay for the import.
    from tacso_shared.messaging import connect, ensure_connected

    url = common_settings(service).amqp_url
    with connect(url, heartbeat=0, timeout=4) as connection:
        ensure_connected(connection)
        return bool(connection.connected)


def check_database(service: str) -> bool:
    # The scheduler's work is in its database: healthy while the database answers.
    from sqlalchemy import text

    from tacso_shared.db import make_engine

    engine = make_engine(common_settings(service).database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def main() -> int:
    args = pid1_args()
    service = service_of(args)
    if service is None:
        return 0
    try:
        if "serve" in args:
            return 0 if check_http(service) else 1
        if "worker" in args or "relay" in args:
            return 0 if check_broker(service) else 1
        if "scheduler" in args:
            return 0 if check_database(service) else 1
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy; say why
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
