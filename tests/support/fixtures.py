"""The suite's one fixtures plugin (loaded by ``tests/conftest.py``) and its test kinds.

Rule: unit tests of logic may use fakes; everything else talks to the real RabbitMQ, real
databases (SQLite files and PostgreSQL) and a real SMTP server (aiosmtpd).

Every test gets exactly one of four markers, so ``pytest -m unit`` (``make unit``) runs what
needs no outside service:

- ``unit``: no broker, no database server, no process of ours started. SQLite files, in-process
  SMTP and HTTP servers on 127.0.0.1 are fine: they live and die inside the test process.
- ``integration``: needs RabbitMQ or PostgreSQL (it uses one of :data:`INFRASTRUCTURE_FIXTURES`,
  directly or through another fixture, or is marked ``postgres``), or puts several real parts
  together: ``tests/authz`` (the three services with real tokens), a module marked so (a real
  browser, real SMTP servers).
- ``e2e``: ``tests/e2e`` and ``tests/client`` (the real processes) and ``tests/compose`` (the docker
  compose stack).
- ``faults``: ``tests/faults``, the fault suite.

A test may set its kind itself with the marker; otherwise its folder and fixtures decide.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from support.infra import rabbitmq_vhost
from support.smtp import RecordingSMTPServer

KINDS = ("unit", "integration", "e2e", "faults")
#: Fixtures that reach RabbitMQ or PostgreSQL: a test using any of them is an integration test.
INFRASTRUCTURE_FIXTURES = frozenset({"amqp_url", "postgres_registry"})
_FOLDER_KINDS = {
    "e2e": "e2e",
    "client": "e2e",
    "compose": "e2e",
    "faults": "faults",
    "authz": "integration",
}


def kind_of(item: pytest.Item) -> str:
    """The kind of a collected test: its own marker, else its folder, else its fixtures."""
    for kind in KINDS:
        if item.get_closest_marker(kind) is not None:
            return kind
    tests_dir = Path(__file__).resolve().parents[1]
    try:
        folder = item.path.resolve().relative_to(tests_dir).parts[0]
    except ValueError:
        folder = ""
    if folder in _FOLDER_KINDS:
        return _FOLDER_KINDS[folder]
    fixtures = set(getattr(item, "fixturenames", ()))
    if fixtures & INFRASTRUCTURE_FIXTURES or item.get_closest_marker("postgres") is not None:
        return "integration"
    return "unit"


#: Lines a test wants in the terminal summary (schemathesis prints its counts there).
SUMMARY_LINES = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(SUMMARY_LINES, [])
    if lines:
        terminalreporter.section("counts")
        for line in lines:
            terminalreporter.write_line(line)


#: Where each kind runs in the session: the quick kinds first (a failure shows early), then the
#: real processes, then the fault suite, which restarts the local RabbitMQ and starts a cluster of
#: its own: nothing else runs on the broker after that.
_RUN_ORDER = {"unit": 0, "integration": 0, "e2e": 1, "faults": 2}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kinds: dict[pytest.Item, str] = {}
    for item in items:
        kind = kinds[item] = kind_of(item)
        if item.get_closest_marker(kind) is None:
            item.add_marker(getattr(pytest.mark, kind))
    # A stable sort: the order inside each group (and so pytest's grouping by fixture) is kept.
    items.sort(key=lambda item: _RUN_ORDER[kinds[item]])


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A RabbitMQ virtual host of this test session (created by the first test that asks)."""
    with rabbitmq_vhost() as url:
        yield url


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[RecordingSMTPServer]:
    """A recording SMTP server for the whole session (tests tell their mail apart by header)."""
    with RecordingSMTPServer() as server:
        yield server


@pytest.fixture
def serve_wsgi() -> Iterator[Callable[[Any], str]]:
    """Serve WSGI apps on free 127.0.0.1 ports in background threads; return their base URLs."""
    servers: list[tuple[Any, threading.Thread]] = []

    def serve(wsgi_app: Any) -> str:
        server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
