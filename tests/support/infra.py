"""Real infrastructure for tests: a RabbitMQ virtual host and PostgreSQL databases of their own."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import psycopg
from psycopg import sql

RABBITMQ_HOST = os.environ.get("TEST_RABBITMQ_HOST", "127.0.0.1")
RABBITMQ_PORT = int(os.environ.get("TEST_RABBITMQ_PORT", "5672"))
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _rabbitmqctl(*args: str) -> None:
    if shutil.which("rabbitmqctl") is None:
        raise RuntimeError("rabbitmqctl not found: the tests need a local RabbitMQ")
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def rabbitmq_vhost(prefix: str = "tacso-test") -> Iterator[str]:
    """A fresh virtual host for one test session, removed afterwards; yields its AMQP URL."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{quote(vhost, safe='')}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def amqp_url_via(url: str, host: str, port: int) -> str:
    """The same AMQP URL, pointed at another host and port (e.g. a fault-injecting proxy)."""
    vhost = url.rsplit("/", 1)[1]
    return f"amqp://guest:guest@{host}:{port}/{vhost}"


@contextmanager
def postgres_databases(*names: str) -> Iterator[dict[str, str]]:
    """Create one fresh PostgreSQL database per name; yields name -> SQLAlchemy URL."""
    suffix = uuid.uuid4().hex[:8]
    created: dict[str, str] = {}
    base, _, _ = POSTGRES_URL.rpartition("/")
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        for name in names:
            db = f"tacso_test_{name}_{suffix}"
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
            created[name] = f"{base}/{db}"
    try:
        yield created
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            for url in created.values():
                db = url.rsplit("/", 1)[1]
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db))
                )
