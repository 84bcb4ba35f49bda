"""The whole system as real processes: three APIs, two relays, two notify workers.

Each process is the same command an operator runs (``python -m tacso_<service> ...``), taken from
the process manifest (``tacso_devtools.processes``) and configured only through environment
variables, so the tests exercise exactly what ``make up`` and docker compose start.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from support.waiting import wait_until
from tacso_devtools.processes import PROCESSES, SETUP, Process

ADMIN_KEY = "test-admin-key"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class ProcessSpec:
    """One process of the stack: a manifest entry, the port an API serves on, extra variables."""

    process: Process
    port: int | None = None
    env: dict[str, str] = field(default_factory=dict)


class Stack:
    """Starts, stops and kills the stack's processes; talks to its APIs."""

    def __init__(
        self,
        workdir: Path,
        amqp_url: str,
        database_urls: dict[str, str],
        smtp_host: str,
        smtp_port: int,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.ports = {name: free_port() for name in ("registry", "events", "notify")}
        self.env = {
            **os.environ,
            "VAR_DIR": str(workdir),
            "ADMIN_API_KEY": ADMIN_KEY,
            "AMQP_URL": amqp_url,
            "REGISTRY_DATABASE_URL": database_urls["registry"],
            "EVENTS_DATABASE_URL": database_urls["events"],
            "NOTIFY_DATABASE_URL": database_urls["notify"],
            **{p.port_env: str(self.ports[p.service]) for p in PROCESSES if p.port_env},
            "REGISTRY_URL": f"http://127.0.0.1:{self.ports['registry']}",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{self.ports['events']}",
            "BIND_HOST": "127.0.0.1",
            "SMTP_HOST": smtp_host,
            "SMTP_PORT": str(smtp_port),
            "RETRY_DELAYS": "1,1,2,2,5,5,10",
            "OUTBOX_POLL_INTERVAL": "0.05",
            "WEB_CONCURRENCY": "1",
            "LOG_LEVEL": "INFO",
            **(extra_env or {}),
        }
        # The manifest's processes under their manifest names (those of docker-compose.yml).
        self.specs: dict[str, ProcessSpec] = {
            process.name: ProcessSpec(
                process, self.ports[process.service] if process.role == "api" else None
            )
            for process in PROCESSES
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {ADMIN_KEY}"

    # ---- lifecycle -------------------------------------------------------------------------
    def migrate(self) -> None:
        """Apply every service's migrations, as ``make up`` does before starting."""
        for step in SETUP:
            subprocess.run(
                step.python_argv(sys.executable),
                env=self.env,
                check=True,
                capture_output=True,
                timeout=120,
            )

    def start(self, *names: str, env: dict[str, str] | None = None) -> None:
        """Start processes (all if none named) and wait until the APIs among them are healthy."""
        for name in names or tuple(self.specs):
            spec = self.specs[name]
            log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
            self.processes[name] = subprocess.Popen(
                spec.process.python_argv(sys.executable),
                env={**self.env, **spec.env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
        for name in names or tuple(self.specs):
            port = self.specs[name].port
            if port is not None:
                wait_until(
                    functools.partial(self._healthy, port),
                    timeout=60,
                    message=f"{name} did not become healthy",
                )

    def _healthy(self, port: int) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self, *names: str, sig: int = signal.SIGTERM, timeout: float = 15) -> dict[str, int]:
        """Signal processes (all if none named) and wait for them; return their exit codes."""
        codes: dict[str, int] = {}
        targets = names or tuple(self.processes)
        for name in targets:
            proc = self.processes.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(sig)
        for name in targets:
            proc = self.processes.pop(name, None)
            if proc is None:
                continue
            try:
                codes[name] = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait(timeout=5)
        return codes

    def kill(self, *names: str) -> None:
        """SIGKILL: no chance to clean up, as when the OOM killer strikes."""
        self.stop(*names, sig=signal.SIGKILL)

    def log(self, name: str) -> str:
        """What a process printed so far (for failure messages)."""
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ---- APIs ------------------------------------------------------------------------------
    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def post(self, service: str, path: str, body: dict[str, Any]) -> requests.Response:
        return self.http.post(self.url(service, path), json=body, timeout=10)

    def get(self, service: str, path: str, **params: Any) -> requests.Response:
        return self.http.get(self.url(service, path), params=params, timeout=10)

    def register(self, **org: Any) -> dict[str, Any]:
        """Register an organisation; fail loudly if registry refuses."""
        response = self.post("registry", "/api/v1/organisations", org)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def organisation(self, country: str, kind: str) -> dict[str, Any]:
        """The first organisation of a kind in a country (e.g. the seeded Resource Centre)."""
        response = self.get("registry", "/api/v1/organisations", country=country, kind=kind)
        assert response.status_code == 200, response.text
        item: dict[str, Any] = response.json()["items"][0]
        return item

    def deliveries(self, event_id: str, **params: Any) -> list[dict[str, Any]]:
        """Every ledger row of one event (all pages)."""
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            response = self.get(
                "notify",
                "/api/v1/deliveries",
                event_id=event_id,
                page=page,
                page_size=1000,
                **params,
            )
            assert response.status_code == 200, response.text
            body = response.json()
            items.extend(body["items"])
            if len(items) >= body["total"] or not body["items"]:
                return items
            page += 1
