"""The three services in-process with real credentials, for the authorisation tests.

Registry is served over real HTTP on 127.0.0.1 (events and notify fetch its JWK set, and events
asks it about organisers, as in production); each role has an API key, exchanged for a token
through ``POST /api/v1/auth/token``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from werkzeug.serving import make_server

from tacso_events.app import create_app as create_events_app
from tacso_events.bootstrap import Events
from tacso_events.bootstrap import apply_migrations as apply_events_migrations
from tacso_events.bootstrap import bootstrap as bootstrap_events
from tacso_events.bootstrap import load_settings as load_events_settings
from tacso_notify.app import create_app as create_notify_app
from tacso_notify.bootstrap import Notify
from tacso_notify.bootstrap import apply_migrations as apply_notify_migrations
from tacso_notify.bootstrap import bootstrap as bootstrap_notify
from tacso_notify.bootstrap import load_settings as load_notify_settings
from tacso_notify.models import Delivery
from tacso_registry import accounts
from tacso_registry.app import create_app as create_registry_app
from tacso_registry.bootstrap import Registry
from tacso_registry.bootstrap import apply_migrations as apply_registry_migrations
from tacso_registry.bootstrap import bootstrap as bootstrap_registry
from tacso_registry.bootstrap import load_settings as load_registry_settings
from tacso_registry.models import Organisation
from tacso_registry.seed import seed_organisations
from tacso_shared.db import transaction
from tacso_shared.identity import COUNTRY_EDITOR, NETWORK_ADMIN, ORGANISATION_MEMBER, SERVICE

ADMIN_KEY = "test-admin-key"
#: Callers of the matrix: nobody, the legacy admin key, and a token of each role.
ANONYMOUS = "anonymous"
ADMIN_KEY_CALLER = "admin_key"
CALLERS = (ANONYMOUS, ADMIN_KEY_CALLER, NETWORK_ADMIN, COUNTRY_EDITOR, ORGANISATION_MEMBER, SERVICE)


@dataclass
class World:
    """The three services and the organisations and credentials the matrix talks about."""

    registry: Registry
    events: Events
    notify: Notify
    clients: dict[str, FlaskClient]
    registry_url: str
    orgs: dict[str, Organisation] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    api_keys: dict[str, accounts.CreatedKey] = field(default_factory=dict)
    #: Stops registry's HTTP server (its database stays): registry is down for events and notify.
    stop_registry: Callable[[], None] = lambda: None

    def headers(self, caller: str) -> dict[str, str]:
        """The Authorization header of ``caller`` (none for the anonymous caller)."""
        if caller == ANONYMOUS:
            return {}
        if caller == ADMIN_KEY_CALLER:
            return {"Authorization": f"Bearer {ADMIN_KEY}"}
        return {"Authorization": f"Bearer {self.tokens[caller]}"}

    def headers_subject(self, caller: str) -> str:
        """The ``sub`` of ``caller``'s token (its API key)."""
        return f"api-key:{self.api_keys[caller].key.id}"

    def own_org(self, caller: str) -> Organisation:
        """The organisation ``caller`` belongs to (its stand-in for callers without one)."""
        return {
            COUNTRY_EDITOR: self.orgs["ba_rc"],
            ORGANISATION_MEMBER: self.orgs["ba_cso"],
            NETWORK_ADMIN: self.orgs["ba_office"],
        }.get(caller, self.orgs["ba_rc"])

    def other_org_same_country(self, caller: str) -> Organisation:
        """Another organisation of the caller's country (BA)."""
        own = self.own_org(caller)
        return next(o for k, o in self.orgs.items() if k.startswith("ba_") and o.id != own.id)

    def draft(self, country: str, organiser: Organisation) -> str:
        """A new draft event (created with the admin key); its id."""
        body = {
            "title": f"Draft {uuid.uuid4().hex[:8]}",
            "type": "workshop",
            "country": country,
            "topics": ["human-rights"],
            "starts_at": "2026-12-15T09:00:00+00:00",
            "ends_at": "2026-12-15T15:00:00+00:00",
            "online_url": "https://meet.example.org/x",
            "organiser_id": organiser.id,
            "status": "draft",
        }
        response = self.clients["events"].post(
            "/api/v1/events", json=body, headers=self.headers(ADMIN_KEY_CALLER)
        )
        assert response.status_code == 201, response.get_json()
        event_id: str = response.get_json()["id"]
        return event_id

    def api_key(self, role: str, organisation: Organisation | None) -> accounts.CreatedKey:
        """A new API key of ``role``."""
        with transaction(self.registry.sessions) as session:
            return accounts.create_api_key(
                session, f"{role} key", role, organisation.id if organisation else None
            )

    def token(self, key: accounts.CreatedKey, **extra: str) -> str:
        """A token for ``key`` (client credentials grant)."""
        response = self.clients["registry"].post(
            "/api/v1/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": key.key.id,
                "client_secret": key.secret,
                **extra,
            },
        )
        assert response.status_code == 200, response.get_json()
        token: str = response.get_json()["access_token"]
        return token


