"""The HTTP registry client, and the events API against a real registry served over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tacso_events.app import create_app
from tacso_events.bootstrap import apply_migrations, bootstrap, load_settings
from tacso_events.registry_client import HttpRegistryClient, RegistryUnavailable

ADMIN_KEY = "test-admin-key"  # the key conftest gives both services

Serve = Callable[[Any], str]
Payload = Callable[..., dict[str, Any]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _answering(status: str, body: bytes = b"{}") -> WsgiApp:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response(status, [("Content-Type", "application/json")])
        return [body]

    return app


def _register(registry_url: str, **fields: Any) -> dict[str, Any]:
    org = {"language": "bs", "topics": ["advocacy"], **fields}
    response = requests.post(
        f"{registry_url}/api/v1/organisations",
        json=org,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=5,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def registry_client(registry_url: str) -> Iterator[HttpRegistryClient]:
    client = HttpRegistryClient(registry_url, ADMIN_KEY)
    yield client
    client.close()


def test_client_reads_an_organisation(
    registry_url: str, registry_client: HttpRegistryClient
) -> None:
    org = _register(
        registry_url, name="VESTA", kind="resource_centre", country="BA", email="vesta@example.org"
    )

    found = registry_client.get_organisation(org["id"])

    assert found is not None
    assert (found.id, found.name, found.kind, found.country, found.email) == (
        org["id"],
        "VESTA",
        "resource_centre",
        "BA",
        "vesta@example.org",
    )
    assert registry_client.get_organisation("00000000-0000-4000-8000-000000000000") is None


def test_client_with_a_wrong_key_is_unavailable(registry_url: str) -> None:
    client = HttpRegistryClient(registry_url, "not-the-key")
    with pytest.raises(RegistryUnavailable, match="401"):
        client.get_organisation("00000000-0000-4000-8000-000000000000")
    client.close()


def test_client_when_nothing_listens(unused_url: str) -> None:
    client = HttpRegistryClient(unused_url, ADMIN_KEY, connect_retries=1)
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        client.get_organisation("some-id")
    client.close()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        ("500 Internal Server Error", b"{}"),
        ("502 Bad Gateway", b""),
        ("200 OK", b"not json"),
        ("200 OK", b'{"id": "x"}'),
    ],
    ids=["500", "502", "not-json", "incomplete"],
)
def test_client_with_a_broken_registry(serve_wsgi: Serve, status: str, body: bytes) -> None:
    client = HttpRegistryClient(serve_wsgi(_answering(status, body)), ADMIN_KEY)
    with pytest.raises(RegistryUnavailable):
        client.get_organisation("some-id")
    client.close()


def test_create_an_event_against_the_real_registry(
    tmp_path: Path, registry_url: str, payload: Payload
) -> None:
    centre = _register(
        registry_url,
        name="VESTA with the Trainers' Network",
        kind="resource_centre",
        country="BA",
        email="vesta.rc@example.org",
    )
    cso = _register(registry_url, name="A CSO", kind="cso", country="BA", email="cso@example.org")
    settings = load_settings(
        {
            "VAR_DIR": str(tmp_path),
            "EVENTS_DATABASE_URL": f"sqlite:///{tmp_path / 'events-real.sqlite3'}",
            "ADMIN_API_KEY": ADMIN_KEY,
            "PUBLIC_BASE_URL": "https://events.tacso.example.org",
            "REGISTRY_URL": registry_url,
        }
    )
    apply_migrations(settings.common)
    events = bootstrap(settings)  # the real HTTP registry client
    assert isinstance(events.registry, HttpRegistryClient)
    client = create_app(events).test_client()
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    created = client.post("/api/v1/events", json=payload(organiser_id=centre["id"]), headers=admin)
    wrong_kind = client.post("/api/v1/events", json=payload(organiser_id=cso["id"]), headers=admin)
    wrong_country = client.post(
        "/api/v1/events", json=payload(organiser_id=centre["id"], country="RS"), headers=admin
    )
    unknown = client.post(
        "/api/v1/events",
        json=payload(organiser_id="00000000-0000-4000-8000-000000000000"),
        headers=admin,
    )

    assert created.status_code == 201, created.get_json()
    assert created.get_json()["organiser_name"] == "VESTA with the Trainers' Network"
    assert wrong_kind.status_code == 422
    assert wrong_kind.get_json()["errors"]["json"] == {
        "organiser_id": ["Must be a resource centre or TACSO office."]
    }
    assert wrong_country.status_code == 422
    assert wrong_country.get_json()["errors"]["json"] == {
        "organiser_id": ["The organiser belongs to BA, not RS."]
    }
    assert unknown.status_code == 422
    assert unknown.get_json()["errors"]["json"] == {"organiser_id": ["No such organisation."]}
    events.engine.dispose()


def test_events_api_when_the_registry_is_down(
    tmp_path: Path, unused_url: str, payload: Payload
) -> None:
    settings = load_settings(
        {
            "VAR_DIR": str(tmp_path),
            "EVENTS_DATABASE_URL": f"sqlite:///{tmp_path / 'events-down.sqlite3'}",
            "ADMIN_API_KEY": ADMIN_KEY,
            "REGISTRY_URL": unused_url,
        }
    )
    apply_migrations(settings.common)
    events = bootstrap(settings)
    client = create_app(events).test_client()

    response = client.post(
        "/api/v1/events", json=payload(), headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )

    assert response.status_code == 503
    assert "registry" in response.get_json()["message"]
    events.engine.dispose()


def test_settings_read_the_registry_url() -> None:
    key = {"ADMIN_API_KEY": ADMIN_KEY}
    assert load_settings({**key, "REGISTRY_URL": "http://registry:5001/"}).registry_url == (
        "http://registry:5001"
    )
    settings = load_settings(key)
    assert settings.registry_url == "http://localhost:5001"
    assert settings.common.port == 5002
