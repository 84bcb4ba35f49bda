"""Fixtures of notify's tests: a migrated ledger database, the notify app, a real registry.

Test modules use these only as fixtures (never ``from conftest import``: every test folder has
its own ``conftest`` module).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tacso_notify.bootstrap import Notify, NotifySettings, apply_migrations, bootstrap
from tacso_notify.ledger import DeliveryLedger
from tacso_registry.app import create_app as create_registry_app
from tacso_registry.bootstrap import Registry
from tacso_registry.bootstrap import apply_migrations as apply_registry_migrations
from tacso_registry.bootstrap import bootstrap as bootstrap_registry
from tacso_registry.bootstrap import load_settings as load_registry_settings

ADMIN_KEY = "test-admin-key"


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[Notify]:
    """notify wired to a freshly migrated SQLite ledger under ``tmp_path``."""
    settings = NotifySettings.load(
        {
            "VAR_DIR": str(tmp_path),
            "NOTIFY_DATABASE_URL": f"sqlite:///{tmp_path / 'notify.sqlite3'}",
            "ADMIN_API_KEY": ADMIN_KEY,
        }
    )
    apply_migrations(settings.common)
    wired = bootstrap(settings)
    yield wired
    wired.engine.dispose()


@pytest.fixture
def ledger(notify: Notify) -> DeliveryLedger:
    """The real delivery ledger on notify's migrated database."""
    return notify.ledger


@pytest.fixture
def admin() -> dict[str, str]:
    """Headers that carry the admin key."""
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry on its own migrated SQLite database."""
    settings = load_registry_settings(
        {
            "VAR_DIR": str(tmp_path),
            "REGISTRY_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.sqlite3'}",
            "ADMIN_API_KEY": ADMIN_KEY,
        },
    )
    apply_registry_migrations(settings.common)
    wired = bootstrap_registry(settings)
    yield wired
    wired.engine.dispose()


@pytest.fixture
def registry_url(registry: Registry, serve_wsgi: Callable[[Any], str]) -> str:
    """The base URL of the registry, served over real HTTP."""
    return serve_wsgi(create_registry_app(registry))


@pytest.fixture
def unused_url() -> str:
    """The base URL of a 127.0.0.1 port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
