"""The events HTTP API against a migrated SQLite database and a fake registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from tacso_events.registry_client import Organisation

Payload = Callable[..., dict[str, Any]]
Create = Callable[..., dict[str, Any]]

BA_CENTRE_ID = "6b1d3a52-2f0e-4c55-9d3a-0d3c7f1f0a01"


def test_create_published_event_returns_it(
    client: FlaskClient, admin: dict[str, str], payload: Payload
) -> None:
    response = client.post(
        "/api/v1/events", json=payload(topics=["youth", "advocacy", "youth"]), headers=admin
    )

    assert response.status_code == 201
    body = response.get_json()
    assert body["title"] == "Civil society and EU accession"
    assert body["type"] == "conference"
    assert body["country"] == "BA"
    assert body["topics"] == ["advocacy", "youth"]
    assert body["starts_at"] == "2026-05-04T07:00:00+00:00"
    assert body["ends_at"] == "2026-05-04T15:00:00+00:00"
    assert body["venue"] == {
        "name": "Hotel Europe",
        "address": "Vladislava Skarića 5",
        "city": "Sarajevo",
    }
    assert body["online_url"] is None
    assert body["capacity"] == 120
    assert body["organiser_id"] == BA_CENTRE_ID
    assert body["organiser_name"] == "VESTA with the Trainers' Network"
    assert "organiser_email" not in body
    assert body["status"] == "published"
    assert body["revision"] == 1
    assert body["url"] == f"https://events.tacso.example.org/api/v1/events/{body['id']}"
    assert body["page_url"] == f"https://events.tacso.example.org/events/{body['id']}"
    assert (body["seats_taken"], body["seats_left"], body["waitlist_length"]) == (0, 120, 0)
    assert body["published_at"] is not None
    assert body["created_at"].endswith("+00:00")
    assert body["updated_at"].endswith("+00:00")


def test_online_only_event_without_venue(
    client: FlaskClient, admin: dict[str, str], payload: Payload
) -> None:
    response = client.post(
        "/api/v1/events",
        json=payload(venue=None, online_url="https://meet.example.org/tacso", topics=[]),
        headers=admin,
    )

    assert response.status_code == 201
    body = response.get_json()
    assert body["venue"] is None
    assert body["online_url"] == "https://meet.example.org/tacso"
    assert body["topics"] == []


def test_optional_fields_may_be_left_out(
    client: FlaskClient, admin: dict[str, str], payload: Payload
) -> None:
    data = payload(venue={"name": "Youth Centre", "city": "Tuzla"})
    for key in ("description", "online_url", "capacity"):
        del data[key]

    response = client.post("/api/v1/events", json=data, headers=admin)

    assert response.status_code == 201
    body = response.get_json()
    assert body["description"] is None
    assert body["capacity"] is None
    assert body["venue"] == {"name": "Youth Centre", "address": None, "city": "Tuzla"}


def test_published_event_is_public(client: FlaskClient, create_event: Create) -> None:
    created = create_event()

    response = client.get(f"/api/v1/events/{created['id']}")

    assert response.status_code == 200
    assert response.get_json() == created


def test_draft_is_hidden_without_the_admin_key(
    client: FlaskClient, admin: dict[str, str], create_event: Create
) -> None:
    draft = create_event(status="draft")
    assert draft["status"] == "draft"
    assert draft["revision"] == 0
    assert draft["published_at"] is None

    assert client.get(f"/api/v1/events/{draft['id']}").status_code == 404
    wrong = {"Authorization": "Bearer not-the-key"}
    assert client.get(f"/api/v1/events/{draft['id']}", headers=wrong).status_code == 404
    seen = client.get(f"/api/v1/events/{draft['id']}", headers=admin)
    assert seen.status_code == 200
    assert seen.get_json()["status"] == "draft"


def test_publishing_a_draft(
    client: FlaskClient, admin: dict[str, str], create_event: Create
) -> None:
    draft = create_event(status="draft")

    response = client.post(f"/api/v1/events/{draft['id']}/publish", headers=admin)

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "published"
    assert body["revision"] == 1
    assert body["published_at"] is not None
    assert client.get(f"/api/v1/events/{draft['id']}").status_code == 200


def test_publishing_twice_is_a_conflict(
    client: FlaskClient, admin: dict[str, str], create_event: Create
) -> None:
    draft = create_event(status="draft")
    assert client.post(f"/api/v1/events/{draft['id']}/publish", headers=admin).status_code == 200

    again = client.post(f"/api/v1/events/{draft['id']}/publish", headers=admin)

    assert again.status_code == 409
    published = create_event()
    assert (
        client.post(f"/api/v1/events/{published['id']}/publish", headers=admin).status_code == 409
    )


def test_publishing_needs_the_key_and_a_known_event(
    client: FlaskClient, admin: dict[str, str], create_event: Create
) -> None:
    draft = create_event(status="draft")

    assert client.post(f"/api/v1/events/{draft['id']}/publish").status_code == 401
    assert client.post("/api/v1/events/no-such-event/publish", headers=admin).status_code == 404


def test_unknown_event_is_404(client: FlaskClient, admin: dict[str, str]) -> None:
    assert client.get("/api/v1/events/00000000-0000-4000-8000-000000000000").status_code == 404
    assert client.get("/api/v1/events/nothing", headers=admin).status_code == 404


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic dGVzdDp0ZXN0"}],
    ids=["no-key", "wrong-key", "not-bearer"],
)
def test_creating_needs_the_admin_key(
    client: FlaskClient, payload: Payload, headers: dict[str, str]
) -> None:
    response = client.post("/api/v1/events", json=payload(), headers=headers)

    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers


def test_malformed_json_is_400(client: FlaskClient, admin: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/events",
        data='{"title": "broken',
        headers={**admin, "Content-Type": "application/json"},
    )

    assert response.status_code == 400


INVALID_REQUESTS: list[tuple[str, dict[str, Any], str, str | None]] = [
    # (id, overrides (None value = drop the key), field named, part of the reason)
    ("title-missing", {"title": None}, "title", "Missing data"),
    ("title-blank", {"title": "   "}, "title", "blank"),
    ("title-too-long", {"title": "x" * 201}, "title", None),
    ("type-unknown", {"type": "party"}, "type", "Must be one of"),
    ("country-unknown", {"country": "FR"}, "country", "Must be one of"),
    ("country-lowercase", {"country": "ba"}, "country", None),
    ("topics-missing", {"topics": None}, "topics", "Missing data"),
    ("topic-unknown", {"topics": ["advocacy", "football"]}, "topics", None),
    ("topics-not-a-list", {"topics": "advocacy"}, "topics", "Not a valid list"),
    ("starts-at-naive", {"starts_at": "2026-05-04T09:00:00"}, "starts_at", "UTC offset"),
    ("ends-at-naive", {"ends_at": "2026-05-04T17:00:00"}, "ends_at", "UTC offset"),
    ("starts-at-garbage", {"starts_at": "next tuesday"}, "starts_at", None),
    ("ends-before-start", {"ends_at": "2026-05-04T08:00:00+02:00"}, "ends_at", "after"),
    ("ends-at-start", {"ends_at": "2026-05-04T07:00:00+00:00"}, "ends_at", "after"),
    (
        "no-venue-no-url",
        {"venue": None, "online_url": None},
        "venue",
        "A venue or an online_url is required.",
    ),
    ("venue-without-city", {"venue": {"name": "Hotel Europe"}}, "venue", None),
    ("venue-blank-name", {"venue": {"name": " ", "city": "Mostar"}}, "venue", None),
    ("online-url-not-http", {"online_url": "ftp://files.example.org/x"}, "online_url", None),
    ("online-url-garbage", {"venue": None, "online_url": "not a url"}, "online_url", None),
    ("capacity-zero", {"capacity": 0}, "capacity", None),
    ("capacity-negative", {"capacity": -5}, "capacity", None),
    ("capacity-not-int", {"capacity": 12.5}, "capacity", None),
    ("capacity-string", {"capacity": "many"}, "capacity", None),
    ("capacity-bool", {"capacity": True}, "capacity", None),
    ("capacity-huge", {"capacity": 10**30}, "capacity", None),
    ("starts-at-off-the-calendar", {"starts_at": "0001-01-01T00:30:00+01:00"}, "starts_at", None),
    ("ends-at-off-the-calendar", {"ends_at": "9999-12-31T23:30:00-01:00"}, "ends_at", None),
    ("title-nul", {"title": "Civil\x00society"}, "title", "NUL"),
    ("organiser-missing", {"organiser_id": None}, "organiser_id", "Missing data"),
    ("status-unknown", {"status": "cancelled"}, "status", "Must be one of"),
    ("unknown-field", {"colour": "blue"}, "colour", "Unknown field"),
    (
        "organiser-unknown",
        {"organiser_id": "00000000-0000-4000-8000-00000000dead"},
        "organiser_id",
        "No such organisation.",
    ),
    (
        "organiser-cso",
        {"organiser_id": "6b1d3a52-2f0e-4c55-9d3a-0d3c7f1f0a03"},
        "organiser_id",
        "Must be a resource centre or TACSO office.",
    ),
    (
        "organiser-other-country",
        {"organiser_id": "6b1d3a52-2f0e-4c55-9d3a-0d3c7f1f0a02"},
        "organiser_id",
        "The organiser belongs to RS, not BA.",
    ),
    ("organiser-id-path", {"organiser_id": "../topics"}, "organiser_id", None),
]


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [pytest.param(o, f, r, id=i) for i, o, f, r in INVALID_REQUESTS],
)
def test_invalid_requests_are_422_naming_the_field(
    client: FlaskClient,
    admin: dict[str, str],
    payload: Payload,
    overrides: dict[str, Any],
    field: str,
    reason: str | None,
) -> None:
    data = payload()
    for key, value in overrides.items():
        if value is None and key not in ("venue", "online_url"):
            data.pop(key, None)
        else:
            data[key] = value

    response = client.post("/api/v1/events", json=data, headers=admin)

    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert body["code"] == 422
    errors = body["errors"]["json"]
    assert list(errors) == [field], errors
    if reason is not None:
        assert reason in str(errors[field]), errors


def test_a_body_that_is_not_an_object_is_422(client: FlaskClient, admin: dict[str, str]) -> None:
    response = client.post("/api/v1/events", json=["not", "an", "object"], headers=admin)

    assert response.status_code == 422


@pytest.mark.usefixtures("registry_down")
def test_unreachable_registry_is_503(
    client: FlaskClient, admin: dict[str, str], payload: Payload
) -> None:
    response = client.post("/api/v1/events", json=payload(), headers=admin)

    assert response.status_code == 503
    assert "try again" in response.get_json()["message"]
    assert client.get("/api/v1/events").get_json()["total"] == 0


def test_an_office_may_organise_in_its_own_country(
    create_event: Create, organisers: dict[str, Organisation]
) -> None:
    office = organisers["rs_office"]

    event = create_event(country="RS", organiser_id=office.id)

    assert event["organiser_name"] == "TACSO Serbia office"


def _list(client: FlaskClient, query: str = "") -> dict[str, Any]:
    response = client.get(f"/api/v1/events{query}")
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def test_listing_filters_and_hides_drafts(
    client: FlaskClient, create_event: Create, organisers: dict[str, Organisation]
) -> None:
    rs = organisers["rs_office"].id
    late = create_event(
        title="Late",
        starts_at="2026-06-01T09:00:00+02:00",
        ends_at="2026-06-01T12:00:00+02:00",
        topics=["youth"],
    )
    early = create_event(
        title="Early",
        starts_at="2026-03-01T09:00:00+01:00",
        ends_at="2026-03-01T12:00:00+01:00",
        topics=["advocacy"],
        type="workshop",
    )
    serbian = create_event(
        title="Belgrade", country="RS", organiser_id=rs, topics=["environment", "youth"]
    )
    create_event(title="Draft", status="draft", topics=["youth"])

    everything = _list(client)
    assert [e["title"] for e in everything["items"]] == ["Early", "Belgrade", "Late"]
    assert everything["total"] == 3
    assert (everything["page"], everything["page_size"]) == (1, 20)

    assert [e["id"] for e in _list(client, "?country=BA")["items"]] == [early["id"], late["id"]]
    assert [e["id"] for e in _list(client, "?country=RS")["items"]] == [serbian["id"]]
    assert [e["id"] for e in _list(client, "?topic=youth")["items"]] == [serbian["id"], late["id"]]
    both = _list(client, "?topic=advocacy&topic=environment")
    assert [e["id"] for e in both["items"]] == [early["id"], serbian["id"]]
    assert [e["id"] for e in _list(client, "?type=workshop")["items"]] == [early["id"]]
    assert _list(client, "?country=BA&topic=environment")["total"] == 0
    window = _list(client, "?from=2026-05-01T00:00:00%2B00:00&to=2026-05-31T00:00:00Z")
    assert [e["id"] for e in window["items"]] == [serbian["id"]]
    assert all(e["status"] == "published" for e in everything["items"])


def test_listing_pages(client: FlaskClient, create_event: Create) -> None:
    for day in range(1, 6):
        create_event(
            title=f"Day {day}",
            starts_at=f"2026-05-0{day}T09:00:00+00:00",
            ends_at=f"2026-05-0{day}T10:00:00+00:00",
        )

    first = _list(client, "?page_size=2")
    third = _list(client, "?page_size=2&page=3")

    assert [e["title"] for e in first["items"]] == ["Day 1", "Day 2"]
    assert [e["title"] for e in third["items"]] == ["Day 5"]
    assert (third["page"], third["page_size"], third["total"]) == (3, 2, 5)
    assert _list(client, "?page=9")["items"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?page_size=0", "page_size"),
        ("?page_size=101", "page_size"),
        ("?page=0", "page"),
        ("?country=XX", "country"),
        ("?topic=football", "topic"),
        ("?type=party", "type"),
        ("?from=2026-05-01T00:00:00", "from"),
        ("?to=9999-12-31T23:30:00-01:00", "to"),
        ("?page=100000000000000000000", "page"),
        ("?from=2026-05-02T00:00:00Z&to=2026-05-01T00:00:00Z", "to"),
    ],
)
def test_invalid_list_queries_are_422(client: FlaskClient, query: str, field: str) -> None:
    response = client.get(f"/api/v1/events{query}")

    assert response.status_code == 422
    assert list(response.get_json()["errors"]["query"]) == [field]


def test_health_and_openapi(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    spec = client.get("/openapi.json").get_json()
    assert "/api/v1/events" in spec["paths"]
    assert "/api/v1/events/{event_id}/publish" in spec["paths"]
    assert spec["paths"]["/api/v1/events"]["post"]["security"] == [{"bearerAuth": []}]
