"""Fixtures of the events service's tests: a migrated SQLite database, a fake or real registry.

Test modules use these only as fixtures (never ``from conftest import``: every test folder has
its own ``conftest`` module).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from support.infra import postgres_databases
from tacso_events.app import create_app
from tacso_events.bootstrap import (
    Events,
    EventsSettings,
    apply_migrations,
    bootstrap,
    load_settings,
)
from tacso_events.registry_client import Organisation, RegistryUnavailable
from tacso_registry.app import create_app as create_registry_app
from tacso_registry.bootstrap import apply_migrations as apply_registry_migrations
from tacso_registry.bootstrap import bootstrap as bootstrap_registry
from tacso_registry.bootstrap import load_settings as load_registry_settings

ADMIN_KEY = "test-admin-key"
PUBLIC_BASE_URL = "https://events.tacso.example.org"

BA_CENTRE = Organisation(
    id="6b1d3a52-2f0e-4c55-9d3a-0d3c7f1f0a01",
    name="VESTA with the Trainers' Network",
    kind="resource_centre",
    country="BA",
    email="resource-centre.ba@seed.tacso.example.org",
)
RS_OFFICE = Organisation(
    id="6b1d3a52-2f0e-4c55-9d3a-0d3c7f1f0a02",
    name="TACSO Serbia office",
    kind="tacso_office",
    country="RS",
    email="tacso-office.rs@seed.tacso.example.org",
)
BA_CSO = Organisation(
    id="6b1d3a52-2f0e-4c55-9d3a-0d3c7f1f0a03",
    name="A civil society organisation",
    kind="cso",
    country="BA",
    email="cso.ba@example.org",
)


class FakeRegistry:
    """A registry client that answers from a dict, or fails like an unreachable registry."""

    def __init__(self, *organisations: Organisation) -> None:
        self.organisations = {o.id: o for o in organisations}
        self.unavailable = False
        self.asked: list[str] = []

    def get_organisation(self, organisation_id: str) -> Organisation | None:
        self.asked.append(organisation_id)
        if self.unavailable:
            raise RegistryUnavailable("the registry at http://registry.invalid is unreachable")
        return self.organisations.get(organisation_id)


def event_payload(**overrides: Any) -> dict[str, Any]:
    """A valid create-event request for the BA resource centre; ``overrides`` replace keys."""
    payload: dict[str, Any] = {
        "title": "Civil society and EU accession",
        "description": "A day on how CSOs take part in the accession talks.",
        "type": "conference",
        "country": "BA",
        "topics": ["advocacy", "human-rights"],
        "starts_at": "2026-05-04T09:00:00+02:00",
        "ends_at": "2026-05-04T17:00:00+02:00",
        "venue": {"name": "Hotel Europe", "address": "Vladislava Skarića 5", "city": "Sarajevo"},
        "online_url": None,
        "capacity": 120,
        "organiser_id": BA_CENTRE.id,
    }
    payload.update(overrides)
    return payload


def events_settings(tmp_path: Path, **env: str) -> EventsSettings:
    """Settings for an events service on a SQLite file under ``tmp_path``."""
    return load_settings(
        {
            "VAR_DIR": str(tmp_path),
            "EVENTS_DATABASE_URL": f"sqlite:///{tmp_path / 'events.sqlite3'}",
            "ADMIN_API_KEY": ADMIN_KEY,
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            **env,
        }
    )


@pytest.fixture
def events_settings_factory() -> Callable[..., EventsSettings]:
    """:func:`events_settings`, for tests that build their own database."""
    return events_settings


@pytest.fixture
def fake_registry() -> FakeRegistry:
    return FakeRegistry(BA_CENTRE, RS_OFFICE, BA_CSO)


@pytest.fixture
def events(tmp_path: Path, fake_registry: FakeRegistry) -> Iterator[Events]:
    """The events service wired to a freshly migrated database and the fake registry."""
    settings = events_settings(tmp_path)
    apply_migrations(settings.common)
    wired = bootstrap(settings, registry=fake_registry)
    yield wired
    wired.engine.dispose()


@pytest.fixture
def app(events: Events) -> Flask:
    return create_app(events)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def admin() -> dict[str, str]:
    """Headers that carry the admin key."""
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def create_event(client: FlaskClient, admin: dict[str, str]) -> Callable[..., dict[str, Any]]:
    """Create an event through the API (201 expected) and return its JSON."""

    def create(**overrides: Any) -> dict[str, Any]:
        response = client.post("/api/v1/events", json=event_payload(**overrides), headers=admin)
        assert response.status_code == 201, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    return create


@pytest.fixture
def payload() -> Callable[..., dict[str, Any]]:
    """Make a valid create-event request, with keys replaced by keyword arguments."""
    return event_payload


@pytest.fixture
def organisers() -> dict[str, Organisation]:
    """The organisations the fake registry knows, by role in the tests."""
    return {"ba_centre": BA_CENTRE, "rs_office": RS_OFFICE, "ba_cso": BA_CSO}


@pytest.fixture
def registry_down(fake_registry: FakeRegistry) -> None:
    """Make the fake registry fail like an unreachable one."""
    fake_registry.unavailable = True


@pytest.fixture
def registry_url(tmp_path: Path, serve_wsgi: Callable[[Any], str]) -> Iterator[str]:
    """A real registry (its own migrated SQLite database) served over HTTP; its base URL."""
    settings = load_registry_settings(
        {
            "VAR_DIR": str(tmp_path),
            "REGISTRY_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.sqlite3'}",
            "ADMIN_API_KEY": ADMIN_KEY,
        },
    )
    apply_registry_migrations(settings.common)
    registry = bootstrap_registry(settings)
    yield serve_wsgi(create_registry_app(registry))
    registry.engine.dispose()


@pytest.fixture
def unused_url() -> str:
    """The base URL of a 127.0.0.1 port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_events(
    request: pytest.FixtureRequest, tmp_path: Path, fake_registry: FakeRegistry
) -> Iterator[Events]:
    """The events service on a migrated SQLite file, then on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        settings = events_settings(tmp_path)
        apply_migrations(settings.common)
        wired = bootstrap(settings, registry=fake_registry)
        yield wired
        wired.engine.dispose()
        return
    with postgres_databases("events") as urls:
        settings = events_settings(tmp_path, EVENTS_DATABASE_URL=urls["events"])
        apply_migrations(settings.common)
        wired = bootstrap(settings, registry=fake_registry)
        try:
            yield wired
        finally:
            wired.engine.dispose()
