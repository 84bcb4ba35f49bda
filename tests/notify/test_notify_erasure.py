"""An organisation erased in registry leaves notify's ledger without its address, counts intact:
registry's relay publishes ``organisation.erased`` to a real RabbitMQ, notify's registry worker
takes it and redacts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from support.waiting import wait_until
from tacso_notify.app import create_app as create_notify_app
from tacso_notify.bootstrap import Notify, NotifySettings, prepare_broker
from tacso_notify.bootstrap import apply_migrations as apply_notify_migrations
from tacso_notify.bootstrap import bootstrap as bootstrap_notify
from tacso_notify.erasure import REDACTED, make_erasure_handler, redact_organisation
from tacso_notify.models import Delivery, EventSnapshot
from tacso_notify.workers import build_registry_worker
from tacso_registry.app import create_app as create_registry_app
from tacso_registry.bootstrap import Registry
from tacso_registry.bootstrap import apply_migrations as apply_registry_migrations
from tacso_registry.bootstrap import bootstrap as bootstrap_registry
from tacso_registry.bootstrap import load_settings as load_registry_settings
from tacso_shared.contracts import OrganisationErased
from tacso_shared.db import transaction
from tacso_shared.envelope import Envelope, PoisonMessage

ADMIN = {"Authorization": "Bearer test-admin-key"}


@pytest.fixture
def stack(tmp_path: Path, amqp_url: str) -> Iterator[tuple[Registry, Notify]]:
    """registry and notify on their own SQLite files, both on this session's RabbitMQ."""
    env = {"VAR_DIR": str(tmp_path), "AMQP_URL": amqp_url, "ADMIN_API_KEY": "test-admin-key"}
    registry_settings = load_registry_settings(
        {**env, "REGISTRY_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.sqlite3'}"}
    )
    apply_registry_migrations(registry_settings.common)
    notify_settings = NotifySettings.load(
        {**env, "NOTIFY_DATABASE_URL": f"sqlite:///{tmp_path / 'notify.sqlite3'}"}
    )
    apply_notify_migrations(notify_settings.common)
    prepare_broker(notify_settings)
    registry, notify = bootstrap_registry(registry_settings), bootstrap_notify(notify_settings)
    yield registry, notify
    registry.engine.dispose()
    notify.engine.dispose()


def delivery(org_id: str, email: str, event_id: str = "ev-1") -> Delivery:
    now = datetime.now(UTC)
    return Delivery(
        event_id=event_id,
        revision=1,
        organisation_id=org_id,
        kind="invitation",
        recipient=email,
        country="BA",
        status="sent",
        attempts=1,
        created_at=now,
        updated_at=now,
        sent_at=now,
    )


def test_erasure_redacts_notifys_ledger_and_keeps_the_counts(
    stack: tuple[Registry, Notify],
) -> None:
    registry, notify = stack
    registry_api = create_registry_app(registry).test_client()
    created = registry_api.post(
        "/api/v1/organisations",
        json={
            "name": "Udruženje Tajna",
            "kind": "cso",
            "country": "BA",
            "email": "Tajna@Example.org",
            "language": "bs",
        },
        headers=ADMIN,
    ).get_json()
    org_id = created["id"]
    with transaction(notify.sessions) as session:
        session.add(delivery(org_id, "tajna@example.org"))
        session.add(delivery("someone-else", "other@example.org"))
        session.add(
            EventSnapshot(
                event_id="ev-1",
                revision=1,
                envelope='{"data": {"organiser_email": "tajna@example.org"}}',
                received_at=datetime.now(UTC),
            )
        )
    notify.ledger.suppress([("tajna@example.org", "550 mailbox full for good")])
    worker = build_registry_worker(notify, ["BA"])
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert (
            registry_api.delete(f"/api/v1/organisations/{org_id}", headers=ADMIN).status_code == 204
        )
        assert registry.relay().run_once() >= 2  # organisation.registered, organisation.erased

        def redacted() -> bool:
            with notify.sessions() as session:
                row = session.scalar(sa.select(Delivery).where(Delivery.organisation_id == org_id))
                return row is not None and row.recipient == REDACTED

        wait_until(redacted, timeout=30, message="the ledger row was not redacted")
    finally:
        worker.stop()
        thread.join(timeout=15)

    notify_api = create_notify_app(notify).test_client()
    listed = notify_api.get("/api/v1/deliveries?event_id=ev-1", headers=ADMIN).get_json()
    by_org = {item["organisation_id"]: item for item in listed["items"]}
    assert len(by_org) == 2
    assert by_org[org_id]["recipient"] == REDACTED
    assert by_org[org_id]["status"] == "sent"
    assert by_org["someone-else"]["recipient"] == "other@example.org"
    assert notify.ledger.counts("ev-1") == {"invitation": {"sent": 2}}
    assert notify.ledger.suppression("tajna@example.org") is None
    with notify.sessions() as session:
        snapshot = session.scalar(sa.select(EventSnapshot.envelope))
    assert snapshot is not None and "tajna" not in snapshot


def test_redacting_twice_changes_nothing_more(stack: tuple[Registry, Notify]) -> None:
    _, notify = stack
    with transaction(notify.sessions) as session:
        session.add(delivery("org-x", "x@example.org"))
    erased = OrganisationErased("org-x", "BA", ("X@example.org",))

    with transaction(notify.sessions) as session:
        first = redact_organisation(session, erased)
    with transaction(notify.sessions) as session:
        second = redact_organisation(session, erased)

    assert (first.deliveries, second.deliveries) == (1, 0)


def test_a_message_that_is_not_an_erasure_is_dead_lettered_not_fatal(
    stack: tuple[Registry, Notify],
) -> None:
    handler = make_erasure_handler(stack[1].sessions)
    envelope = Envelope(type="org.tacso.events.event.published.v1", source="/t", data={})

    with pytest.raises(PoisonMessage):
        handler(envelope, object())
    handler(
        Envelope(type="org.tacso.registry.organisation.updated.v1", source="/t", data={}), object()
    )
