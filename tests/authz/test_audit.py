"""Specification of the audit log: every write says who, as what, from where, before and after."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from support.world import World
from tacso_events.models import audit_log as events_audit_log
from tacso_shared import audit
from tacso_shared.db import transaction
from tacso_shared.identity import COUNTRY_EDITOR, NETWORK_ADMIN


def entries(world: World, service: str, **query: str) -> list[dict[str, Any]]:
    response = world.clients[service].get(
        "/api/v1/audit", query_string=query, headers=world.headers(NETWORK_ADMIN)
    )
    assert response.status_code == 200, response.get_json()
    items: list[dict[str, Any]] = response.get_json()["items"]
    return items


class TestAuditLog:
    def test_an_event_created_by_an_editor_names_the_editor(self, world: World) -> None:
        correlation = f"corr-{uuid.uuid4()}"
        body = {
            "title": "Audited workshop",
            "type": "workshop",
            "country": "BA",
            "topics": [],
            "starts_at": "2026-12-15T09:00:00+00:00",
            "ends_at": "2026-12-15T12:00:00+00:00",
            "online_url": "https://meet.example.org/a",
            "organiser_id": world.orgs["ba_rc"].id,
        }
        created = world.clients["events"].post(
            "/api/v1/events",
            json=body,
            headers={**world.headers(COUNTRY_EDITOR), "X-Correlation-ID": correlation},
        )

        (entry,) = entries(world, "events", resource_id=created.get_json()["id"])
        assert entry["action"] == "event.create"
        assert entry["actor"].startswith("api-key:")
        assert (entry["role"], entry["organisation_id"], entry["via"]) == (
            COUNTRY_EDITOR,
            world.orgs["ba_rc"].id,
            "token",
        )
        assert entry["before"] is None
        assert entry["after"]["title"] == "Audited workshop"
        assert entry["address"] == "127.0.0.1"
        assert entry["correlation_id"] == correlation

    def test_publishing_records_the_status_before_and_after(self, world: World) -> None:
        draft = world.draft("BA", world.orgs["ba_rc"])
        world.clients["events"].post(
            f"/api/v1/events/{draft}/publish", headers=world.headers(COUNTRY_EDITOR)
        )

        published = entries(world, "events", resource_id=draft, action="event.publish")
        assert [(e["before"], e["after"]) for e in published] == [
            ({"status": "draft"}, {"status": "published", "revision": 1})
        ]

    def test_registry_records_keys_and_organisations_without_secrets(self, world: World) -> None:
        created = (
            world.clients["registry"]
            .post(
                "/api/v1/api-keys",
                json={"name": "audited", "role": "service"},
                headers=world.headers(NETWORK_ADMIN),
            )
            .get_json()
        )

        (entry,) = entries(world, "registry", resource_id=created["id"])
        assert entry["action"] == "api_key.create"
        assert entry["actor"] == world.headers_subject(NETWORK_ADMIN)
        assert created["secret"] not in str(entry)

    def test_a_refused_write_leaves_no_entry(self, world: World) -> None:
        before = len(entries(world, "events", action="event.create", page_size="1000"))
        world.clients["events"].post(
            "/api/v1/events", json={"title": "x"}, headers=world.headers(COUNTRY_EDITOR)
        )

        assert len(entries(world, "events", action="event.create", page_size="1000")) == before

    def test_old_entries_are_purged_after_the_retention(self, world: World) -> None:
        old = datetime.now(UTC) - timedelta(days=400)
        with transaction(world.events.sessions) as session:
            audit.record(
                session, events_audit_log, audit.Actor(None), "test.old", "event", "old-entry"
            )
            session.execute(
                sa.update(events_audit_log)
                .where(events_audit_log.c.resource_id == "old-entry")
                .values(at=old)
            )
        with transaction(world.events.sessions) as session:
            deleted = audit.purge(session, events_audit_log, 365)

        assert deleted == 1
        assert entries(world, "events", resource_id="old-entry") == []
