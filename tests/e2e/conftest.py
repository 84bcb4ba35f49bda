"""Fixtures for end-to-end tests: the real stack on the real broker, real databases, real SMTP.

Rule (after nameko's examples): nothing is faked here. Fakes belong in unit tests of logic.
The stack runs once per database kind (SQLite, then PostgreSQL); tests tell their mail apart by
the ``X-TACSO-Event-Id`` header, so they do not need a fresh stack each.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.smtp import RecordingSMTPServer
from support.stack import Stack, running_stack


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    smtp_server: RecordingSMTPServer,
) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp(f"stack-{request.param}")
    with running_stack(workdir, request.param, smtp_server.host, smtp_server.port) as stack:
        yield stack
