"""Fixtures for the whole suite.

Rule: unit tests of logic may use fakes; everything else talks to the real RabbitMQ, real
databases (SQLite files and PostgreSQL) and a real SMTP server (aiosmtpd).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server

from support.infra import rabbitmq_vhost


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A RabbitMQ virtual host of this test session."""
    with rabbitmq_vhost() as url:
        yield url


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
