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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import requests

from support.api_client import ApiClient
from support.infra import postgres_databases, rabbitmq_vhost
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


class Stack(ApiClient):
    """Starts, stops and kills the stack's processes; talks to its APIs (an ApiClient)."""

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
            "EVENTS_URL": f"http://127.0.0.1:{self.ports['events']}",
            # Webhook receivers of the tests listen on 127.0.0.1 over plain HTTP.
            "WEBHOOKS_ALLOW_HTTP": "true",
            "WEBHOOKS_ALLOW_PRIVATE": "true",
            "WEBHOOK_POLL_INTERVAL": "0.5",
            "BIND_HOST": "127.0.0.1",
            "SMTP_HOST": smtp_host,
            "SMTP_PORT": str(smtp_port),
            "RETRY_DELAYS": "1,1,2,2,5,5,10",
            "OUTBOX_POLL_INTERVAL": "0.05",
            "WEB_CONCURRENCY": "1",
            # Every request of a suite (and of the benchmarks) comes from 127.0.0.1: the limits
            # have tests of their own.
            "RATE_LIMIT_PUBLIC": "10000000/minute",
            "RATE_LIMIT_CREDENTIALS": "10000/minute",
            "RATE_LIMIT_SIGNUP": "10000/minute",
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
        super().__init__(
            {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}, ADMIN_KEY
        )

    # ---- lifecycle -------------------------------------------------------------------------
    def migrate(self) -> None:
        """Apply every service's migrations, as ``make up`` does before starting.

        The services have databases of their own: their steps run side by side, each service's
        in manifest order (registry's seed after registry's migrations).
        """

        def run_steps(service: str) -> None:
            for step in (s for s in SETUP if s.service == service):
                subprocess.run(
                    step.python_argv(sys.executable),
                    env=self.env,
                    check=True,
                    capture_output=True,
                    timeout=120,
                )

        services = list(dict.fromkeys(step.service for step in SETUP))
        with ThreadPoolExecutor(max_workers=len(services)) as pool:
            for done in [pool.submit(run_steps, service) for service in services]:
                done.result()

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
                    # Generous: a stack of 17 processes starting at once on a busy 2-core
                    # machine can take over a minute before the first API answers.
                    timeout=180,
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


@contextmanager
def running_stack(
    workdir: Path,
    database: Literal["sqlite", "postgres"],
    smtp_host: str,
    smtp_port: int,
    extra_env: dict[str, str] | None = None,
    vhost_prefix: str = "tacso-test",
    configure: Callable[[Stack], None] | None = None,
    amqp_url: str | None = None,
) -> Iterator[Stack]:
    """A migrated, started stack on a virtual host and databases of its own; stopped after.

    ``configure`` may change the process list (e.g. more workers) before anything starts.
    ``amqp_url`` points the stack at another broker (a cluster of its own) instead of a fresh
    virtual host of the local one.
    """
    names = ("registry", "events", "notify")
    with ExitStack() as resources:
        if amqp_url is None:
            # A virtual host per stack: nothing left in a queue by one stack reaches the next.
            amqp_url = resources.enter_context(rabbitmq_vhost(vhost_prefix))
        if database == "postgres":
            urls = resources.enter_context(postgres_databases(*names))
        else:
            urls = {n: f"sqlite:///{workdir / f'{n}.sqlite3'}" for n in names}
        stack = Stack(workdir, amqp_url, urls, smtp_host, smtp_port, extra_env)
        if configure is not None:
            configure(stack)
        stack.migrate()
        stack.start()
        try:
            yield stack
        finally:
            stack.stop()
