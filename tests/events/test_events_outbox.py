"""Publishing an event stores its ``event.published`` message in the outbox, in one transaction."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from tacso_events import operations
from tacso_events.bootstrap import Events
from tacso_events.models import Event, outbox
from tacso_events.registry_client import Organisation
from tacso_events.schemas import EventCreateSchema
from tacso_shared.contracts import EVENT_PUBLISHED, Venue, load_data
from tacso_shared.db import transaction
from tacso_shared.envelope import parse_envelope

Payload = Callable[..., dict[str, Any]]
Create = Callable[..., dict[str, Any]]


def _outbox_rows(events: Events) -> list[sa.Row[Any]]:
    with events.engine.connect() as conn:
        return list(conn.execute(sa.select(outbox).order_by(outbox.c.created_at)))


def test_a_published_event_writes_one_valid_message(
    client: FlaskClient,
    admin: dict[str, str],
    payload: Payload,
    events: Events,
    organisers: dict[str, Organisation],
) -> None:
    response = client.post(
        "/api/v1/events",
        json=payload(online_url="https://meet.example.org/tacso"),
        headers={**admin, "X-Correlation-ID": "corr-123"},
    )
    assert response.status_code == 201
    event = response.get_json()

    rows = _outbox_rows(events)

    assert len(rows) == 1
    row = rows[0]
    assert row.message_type == EVENT_PUBLISHED
    assert row.routing_key == "event.published.BA"
    assert row.correlation_id == "corr-123"
    assert row.published_at is None
    envelope = parse_envelope(row.body)
    assert envelope.id == row.id
    assert envelope.type == EVENT_PUBLISHED
    assert envelope.source == "/tacso/events"
    assert envelope.subject == event["id"]
    assert envelope.correlationid == "corr-123"
    data = load_data(envelope)
    centre = organisers["ba_centre"]
    assert data.event_id == event["id"]
    assert data.revision == 1
    assert data.title == event["title"]
    assert data.description == event["description"]
    assert data.type == "conference"
    assert data.country == "BA"
    assert data.topics == ("advocacy", "human-rights")
    assert data.starts_at.isoformat() == event["starts_at"]
    assert data.ends_at.isoformat() == event["ends_at"]
    assert data.venue == Venue(**event["venue"])
    assert data.online_url == "https://meet.example.org/tacso"
    assert data.capacity == 120
    assert data.organiser_id == centre.id
    assert data.organiser_name == centre.name
    assert data.organiser_email == centre.email
    assert data.url == event["page_url"], "mail links to the page people read, not the JSON"
    assert set(envelope.data) == {f.name for f in dataclasses.fields(data)}


def test_a_draft_writes_no_message_until_published(
    client: FlaskClient, admin: dict[str, str], create_event: Create, events: Events
) -> None:
    draft = create_event(status="draft")
    assert _outbox_rows(events) == []

    assert client.post(f"/api/v1/events/{draft['id']}/publish", headers=admin).status_code == 200
    rows = _outbox_rows(events)
    assert len(rows) == 1
    assert rows[0].routing_key == "event.published.BA"
    data = load_data(parse_envelope(rows[0].body))
    assert (data.event_id, data.revision) == (draft["id"], 1)

    assert client.post(f"/api/v1/events/{draft['id']}/publish", headers=admin).status_code == 409
    assert len(_outbox_rows(events)) == 1


def test_rejected_requests_write_nothing(
    client: FlaskClient, admin: dict[str, str], payload: Payload, events: Events
) -> None:
    # The BA Resource Centre cannot organise an RS event; an empty title fails the schema.
    wrong_country = client.post("/api/v1/events", json=payload(country="RS"), headers=admin)
    no_title = client.post("/api/v1/events", json=payload(title=""), headers=admin)

    assert wrong_country.status_code == 422, wrong_country.get_json()
    assert "organiser_id" in wrong_country.get_json()["errors"]["json"]
    assert no_title.status_code == 422, no_title.get_json()
    assert "title" in no_title.get_json()["errors"]["json"]
    assert _outbox_rows(events) == []
    with events.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Event)).scalar_one() == 0


def test_an_event_and_its_message_roll_back_together(events: Events, payload: Payload) -> None:
    data = EventCreateSchema().load(payload())
    with pytest.raises(RuntimeError), transaction(events.sessions) as session:
        operations.create_event(session, data, events.registry, "https://x.example.org")
        raise RuntimeError("something later in the transaction failed")

    assert _outbox_rows(events) == []
    with events.sessions() as session:
        assert operations.list_events(session, operations.EventFilter()).total == 0


def test_operations_publish_refuses_unknown_and_published_events(
    events: Events, payload: Payload
) -> None:
    with pytest.raises(operations.EventNotFound), transaction(events.sessions) as session:
        operations.publish_event(session, "missing", "https://x.example.org")
    with transaction(events.sessions) as session:
        data = EventCreateSchema().load(payload())
        event = operations.create_event(session, data, events.registry, "https://x.example.org")
    with pytest.raises(operations.AlreadyPublished), transaction(events.sessions) as session:
        operations.publish_event(session, event.id, "https://x.example.org")
    assert len(_outbox_rows(events)) == 1


def test_check_organiser_reasons(organisers: dict[str, Organisation]) -> None:
    centre, office, cso = organisers["ba_centre"], organisers["rs_office"], organisers["ba_cso"]

    assert operations.check_organiser(centre, "BA") is centre
    assert operations.check_organiser(office, "RS") is office
    with pytest.raises(operations.InvalidOrganiser, match=r"^No such organisation\.$"):
        operations.check_organiser(None, "BA")
    with pytest.raises(operations.InvalidOrganiser, match="resource centre or TACSO office"):
        operations.check_organiser(cso, "BA")
    with pytest.raises(operations.InvalidOrganiser, match=r"belongs to RS, not BA\."):
        operations.check_organiser(office, "BA")


class TestTranslations:
    def test_an_event_in_several_languages_carries_them_in_its_message(
        self, client: FlaskClient, admin: dict[str, str], payload: Payload, events: Events
    ) -> None:
        body = payload(
            language="en",
            translations={
                "bs": {"title": " Radionica o ljudskim pravima ", "description": "Na bosanskom."},
                "mk": {"title": "Работилница за човекови права"},
                "en": {"title": "the event's own language is not a translation"},
            },
        )
        response = client.post("/api/v1/events", json=body, headers=admin)
        assert response.status_code == 201, response.get_json()
        created = response.get_json()
        assert created["language"] == "en"
        assert created["translations"] == {
            "bs": {"title": "Radionica o ljudskim pravima", "description": "Na bosanskom."},
            "mk": {"title": "Работилница за човекови права", "description": None},
        }
        message = load_data(parse_envelope(_outbox_rows(events)[-1].body))
        assert message.language == "en"
        assert message.text_in("bs").title == "Radionica o ljudskim pravima"
        assert message.text_in("mk").description is None
        assert message.text_in("tr").title == created["title"], "untranslated: as written"

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"language": "xx"}, "language"),
            ({"translations": {"xx": {"title": "X"}}}, "translations"),
            ({"translations": {"bs": {"title": ""}}}, "translations"),
            ({"translations": {"bs": {"title": "   "}}}, "translations"),
            ({"translations": {"bs": {"description": "no title"}}}, "translations"),
            ({"translations": {"bs": "Radionica"}}, "translations"),
            ({"translations": ["bs"]}, "translations"),
        ],
    )
    def test_bad_translations_are_a_422_naming_the_field(
        self,
        client: FlaskClient,
        admin: dict[str, str],
        payload: Payload,
        changes: dict[str, Any],
        field: str,
    ) -> None:
        response = client.post("/api/v1/events", json=payload(**changes), headers=admin)
        assert response.status_code == 422
        assert field in response.get_json()["errors"]["json"]
