"""The process manifest: every TACSO process and the command that runs it, written once.

``make up`` (``tacso-stack up``), the test stack (``tests/support/stack.py``) and the fault suite
build their process lists from :data:`PROCESSES` and :data:`SETUP`; a unit test
(``tests/test_process_manifest.py``) checks that ``docker-compose.yml`` runs the same commands
under the same names. Names are the compose service names, so a log line, a honcho prefix and a
``docker compose logs <name>`` all say the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Role = Literal["api", "relay", "worker", "scheduler", "migrate", "seed"]


@dataclass(frozen=True)
class Process:
    """One process of the system: what it is called, which service it belongs to, its command."""

    name: str
    service: str
    #: The console script and its arguments, exactly as an operator (or compose) types them.
    argv: tuple[str, ...]
    role: Role
    #: For an API, the environment variable that sets its HTTP port.
    port_env: str | None = None

    @property
    def module(self) -> str:
        """The importable package of the console script (``tacso-notify`` -> ``tacso_notify``)."""
        return self.argv[0].replace("-", "_")

    def python_argv(self, python: str) -> list[str]:
        """The same command through ``python -m``: needs no script on PATH, only the package."""
        return [python, "-m", self.module, *self.argv[1:]]

    @property
    def compose_command(self) -> tuple[str, ...] | None:
        """What ``docker-compose.yml`` runs for this process; None if compose has no service.

        Compose has no separate migration step: each API migrates before serving
        (``serve --migrate``, safe with replicas thanks to an advisory lock).
        """
        if self.role == "migrate":
            return None
        if self.role == "api":
            return (*self.argv, "--migrate")
        return self.argv


def _api(service: str) -> Process:
    return Process(
        service, service, (f"tacso-{service}", "serve"), "api", f"{service.upper()}_PORT"
    )


def _relay(service: str) -> Process:
    return Process(f"{service}-relay", service, (f"tacso-{service}", "relay"), "relay")


def _worker(queue: str) -> Process:
    name = "notify-" + queue.replace("_", "-")
    return Process(name, "notify", ("tacso-notify", "worker", "--queue", queue), "worker")


#: One-shot steps, in the order they run before the long-running processes start.
SETUP: tuple[Process, ...] = (
    Process("registry-migrate", "registry", ("tacso-registry", "migrate"), "migrate"),
    Process("registry-seed", "registry", ("tacso-registry", "seed"), "seed"),
    Process("events-migrate", "events", ("tacso-events", "migrate"), "migrate"),
    Process("notify-migrate", "notify", ("tacso-notify", "migrate"), "migrate"),
)

#: The long-running processes: three APIs, two outbox relays, events' scheduler, the notify
#: workers (one per queue family, and one of registry's changes).
PROCESSES: tuple[Process, ...] = (
    _api("registry"),
    _api("events"),
    _api("notify"),
    _relay("registry"),
    _relay("events"),
    Process("events-scheduler", "events", ("tacso-events", "scheduler"), "scheduler"),
    _worker("invitations"),
    _worker("press_notices"),
    _worker("updates"),
    _worker("reminders"),
    _worker("registrations"),
    _worker("webhooks"),
    _worker("accounts"),
    _worker("registry"),
)

#: Third-party services a deployment needs besides our processes (not in the manifest).
INFRASTRUCTURE: frozenset[str] = frozenset(
    {"postgres", "rabbitmq", "redis", "mailpit", "prometheus"}
)


def by_name(processes: Sequence[Process] = PROCESSES) -> dict[str, Process]:
    """The processes keyed by name, in manifest order."""
    return {process.name: process for process in processes}
