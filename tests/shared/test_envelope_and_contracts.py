"""The envelope and the message contracts: what goes on the wire and what is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from support.messages import event_published
from tacso_shared.contracts import (
    EVENT_PUBLISHED,
    EVENT_PUBLISHED_V1,
    EventPublished,
    envelope_of,
    load_data,
)
from tacso_shared.envelope import Envelope, PoisonMessage, parse_envelope


def event_data(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event_id": "e1",
        "revision": 1,
        "title": "NGO EXPO",
        "description": None,
        "type": "expo",
        "country": "BA",
        "topics": ["youth"],
        "starts_at": datetime(2026, 5, 1, 8, tzinfo=UTC),
        "ends_at": datetime(2026, 5, 1, 16, tzinfo=UTC),
        "venue": {"name": "Skenderija", "address": None, "city": "Sarajevo"},
        "online_url": None,
        "capacity": 500,
        "organiser_id": "o1",
        "organiser_name": "VESTA",
        "organiser_email": None,
        "url": "http://localhost:5002/api/v1/events/e1",
    }
    data.update(over)
    return data


class TestEnvelope:
    def test_round_trips_with_cloudevents_attributes(self) -> None:
        env = envelope_of(event_published(**event_data()), "/t", correlation_id="c-1")
        wire = json.loads(env.to_json())
        assert {"specversion", "id", "source", "type", "time", "datacontenttype", "data"} <= set(
            wire
        )
        assert wire["specversion"] == "1.0" and wire["correlationid"] == "c-1"
        back = parse_envelope(env.to_json().encode())
        assert back.id == env.id and back.time == env.time and back.data == env.data
        loaded = load_data(back)
        assert isinstance(loaded, EventPublished)
        assert loaded.starts_at == datetime(2026, 5, 1, 8, tzinfo=UTC)
        assert loaded == event_published(**event_data()), "a message survives the wire whole"

    @pytest.mark.parametrize(
        "body",
        [b"not json", b"[1, 2]", b'{"specversion": "1.0"}', '{"id": "\u00e9"'.encode("latin-1")],
    )
    def test_undecodable_or_incomplete_bodies_are_poison(self, body: bytes) -> None:
        with pytest.raises(PoisonMessage):
            parse_envelope(body)


class TestContracts:
    def test_unknown_type_is_poison(self) -> None:
        with pytest.raises(PoisonMessage, match="unknown message type"):
            load_data(Envelope(type="org.tacso.nope.v1", source="/t", data={}))

    def test_data_that_breaks_the_schema_is_poison(self) -> None:
        bad = EVENT_PUBLISHED_V1.dump(event_published(**event_data()))
        bad["country"] = "FR"
        with pytest.raises(PoisonMessage, match="country"):
            load_data(Envelope(type=EVENT_PUBLISHED, source="/t", data=bad))

    def test_outgoing_data_is_checked_before_it_is_stored(self) -> None:
        with pytest.raises(ValueError, match="revision"):
            envelope_of(event_published(check=False, **event_data(revision=0)), "/t")

    def test_a_message_has_exactly_the_contract_fields(self) -> None:
        with pytest.raises(TypeError, match="headline"):
            event_published(**event_data(headline="not a field"))


def test_absurdly_nested_json_is_poison_not_a_crash() -> None:
    with pytest.raises(PoisonMessage):
        parse_envelope(b"[" * 100_000)


def _lifecycle_messages() -> list[Any]:
    from datetime import timedelta

    from tacso_shared.contracts import (
        EventCancelled,
        EventPublished,
        EventUpdated,
        OrganisationErased,
        OrganisationUpdated,
        RegistrationChanged,
        ReminderDue,
        Venue,
    )

    event = EVENT_PUBLISHED_V1.load(event_data())
    assert isinstance(event, EventPublished)
    when = datetime(2026, 12, 1, 9, tzinfo=UTC)
    return [
        OrganisationUpdated("o1", "Name", "cso", "BA", "a@example.org", "bs", ("youth",)),
        OrganisationErased("o1", "BA", ("a@example.org",)),
        EventUpdated(
            event, ("starts_at", "venue"), when, when + timedelta(hours=2), Venue("V", "C")
        ),
        EventCancelled(event, "the venue flooded", when),
        RegistrationChanged("r1", "o1", "waitlisted", 2, 3, when, event, position=4),
        RegistrationChanged("r1", "o1", "offered", 2, 4, when, event, offer_expires_at=when),
        ReminderDue("r1", "o1", "1d", when, event, seats=2),
    ]


def test_every_lifecycle_message_survives_its_envelope_and_routes_by_country() -> None:
    from tacso_shared.contracts import envelope_of, load_data

    keys = []
    for message in _lifecycle_messages():
        envelope = parse_envelope(envelope_of(message, "/tests").to_json())
        assert load_data(envelope) == message
        keys.append((envelope.type.rsplit(".", 2)[-2], message.country))
    assert keys[4] == ("waitlisted", "BA") and keys[5] == ("offered", "BA")


def test_a_registration_routes_by_its_status() -> None:
    from tacso_shared.contracts import contract_of

    registration = _lifecycle_messages()[4]
    contract = contract_of(registration)
    assert contract.type == "org.tacso.events.registration.waitlisted.v1"
    assert contract.routing_key(registration) == "registration.waitlisted.BA"


def test_an_update_must_name_a_material_change() -> None:
    from tacso_shared.contracts import EVENT_UPDATED_V1

    data = EVENT_UPDATED_V1.dump(_lifecycle_messages()[2])
    with pytest.raises(ValueError, match="changed"):
        EVENT_UPDATED_V1.load({**data, "changed": ["description"]})
