"""Fixtures of the registry's tests: the app on a freshly migrated SQLite (or PostgreSQL) database.

Test modules use these only as fixtures (never ``from conftest import``: every test folder has
its own ``conftest`` module).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from support.infra import postgres_databases
from tacso_registry.app import create_app
from tacso_registry.bootstrap import (
    Registry,
    RegistrySettings,
    apply_migrations,
    bootstrap,
    load_settings,
)

ADMIN_KEY = "test-admin-key"

#: Makes a valid create-organisation request; keyword arguments replace keys.
PayloadFactory = Callable[..., dict[str, Any]]
#: Registers an organisation through the API (201 expected) and returns its JSON.
RegisterFunction = Callable[..., dict[str, Any]]


def registry_settings(tmp_path: Path, database_url: str) -> RegistrySettings:
    """Settings of a registry on ``database_url`` with the test admin key."""
    return load_settings(
        {
            "VAR_DIR": str(tmp_path),
            "REGISTRY_DATABASE_URL": database_url,
            "ADMIN_API_KEY": ADMIN_KEY,
        },
    )


@pytest.fixture
def registry_database_url(tmp_path: Path) -> str:
    """The URL of a SQLite file of this test."""
    return f"sqlite:///{tmp_path / 'registry.sqlite3'}"


@pytest.fixture
def registry(tmp_path: Path, registry_database_url: str) -> Iterator[Registry]:
    """The registry wired to a freshly migrated database."""
    settings = registry_settings(tmp_path, registry_database_url)
    apply_migrations(settings.common)
    wired = bootstrap(settings)
    yield wired
    wired.engine.dispose()


@pytest.fixture
def postgres_registry(tmp_path: Path) -> Iterator[Registry]:
    """The registry wired to a fresh, migrated PostgreSQL database of its own."""
    with postgres_databases("registry") as urls:
        settings = registry_settings(tmp_path, urls["registry"])
        apply_migrations(settings.common)
        wired = bootstrap(settings)
        try:
            yield wired
        finally:
            wired.engine.dispose()


@pytest.fixture
def app(registry: Registry) -> Flask:
    return create_app(registry)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def admin() -> dict[str, str]:
    """Headers that carry the admin key."""
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def payload() -> PayloadFactory:
    """Make a valid create-organisation request with a fresh email; ``overrides`` replace keys."""
    numbers = itertools.count(1)

    def make(**overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": "Udruženje Zdravo",
            "kind": "cso",
            "country": "BA",
            "email": f"cso{next(numbers)}@example.org",
            "language": "bs",
            "topics": ["human-rights"],
        }
        body.update(overrides)
        return body

    return make


@pytest.fixture
def register(
    client: FlaskClient, admin: dict[str, str], payload: PayloadFactory
) -> RegisterFunction:
    """Register an organisation through the API (201 expected) and return its JSON."""

    def create(**overrides: Any) -> dict[str, Any]:
        response = client.post("/api/v1/organisations", json=payload(**overrides), headers=admin)
        assert response.status_code == 201, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    return create
