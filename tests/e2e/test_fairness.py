"""Countries never wait for each other: a small event's invitations go out while a big one is
still sending, with the stack's single invitations worker.

The module has a stack of its own (SQLite, then PostgreSQL); its TR and XK audiences are exactly
the organisations it inserts.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from support.smtp import RecordingSMTPServer
from support.stack import Stack
from support.waiting import wait_until
from tacso_registry.models import Organisation, OrganisationTopic
from tacso_shared.db import make_engine

BIG = 3000
SMALL = 3


def insert_csos(stack: Stack, country: str, count: int, topic: str) -> None:
    """Bulk-insert CSOs into registry's database (thousands through HTTP would take minutes)."""
    now = datetime.now(UTC)
    rows = [
        {
            "id": str(uuid.uuid4()),
            "name": f"Fairness {country} {i:05d}",
            "kind": "cso",
            "country": country,
            "email": f"fair-{country.lower()}-{i:05d}-{uuid.uuid4().hex[:6]}@example.org",
            "language": "en",
            "mailing_consent": True,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(count)
    ]
    engine = make_engine(stack.env["REGISTRY_DATABASE_URL"])
    try:
        with Session(engine) as session, session.begin():
            session.execute(sa.insert(Organisation), rows)
            session.execute(
                sa.insert(OrganisationTopic),
                [{"organisation_id": r["id"], "topic": topic} for r in rows],
            )
    finally:
        engine.dispose()


def publish(stack: Stack, country: str, topic: str) -> str:
    organiser = stack.organisation(country, "resource_centre")
    body: dict[str, Any] = {
        "title": f"Workshop {uuid.uuid4().hex[:6]}",
        "type": "workshop",
        "country": country,
        "topics": [topic],
        "starts_at": "2026-12-15T09:00:00+00:00",
        "ends_at": "2026-12-15T15:00:00+00:00",
        "online_url": "https://meet.example.org/workshop",
        "organiser_id": organiser["id"],
    }
    response = stack.post("events", "/api/v1/events", body)
    assert response.status_code == 201, response.text
    event_id: str = response.json()["id"]
    return event_id


def received(smtp: RecordingSMTPServer, event_id: str) -> int:
    marker = f"X-TACSO-Event-Id: {event_id}".encode()
    return sum(1 for m in smtp.messages if marker in m.data)


class TestFairness:
    def test_a_small_event_finishes_while_a_big_one_in_another_country_is_still_sending(
        self, stack: Stack, smtp_server: RecordingSMTPServer
    ) -> None:
        assert [n for n in stack.specs if "invitations" in n] == ["notify-invitations"]
        insert_csos(stack, "TR", BIG, "migration")
        insert_csos(stack, "XK", SMALL, "migration")

        big = publish(stack, "TR", "migration")
        wait_until(lambda: received(smtp_server, big) > 0, timeout=60, message="TR flowing")
        small = publish(stack, "XK", "migration")
        wait_until(lambda: received(smtp_server, small) == SMALL, timeout=60, message="XK done")
        big_when_small_done = received(smtp_server, big)

        assert big_when_small_done < BIG, "the XK event waited for the whole TR fan-out"
        wait_until(lambda: received(smtp_server, big) == BIG, timeout=120, message="TR done")
        rows = stack.deliveries(big)
        assert len(rows) == BIG and {r["status"] for r in rows} == {"sent"}
        assert received(smtp_server, small) == SMALL
