"""Editing and cancelling events: the material-field rule, revisions, the outbox, refusals.

Runs on SQLite and on PostgreSQL: the edit locks the row and writes its message in the same
transaction on both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from support.infra import postgres_databases
from tacso_events.app import create_app
from tacso_events.bootstrap import Events, apply_migrations, bootstrap, load_settings
from tacso_events.lifecycle import merge_patch
from tacso_events.models import audit_log, outbox
from tacso_shared.contracts import (
    EVENT_CANCELLED,
    EVENT_UPDATED,
    EventCancelled,
    EventUpdated,
    Venue,
    load_data,
)
from tacso_shared.db import transaction
from tacso_shared.envelope import parse_envelope

ADMIN = {"Authorization": "Bearer test-admin-key"}
MERGE_PATCH = "application/merge-patch+json"
PUBLIC_BASE_URL = "https://events.tacso.example.org"

Create = Callable[..., dict[str, Any]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def events(request: pytest.FixtureRequest, tmp_path: Path, fake_registry: Any) -> Iterator[Events]:
    """The events service on a migrated SQLite file or a fresh PostgreSQL database."""

    def wire(url: str) -> Iterator[Events]:
        settings = load_settings(
            {
                "VAR_DIR": str(tmp_path),
                "EVENTS_DATABASE_URL": url,
                "ADMIN_API_KEY": "test-admin-key",
                "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
                "LISTING_CACHE_SECONDS": "0",
            }
        )
        apply_migrations(settings.common)
        wired = bootstrap(settings, registry=fake_registry)
        try:
            yield wired
        finally:
            wired.engine.dispose()

    if request.param == "sqlite":
        yield from wire(f"sqlite:///{tmp_path / 'events.sqlite3'}")
    else:
        with postgres_databases("events") as urls:
            yield from wire(urls["events"])


@pytest.fixture
def client(events: Events) -> FlaskClient:
    return create_app(events).test_client()


@pytest.fixture
def published(create_event: Create) -> dict[str, Any]:
    """A published BA workshop in the future (revision 1)."""
    return create_event(
        type="workshop",
        starts_at="2030-12-15T10:00:00+01:00",
        ends_at="2030-12-15T16:00:00+01:00",
        online_url="https://meet.example.org/ws",
    )


@pytest.fixture
def draft(create_event: Create) -> dict[str, Any]:
    return create_event(
        status="draft", starts_at="2030-12-15T10:00:00+01:00", ends_at="2030-12-15T16:00:00+01:00"
    )


def patch(
    client: FlaskClient,
    event_id: str,
    body: Any,
    content_type: str = MERGE_PATCH,
    **headers: str,
) -> Any:
    return client.patch(
        f"/api/v1/events/{event_id}",
        data=json.dumps(body),
        headers={**ADMIN, "Content-Type": content_type, **headers},
    )


def cancel(client: FlaskClient, event_id: str, body: Any, **headers: str) -> Any:
    return client.post(f"/api/v1/events/{event_id}/cancel", json=body, headers={**ADMIN, **headers})


def messages(events: Events, message_type: str) -> list[Any]:
    """The typed messages of ``message_type`` in the outbox, oldest first, with routing keys."""
    with events.engine.connect() as conn:
        rows = conn.execute(
            sa.select(outbox)
            .where(outbox.c.message_type == message_type)
            .order_by(outbox.c.created_at)
        ).all()
    return [(row.routing_key, load_data(parse_envelope(row.body))) for row in rows]


def outbox_count(events: Events) -> int:
    with events.engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(outbox)) or 0)


class TestMergePatch:
    def test_follows_rfc_7396(self) -> None:
        target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
        patched = merge_patch(target, {"a": "z", "c": {"f": None}, "l": [3], "n": {"x": None}})

        assert patched == {"a": "z", "c": {"d": "e"}, "l": [3], "n": {}}
        assert target["c"] == {"d": "e", "f": "g"}


class TestMaterialChanges:
    def test_moving_a_published_event_bumps_the_revision_and_writes_event_updated(
        self, client: FlaskClient, events: Events, published: dict[str, Any]
    ) -> None:
        response = patch(
            client,
            published["id"],
            {"starts_at": "2030-12-16T10:00:00+01:00", "ends_at": "2030-12-16T16:00:00+01:00"},
            **{"X-Correlation-ID": "corr-move"},
        )

        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["revision"] == 2
        assert body["starts_at"] == "2030-12-16T09:00:00+00:00"
        assert response.headers["ETag"]
        [(routing_key, message)] = messages(events, EVENT_UPDATED)
        assert routing_key == "event.updated.BA"
        assert isinstance(message, EventUpdated)
        assert message.changed == ("starts_at", "ends_at")
        assert message.event.event_id == published["id"]
        assert message.event.revision == 2
        assert message.event.starts_at == datetime(2030, 12, 16, 9, tzinfo=UTC)
        assert message.previous_starts_at == datetime(2030, 12, 15, 9, tzinfo=UTC)
        assert message.previous_ends_at == datetime(2030, 12, 15, 15, tzinfo=UTC)
        assert message.previous_online_url == "https://meet.example.org/ws"
        with events.engine.connect() as conn:
            row = conn.execute(
                sa.select(outbox.c.correlation_id).where(outbox.c.message_type == EVENT_UPDATED)
            ).one()
        assert row.correlation_id == "corr-move"

    def test_a_new_venue_carries_the_old_one(
        self, client: FlaskClient, events: Events, published: dict[str, Any]
    ) -> None:
        response = patch(client, published["id"], {"venue": {"name": "Hotel Bristol"}})

        assert response.status_code == 200, response.get_json()
        assert response.get_json()["venue"]["name"] == "Hotel Bristol"
        assert response.get_json()["venue"]["city"] == "Sarajevo"
        [(_, message)] = messages(events, EVENT_UPDATED)
        assert message.changed == ("venue",)
        assert message.previous_venue == Venue(
            name="Hotel Europe", address="Vladislava Skarića 5", city="Sarajevo"
        )
        assert message.event.venue.name == "Hotel Bristol"

    def test_online_url_removed_is_material(
        self, client: FlaskClient, events: Events, published: dict[str, Any]
    ) -> None:
        response = patch(client, published["id"], {"online_url": None})

        assert response.status_code == 200, response.get_json()
        assert response.get_json()["online_url"] is None
        [(_, message)] = messages(events, EVENT_UPDATED)
        assert message.changed == ("online_url",)

    def test_each_material_edit_is_one_more_revision(
        self, client: FlaskClient, events: Events, published: dict[str, Any]
    ) -> None:
        for revision, hour in ((2, "11"), (3, "12")):
            response = patch(
                client, published["id"], {"starts_at": f"2030-12-15T{hour}:00:00+01:00"}
            )
            assert response.get_json()["revision"] == revision

        revisions = [m.event.revision for _, m in messages(events, EVENT_UPDATED)]
        assert revisions == [2, 3]

    def test_the_same_values_again_change_nothing(
        self, client: FlaskClient, events: Events, published: dict[str, Any]
    ) -> None:
        before = outbox_count(events)
        response = patch(
            client,
            published["id"],
            {"starts_at": "2030-12-15T09:00:00Z", "venue": published["venue"]},
        )

        assert response.status_code == 200, response.get_json()
        assert response.get_json()["revision"] == 1
        assert outbox_count(events) == before


class TestNonMaterialChanges:
    def test_description_topics_and_title_bump_nothing_and_send_nothing(
        self, client: FlaskClient, events: Events, published: dict[str, Any]
    ) -> None:
        before = outbox_count(events)
        response = patch(
            client,
            published["id"],
            {
                "title": "Civil society and EU accession talks",
                "description": None,
                "topics": ["youth", "advocacy"],
                "capacity": 80,
                "translations": {"bs": {"title": "Civilno društvo"}},
            },
            content_type="application/json",
        )

        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["revision"] == 1
        assert body["title"] == "Civil society and EU accession talks"
        assert body["description"] is None
        assert body["topics"] == ["advocacy", "youth"]
        assert body["capacity"] == 80
        assert body["translations"] == {"bs": {"title": "Civilno društvo", "description": None}}
        assert outbox_count(events) == before
        assert body["updated_at"] > published["updated_at"]

    def test_a_draft_changes_freely_and_silently(
        self, client: FlaskClient, events: Events, draft: dict[str, Any]
    ) -> None:
        response = patch(
            client,
            draft["id"],
            {"starts_at": "2020-01-01T10:00:00Z", "ends_at": "2020-01-01T12:00:00Z"},
        )

        assert response.status_code == 200, response.get_json()
        assert response.get_json()["revision"] == 0
        assert response.get_json()["status"] == "draft"
        assert outbox_count(events) == 0

    def test_an_edit_is_audited(
        self, client: FlaskClient, events: Events, published: dict[str, Any]
    ) -> None:
        patch(client, published["id"], {"title": "New title"})

        with events.engine.connect() as conn:
            entry = conn.execute(
                sa.select(audit_log).where(audit_log.c.action == "event.update")
            ).one()
        assert entry.resource_id == published["id"]
        assert json.loads(entry.before)["title"] == "Civil society and EU accession"
        assert json.loads(entry.after)["title"] == "New title"


FUTURE = {"starts_at": "2030-12-15T10:00:00+01:00", "ends_at": "2030-12-15T16:00:00+01:00"}


class TestRegistrationsFollowTheEvent:
    """An edit or a cancellation moves, refuses or ends what registrations hold, in one
    transaction (registrations.py does the work; lifecycle.py calls it)."""

    @staticmethod
    def _register(events: Events, event_id: str, organisation: str, seats: int) -> str:
        from tacso_events.registrations import register

        with transaction(events.sessions) as session:
            outcome = register(session, event_id, organisation, seats, events.policy)
            return outcome.registration.id

    @staticmethod
    def _jobs(events: Events) -> dict[str, datetime]:
        from tacso_events.models import ScheduledJob

        with events.sessions() as session:
            return {job.key: job.due_at for job in session.scalars(sa.select(ScheduledJob))}

    def test_capacity_cannot_drop_below_the_confirmed_seats_and_a_raise_offers_seats(
        self, events: Events, client: FlaskClient, create_event: Create
    ) -> None:
        from tacso_events.models import Registration

        event = create_event(capacity=2, **FUTURE)
        self._register(events, event["id"], "org-a", 2)
        waiting = self._register(events, event["id"], "org-b", 1)

        lower = patch(client, event["id"], {"capacity": 1})
        raised = patch(client, event["id"], {"capacity": 3})

        assert lower.status_code == 409
        assert "2 seats are confirmed" in lower.get_json()["message"]
        assert raised.status_code == 200
        with events.sessions() as session:
            assert session.get(Registration, waiting).status == "offered"  # type: ignore[union-attr]

    def test_moving_the_event_moves_its_reminders(
        self, events: Events, client: FlaskClient, published: dict[str, Any]
    ) -> None:
        registration = self._register(events, published["id"], "org-a", 1)
        before = self._jobs(events)

        response = patch(
            client,
            published["id"],
            {"starts_at": "2030-12-16T10:00:00+01:00", "ends_at": "2030-12-16T16:00:00+01:00"},
        )

        after = self._jobs(events)
        assert response.status_code == 200
        assert set(after) == set(before) and after
        assert all(key.startswith(f"reminder:{registration}") for key in after)
        assert all(after[key] > before[key] for key in after)

    def test_cancelling_voids_open_offers_and_drops_every_job(
        self, events: Events, client: FlaskClient, create_event: Create
    ) -> None:
        from tacso_events.models import Registration
        from tacso_events.registrations import cancel as cancel_registration

        event = create_event(capacity=1, **FUTURE)
        first = self._register(events, event["id"], "org-a", 1)
        waiting = self._register(events, event["id"], "org-b", 1)
        with transaction(events.sessions) as session:
            cancel_registration(session, event["id"], first, events.policy)
        assert self._jobs(events)

        assert cancel(client, event["id"], {"reason": "Ill."}).status_code == 200

        with events.sessions() as session:
            assert session.get(Registration, waiting).status == "expired"  # type: ignore[union-attr]
        assert self._jobs(events) == {}


class TestIfMatch:
    def test_the_etag_of_a_read_allows_the_edit_and_a_stale_one_is_412(
        self, client: FlaskClient, published: dict[str, Any]
    ) -> None:
        etag = client.get(f"/api/v1/events/{published['id']}").headers["ETag"]

        first = patch(client, published["id"], {"title": "One"}, **{"If-Match": etag})
        stale = patch(client, published["id"], {"title": "Two"}, **{"If-Match": etag})
        fresh = patch(
            client, published["id"], {"title": "Three"}, **{"If-Match": first.headers["ETag"]}
        )

        assert first.status_code == 200
        assert first.headers["ETag"] != etag
        assert stale.status_code == 412
        assert "changed since" in stale.get_json()["message"]
        assert fresh.status_code == 200
        assert fresh.get_json()["title"] == "Three"

    def test_a_star_matches_any_version(
        self, client: FlaskClient, published: dict[str, Any]
    ) -> None:
        response = patch(client, published["id"], {"title": "x"}, **{"If-Match": "*"})

        assert response.status_code == 200


class TestCancel:
    def test_cancelling_writes_event_cancelled_and_keeps_the_event_readable(
        self, client: FlaskClient, events: Events, published: dict[str, Any]
    ) -> None:
        response = cancel(client, published["id"], {"reason": "  The trainer is ill.  "})

        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["status"] == "cancelled"
        assert body["revision"] == 2
        assert body["cancel_reason"] == "The trainer is ill."
        assert body["cancelled_at"] is not None
        [(routing_key, message)] = messages(events, EVENT_CANCELLED)
        assert routing_key == "event.cancelled.BA"
        assert isinstance(message, EventCancelled)
        assert message.reason == "The trainer is ill."
        assert message.event.revision == 2
        assert message.cancelled_at.isoformat() == body["cancelled_at"]
        public = client.get(f"/api/v1/events/{published['id']}")
        assert public.status_code == 200
        assert public.get_json()["cancel_reason"] == "The trainer is ill."

    def test_a_published_event_shows_no_cancellation(self, published: dict[str, Any]) -> None:
        assert published["cancel_reason"] is None
        assert published["cancelled_at"] is None

    def test_a_cancelled_event_leaves_the_json_listing(
        self, client: FlaskClient, published: dict[str, Any]
    ) -> None:
        cancel(client, published["id"], {"reason": "Postponed to next year."})

        listed = client.get("/api/v1/events?country=BA").get_json()
        assert published["id"] not in [e["id"] for e in listed["items"]]

    def test_a_cancelled_event_cannot_be_published_again(
        self, client: FlaskClient, published: dict[str, Any]
    ) -> None:
        cancel(client, published["id"], {"reason": "Postponed."})

        response = client.post(f"/api/v1/events/{published['id']}/publish", headers=ADMIN)
        assert response.status_code == 409


class TestRefusals:
    """At least twelve bad inputs, each a clear 4xx naming the field or the reason."""

    @pytest.mark.parametrize(
        ("body", "field", "reason"),
        [
            ({"colour": "red"}, "colour", "Unknown field."),
            ({"status": "draft"}, "status", "Cannot be changed"),
            ({"ends_at": "2030-12-15T08:00:00+01:00"}, "ends_at", "Must be after starts_at."),
            ({"starts_at": "2031-12-15T10:00:00+01:00"}, "ends_at", "Must be after starts_at."),
            (
                {"starts_at": "2021-01-01T10:00:00Z", "ends_at": "2021-01-01T12:00:00Z"},
                "starts_at",
                "cannot be moved to a time that has passed",
            ),
            ({"country": "RS"}, "country", "does not change country"),
            ({"organiser_id": "another"}, "organiser_id", "does not change its organiser"),
            ({"type": "party"}, "type", "Must be one of"),
            ({"topics": ["cooking"]}, "topics", "Must be one of"),
            ({"title": None}, "title", "Missing data"),
            ({"title": "   "}, "title", "Must not be blank."),
            ({"starts_at": "2030-12-15T10:00:00"}, "starts_at", "UTC offset"),
            ({"venue": None, "online_url": None}, "venue", "A venue or an online_url"),
            ({"capacity": "12"}, "capacity", "Not a valid integer."),
            ({"translations": {"xx": {"title": "?"}}}, "translations", "Must be one of"),
            ({"online_url": "ftp://example.org"}, "online_url", "Not a valid URL."),
        ],
    )
    def test_a_bad_patch_is_a_422_naming_the_field(
        self,
        client: FlaskClient,
        events: Events,
        published: dict[str, Any],
        body: dict[str, Any],
        field: str,
        reason: str,
    ) -> None:
        before = outbox_count(events)
        response = patch(client, published["id"], body)

        assert response.status_code == 422, response.get_json()
        errors = response.get_json()["errors"]["json"]
        assert field in errors, errors
        assert reason in str(errors[field])
        assert outbox_count(events) == before
        assert client.get(f"/api/v1/events/{published['id']}").get_json()["revision"] == 1

    @pytest.mark.parametrize("body", [[{"title": "x"}], "title", 3])
    def test_a_patch_that_is_not_an_object_is_a_422(
        self, client: FlaskClient, published: dict[str, Any], body: Any
    ) -> None:
        response = patch(client, published["id"], body)

        assert response.status_code == 422
        assert "Invalid input type" in str(response.get_json()["errors"])

    @pytest.mark.parametrize("content_type", ["text/plain", "application/json-patch+json"])
    def test_a_patch_of_another_type_is_a_415(
        self, client: FlaskClient, published: dict[str, Any], content_type: str
    ) -> None:
        response = patch(client, published["id"], {"title": "x"}, content_type=content_type)

        assert response.status_code == 415
        assert "merge patch" in response.get_json()["message"] or "JSON" in str(response.get_json())

    def test_a_bad_if_match_is_a_412(self, client: FlaskClient, published: dict[str, Any]) -> None:
        response = patch(client, published["id"], {"title": "x"}, **{"If-Match": '"r1-nope"'})

        assert response.status_code == 412

    def test_an_unknown_event_is_a_404(self, client: FlaskClient) -> None:
        assert patch(client, "no-such-event", {"title": "x"}).status_code == 404
        assert cancel(client, "no-such-event", {"reason": "x"}).status_code == 404

    def test_cancelling_a_draft_is_a_409(self, client: FlaskClient, draft: dict[str, Any]) -> None:
        response = cancel(client, draft["id"], {"reason": "Not needed."})

        assert response.status_code == 409
        assert "never published" in response.get_json()["message"]

    def test_cancelling_twice_is_a_409(
        self, client: FlaskClient, events: Events, published: dict[str, Any]
    ) -> None:
        assert cancel(client, published["id"], {"reason": "Ill."}).status_code == 200
        again = cancel(client, published["id"], {"reason": "Still ill."})

        assert again.status_code == 409
        assert "cancelled already" in again.get_json()["message"]
        assert len(messages(events, EVENT_CANCELLED)) == 1

    def test_editing_a_cancelled_event_is_a_409(
        self, client: FlaskClient, published: dict[str, Any]
    ) -> None:
        cancel(client, published["id"], {"reason": "Ill."})

        response = patch(client, published["id"], {"title": "Back on"})

        assert response.status_code == 409
        assert "cancelled" in response.get_json()["message"]

    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            ({}, "Missing data"),
            ({"reason": ""}, "Length must be between 1 and 500."),
            ({"reason": "   "}, "Must not be blank."),
            ({"reason": "x" * 501}, "Length must be between 1 and 500."),
            ({"reason": 42}, "Not a valid string."),
            ({"reason": "ok", "extra": 1}, "Unknown field."),
        ],
    )
    def test_a_bad_reason_is_a_422(
        self, client: FlaskClient, published: dict[str, Any], body: dict[str, Any], reason: str
    ) -> None:
        response = cancel(client, published["id"], body)

        assert response.status_code == 422, response.get_json()
        assert reason in str(response.get_json()["errors"]["json"])
        assert client.get(f"/api/v1/events/{published['id']}").get_json()["status"] == "published"

    def test_a_bad_if_match_on_cancel_is_a_412(
        self, client: FlaskClient, published: dict[str, Any]
    ) -> None:
        response = cancel(client, published["id"], {"reason": "Ill."}, **{"If-Match": '"old"'})

        assert response.status_code == 412
