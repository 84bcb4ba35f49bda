"""Fixtures for the whole suite.

Rule: unit tests of logic may use fakes; everything else talks to the real RabbitMQ, real
databases (SQLite files and PostgreSQL) and a real SMTP server (aiosmtpd).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.infra import rabbitmq_vhost


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A RabbitMQ virtual host of this test session."""
    with rabbitmq_vhost() as url:
        yield url