def _serve(app: Any) -> tuple[str, Any, threading.Thread]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.server_port}", server, thread


def _org(session: Any, name: str, kind: str, country: str) -> Organisation:
    now = datetime.now(UTC)
    org = Organisation(
        id=str(uuid.uuid4()),
        name=name,
        kind=kind,
        country=country,
        email=f"{uuid.uuid4().hex[:10]}@example.org",
        language="en",
        mailing_consent=True,
        created_at=now,
        updated_at=now,
    )
    session.add(org)
    return org


@contextmanager
def build_world(workdir: Path, **env_overrides: str) -> Iterator[World]:
    """The three services on SQLite files under ``workdir``, registry served over HTTP."""
    env = {
        "VAR_DIR": str(workdir),
        "ADMIN_API_KEY": ADMIN_KEY,
        # The matrix asks for many tokens from one address; the limits have tests of their own.
        "RATE_LIMIT_CREDENTIALS": "10000/minute",
        # Webhook subscriptions in the matrix point at 127.0.0.1 over plain HTTP.
        "WEBHOOKS_ALLOW_HTTP": "true",
        "WEBHOOKS_ALLOW_PRIVATE": "true",
        "RATE_LIMIT_SIGNUP": "10000/minute",
        **env_overrides,
    }
    registry_settings = load_registry_settings(
        {**env, "REGISTRY_DATABASE_URL": f"sqlite:///{workdir / 'registry.sqlite3'}"}
    )
    apply_registry_migrations(registry_settings.common)
    registry = bootstrap_registry(registry_settings)
    registry_url, server, thread = _serve(create_registry_app(registry))
    stopped = threading.Event()

    def stop() -> None:
        if not stopped.is_set():
            stopped.set()
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    orgs: dict[str, Organisation] = {}
    with transaction(registry.sessions) as session:
        seed_organisations(session)
        by_name = {o.name: o for o in session.query(Organisation)}
        orgs["ba_rc"] = by_name["VESTA with the Trainers' Network"]
        orgs["ba_office"] = by_name["TACSO Bosnia and Herzegovina office"]
        orgs["rs_rc"] = by_name["Civic Initiatives"]
        orgs["ba_cso"] = _org(session, "A BA CSO", "cso", "BA")
        orgs["rs_cso"] = _org(session, "An RS CSO", "cso", "RS")
        session.flush()
        session.expunge_all()
    service_key = None
    with transaction(registry.sessions) as session:
        service_key = accounts.create_api_key(session, "events", SERVICE, None)
    common = {**env, "REGISTRY_URL": registry_url, "SERVICE_API_KEY": service_key.secret}
    events_settings = load_events_settings(
        {**common, "EVENTS_DATABASE_URL": f"sqlite:///{workdir / 'events.sqlite3'}"}
    )
    apply_events_migrations(events_settings.common)
    events = bootstrap_events(events_settings)
    # notify's audience preview reads the event from events' API over HTTP.
    events_url, events_server, events_thread = _serve(create_events_app(events))
    notify_settings = load_notify_settings(
        {
            **common,
            "NOTIFY_DATABASE_URL": f"sqlite:///{workdir / 'notify.sqlite3'}",
            "EVENTS_URL": events_url,
        }
    )
    apply_notify_migrations(notify_settings.common)
    notify = bootstrap_notify(notify_settings)
    world = World(
        registry=registry,
        events=events,
        notify=notify,
        clients={
            "registry": create_registry_app(registry).test_client(),
            "events": create_events_app(events).test_client(),
            "notify": create_notify_app(notify).test_client(),
        },
        registry_url=registry_url,
        orgs=orgs,
        stop_registry=stop,
    )
    for role, org in (
        (NETWORK_ADMIN, orgs["ba_office"]),
        (COUNTRY_EDITOR, orgs["ba_rc"]),
        (ORGANISATION_MEMBER, orgs["ba_cso"]),
        (SERVICE, None),
    ):
        world.api_keys[role] = world.api_key(role, org)
        world.tokens[role] = world.token(world.api_keys[role])
    try:
        yield world
    finally:
        stop()
        events_server.shutdown()
        events_server.server_close()
        events_thread.join(timeout=5)
        for engine in (registry.engine, events.engine, notify.engine):
            engine.dispose()


def add_deliveries(notify: Notify, event_id: str, country: str, count: int = 2) -> None:
    """Put ``count`` sent invitations of an event of ``country`` in notify's ledger."""
    now = datetime.now(UTC)
    with transaction(notify.sessions) as session:
        for n in range(count):
            session.add(
                Delivery(
                    event_id=event_id,
                    revision=1,
                    organisation_id=f"{event_id}-org-{n}",
                    kind="invitation",
                    recipient=f"{event_id}-{n}@example.org",
                    country=country,
                    status="sent",
                    attempts=1,
                    created_at=now,
                    updated_at=now,
                    sent_at=now,
                )
            )
