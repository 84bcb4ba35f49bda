"""Fixtures for end-to-end tests: the real stack on the real broker, real databases, real SMTP.

Rule (after nameko's examples): nothing is faked here. Fakes belong in unit tests of logic.
The stack runs once per database kind (SQLite, then PostgreSQL); tests tell their mail apart by
the ``X-TACSO-Event-Id`` header, so they do not need a fresh stack each.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from support.infra import postgres_databases, rabbitmq_vhost
from support.smtp import RecordingSMTPServer
from support.stack import Stack


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[RecordingSMTPServer]:
    server = RecordingSMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    smtp_server: RecordingSMTPServer,
) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp(f"stack-{request.param}")
    with ExitStack() as resources:
        # A virtual host per stack: nothing left in a queue by one stack reaches the next.
        amqp_url = resources.enter_context(rabbitmq_vhost())
        if request.param == "postgres":
            urls = resources.enter_context(postgres_databases("registry", "events", "notify"))
        else:
            urls = {
                n: f"sqlite:///{workdir / f'{n}.sqlite3'}" for n in ("registry", "events", "notify")
            }
        stack = Stack(workdir, amqp_url, urls, smtp_server.host, smtp_server.port)
        stack.migrate()
        stack.start()
        try:
            yield stack
        finally:
            stack.stop()
