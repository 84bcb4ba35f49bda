"""Specification of the registry's HTTP API: organisations, topics, auth, health and OpenAPI."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from tacso_registry.bootstrap import Registry
from tacso_registry.models import outbox
from tacso_shared.contracts import (
    ORGANISATION_REGISTERED,
    OrganisationRegistered,
    OrganisationRegisteredV1,
    load_data,
)
from tacso_shared.envelope import parse_envelope
from tacso_shared.vocabulary import TOPICS

Register = Callable[..., dict[str, Any]]
Payload = Callable[..., dict[str, Any]]

ORGANISATIONS = "/api/v1/organisations"


def outbox_rows(registry: Registry) -> list[sa.Row[Any]]:
    """Every row of the registry's outbox, oldest first."""
    with registry.engine.connect() as conn:
        return list(conn.execute(sa.select(outbox).order_by(outbox.c.created_at)).all())


def list_json(client: FlaskClient, admin: dict[str, str], query: str = "") -> dict[str, Any]:
    """GET the organisation list with ``query`` (200 expected) and return its JSON."""
    response = client.get(f"{ORGANISATIONS}?{query}", headers=admin)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def ids_of(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


class TestCreateOrganisation:
    def test_returns_201_with_an_id_and_normalised_email_and_topics(
        self, client: FlaskClient, admin: dict[str, str], payload: Payload
    ) -> None:
        response = client.post(
            ORGANISATIONS,
            json=payload(
                name="  Udruženje Zdravo  ",
                email="Info@Zdravo.Example.ORG",
                topics=["youth", "advocacy", "youth", "human-rights"],
            ),
            headers=admin,
        )

        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        assert uuid.UUID(body["id"])
        assert body["name"] == "Udruženje Zdravo"
        assert body["email"] == "info@zdravo.example.org"
        assert body["topics"] == ["advocacy", "human-rights", "youth"]
        assert body["mailing_consent"] is True
        assert body["kind"] == "cso"
        assert body["country"] == "BA"
        assert body["language"] == "bs"
        assert body["created_at"] == body["updated_at"]

    def test_the_created_organisation_can_be_read_back_by_id(
        self, client: FlaskClient, admin: dict[str, str], register: Register
    ) -> None:
        created = register(topics=["youth", "environment"], mailing_consent=False)

        response = client.get(f"{ORGANISATIONS}/{created['id']}", headers=admin)

        assert response.status_code == 200
        assert response.get_json() == created

    def test_writes_an_organisation_registered_message_to_the_outbox(
        self, client: FlaskClient, admin: dict[str, str], payload: Payload, registry: Registry
    ) -> None:
        response = client.post(
            ORGANISATIONS,
            json=payload(country="XK", language="sq", topics=["youth", "advocacy"]),
            headers={**admin, "X-Correlation-ID": "corr-123"},
        )
        assert response.status_code == 201
        created = response.get_json()

        [row] = outbox_rows(registry)
        envelope = parse_envelope(row.body)
        assert row.id == envelope.id
        assert row.message_type == ORGANISATION_REGISTERED
        assert row.routing_key == "organisation.registered.XK"
        assert row.correlation_id == "corr-123"
        assert row.published_at is None
        assert envelope.type == ORGANISATION_REGISTERED
        assert envelope.source == "/tacso/registry"
        assert envelope.subject == created["id"]
        assert envelope.correlationid == "corr-123"
        assert load_data(envelope) == OrganisationRegistered(
            organisation_id=created["id"],
            name=created["name"],
            kind="cso",
            country="XK",
            email=created["email"],
            language="sq",
            topics=("advocacy", "youth"),
        )

    def test_a_duplicate_email_is_409_naming_the_email_and_writes_nothing(
        self,
        client: FlaskClient,
        admin: dict[str, str],
        payload: Payload,
        register: Register,
        registry: Registry,
    ) -> None:
        register(email="office@zdravo.example.org")

        response = client.post(
            ORGANISATIONS,
            json=payload(email="Office@Zdravo.Example.org", name="Another one"),
            headers=admin,
        )

        assert response.status_code == 409
        assert response.get_json()["errors"] == {"json": {"email": ["Already registered."]}}
        assert list_json(client, admin)["total"] == 1
        assert len(outbox_rows(registry)) == 1

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("name", "   "),
            ("kind", "ministry"),
            ("country", "HR"),
            ("email", "not-an-email"),
            ("language", "de"),
            ("topics", ["knitting"]),
        ],
    )
    def test_an_invalid_field_is_422_naming_the_field_and_writes_nothing(
        self,
        client: FlaskClient,
        admin: dict[str, str],
        payload: Payload,
        registry: Registry,
        field: str,
        value: Any,
    ) -> None:
        response = client.post(ORGANISATIONS, json=payload(**{field: value}), headers=admin)

        assert response.status_code == 422
        assert field in response.get_json()["errors"]["json"]
        assert outbox_rows(registry) == []


class TestListOrganisations:
    def test_filters_by_country(
        self, client: FlaskClient, admin: dict[str, str], register: Register
    ) -> None:
        ba = [register(country="BA")["id"] for _ in range(2)]
        register(country="RS", language="sr")

        body = list_json(client, admin, "country=BA")

        assert ids_of(body) == sorted(ba)
        assert body["total"] == 2

    def test_filters_by_kind(
        self, client: FlaskClient, admin: dict[str, str], register: Register
    ) -> None:
        media = register(kind="media")["id"]
        register(kind="cso")
        register(kind="resource_centre")

        assert ids_of(list_json(client, admin, "kind=media")) == [media]

    def test_filters_by_any_of_several_topics(
        self, client: FlaskClient, admin: dict[str, str], register: Register
    ) -> None:
        youth = register(topics=["youth"])["id"]
        environment = register(topics=["environment", "migration"])["id"]
        both = register(topics=["youth", "environment"])["id"]
        register(topics=["advocacy"])
        register(topics=[])

        body = list_json(client, admin, "topic=youth&topic=environment")

        assert ids_of(body) == sorted([youth, environment, both])
        assert body["total"] == 3

    def test_filters_by_mailing_consent(
        self, client: FlaskClient, admin: dict[str, str], register: Register
    ) -> None:
        consenting = register(mailing_consent=True)["id"]
        refusing = register(mailing_consent=False)["id"]

        assert ids_of(list_json(client, admin, "mailing_consent=true")) == [consenting]
        assert ids_of(list_json(client, admin, "mailing_consent=false")) == [refusing]

    def test_combines_filters(
        self, client: FlaskClient, admin: dict[str, str], register: Register
    ) -> None:
        match = register(country="MK", language="mk", kind="cso", topics=["youth"])["id"]
        register(country="MK", language="mk", kind="media", topics=["youth"])
        register(country="MK", language="mk", kind="cso", topics=["advocacy"])
        register(country="BA", kind="cso", topics=["youth"])
        register(country="MK", language="mk", kind="cso", topics=["youth"], mailing_consent=False)

        body = list_json(client, admin, "country=MK&kind=cso&topic=youth&mailing_consent=true")

        assert ids_of(body) == [match]
        assert body["total"] == 1

    def test_pages_by_offset_with_page_and_page_size(
        self, client: FlaskClient, admin: dict[str, str], register: Register
    ) -> None:
        ids = sorted(register()["id"] for _ in range(7))

        pages = [list_json(client, admin, f"page={n}&page_size=3") for n in (1, 2, 3, 4)]

        assert [ids_of(p) for p in pages] == [ids[0:3], ids[3:6], ids[6:7], []]
        assert [(p["page"], p["page_size"], p["total"]) for p in pages] == [
            (1, 3, 7),
            (2, 3, 7),
            (3, 3, 7),
            (4, 3, 7),
        ]

    def test_keyset_paging_walks_every_match_exactly_once_in_id_order(
        self, client: FlaskClient, admin: dict[str, str], register: Register
    ) -> None:
        matching = sorted(register(country="BA")["id"] for _ in range(8))
        for _ in range(3):
            register(country="RS", language="sr")

        seen: list[str] = []
        pages = 0
        query = "country=BA&page_size=3"
        body = list_json(client, admin, query)
        while True:
            pages += 1
            assert body["total"] == (8 if pages == 1 else None)
            seen.extend(ids_of(body))
            if body["next_after"] is None:
                break
            assert body["next_after"] == body["items"][-1]["id"]
            body = list_json(client, admin, f"{query}&after={body['next_after']}")

        assert seen == matching
        assert pages == 3

    def test_a_short_page_has_no_next_after(
        self, client: FlaskClient, admin: dict[str, str], register: Register
    ) -> None:
        register()

        assert list_json(client, admin, "page_size=5")["next_after"] is None

    @pytest.mark.parametrize(
        "query", ["page_size=1001", "page_size=0", "page=0", "country=HR", "topic=knitting"]
    )
    def test_out_of_range_paging_or_unknown_filter_values_are_422(
        self, client: FlaskClient, admin: dict[str, str], query: str
    ) -> None:
        response = client.get(f"{ORGANISATIONS}?{query}", headers=admin)

        assert response.status_code == 422
        assert query.split("=")[0] in response.get_json()["errors"]["query"]

    def test_a_page_size_of_1000_is_allowed(
        self, client: FlaskClient, admin: dict[str, str]
    ) -> None:
        assert list_json(client, admin, "page_size=1000")["page_size"] == 1000


class TestGetOrganisation:
    def test_an_unknown_id_is_404(self, client: FlaskClient, admin: dict[str, str]) -> None:
        response = client.get(f"{ORGANISATIONS}/{uuid.uuid4()}", headers=admin)

        assert response.status_code == 404
        assert response.get_json()["code"] == 404


class TestTopics:
    def test_lists_the_ten_topic_slugs_with_labels_without_a_key(self, client: FlaskClient) -> None:
        response = client.get("/api/v1/topics")

        assert response.status_code == 200
        topics = response.get_json()
        assert len(topics) == 10
        assert {t["slug"]: t["label"] for t in topics} == TOPICS


class TestAuthentication:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", ORGANISATIONS),
            ("POST", ORGANISATIONS),
            ("GET", f"{ORGANISATIONS}/00000000-0000-0000-0000-000000000000"),
        ],
    )
    def test_without_a_key_is_401_with_a_bearer_challenge(
        self, client: FlaskClient, payload: Payload, method: str, path: str
    ) -> None:
        response = client.open(path, method=method, json=payload())

        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="tacso"'

    @pytest.mark.parametrize(
        "authorization", ["Bearer wrong-key", "Basic dGVzdDp0ZXN0", "Bearer   "]
    )
    def test_with_a_wrong_key_or_scheme_is_401(
        self, client: FlaskClient, payload: Payload, registry: Registry, authorization: str
    ) -> None:
        response = client.post(
            ORGANISATIONS, json=payload(), headers={"Authorization": authorization}
        )

        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="tacso"')
        assert outbox_rows(registry) == []

    def test_a_wrong_key_is_told_apart_from_a_missing_one(self, client: FlaskClient) -> None:
        response = client.get(ORGANISATIONS, headers={"Authorization": "Bearer wrong-key"})

        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == (
            'Bearer realm="tacso", error="invalid_token"'
        )
        assert response.get_json()["message"] == "The token or API key is not valid."


class TestHealth:
    def test_healthz_is_200_when_the_database_answers(self, client: FlaskClient) -> None:
        response = client.get("/healthz")

        assert response.status_code == 200
        assert response.get_json() == {"status": "ok"}


class TestOpenApi:
    def test_lists_the_paths_and_the_bearer_security_scheme(self, client: FlaskClient) -> None:
        response = client.get("/openapi.json")

        assert response.status_code == 200
        doc = response.get_json()
        assert doc["openapi"] == "3.0.3"
        assert {
            "/api/v1/organisations",
            "/api/v1/organisations/{organisation_id}",
            "/api/v1/topics",
        } <= set(doc["paths"])
        scheme = doc["components"]["securitySchemes"]["bearerAuth"]
        assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == (
            "http",
            "bearer",
            "JWT",
        )

    def test_marks_the_organisation_operations_as_secured_and_topics_as_public(
        self, client: FlaskClient
    ) -> None:
        paths = client.get("/openapi.json").get_json()["paths"]

        secured = [
            paths["/api/v1/organisations"]["get"],
            paths["/api/v1/organisations"]["post"],
            paths["/api/v1/organisations/{organisation_id}"]["get"],
        ]
        for operation in secured:
            assert operation["security"] == [{"bearerAuth": []}]
            assert "401" in operation["responses"]
        assert "409" in paths["/api/v1/organisations"]["post"]["responses"]
        assert "security" not in paths["/api/v1/topics"]["get"]


class TestEmailAddresses:
    """Issue 8.2: what registry accepts is exactly what can be sent (and what contracts accept)."""

    @pytest.mark.parametrize(
        ("given", "stored", "ascii_form"),
        [
            ("  Info@Zdravo.Example.ORG ", "info@zdravo.example.org", "info@zdravo.example.org"),
            ("info@žene.example.ba", "info@žene.example.ba", "info@xn--ene-b3a.example.ba"),
            ("INFO@ŽENE.EXAMPLE.BA", "info@žene.example.ba", "info@xn--ene-b3a.example.ba"),
            ("žena@example.ba", "žena@example.ba", None),
            # NFD (z + combining caron) is stored as NFC.
            ("z\u030cena@example.ba", "žena@example.ba", None),
        ],
    )
    def test_internationalised_addresses_are_accepted_and_normalised(
        self,
        client: FlaskClient,
        admin: dict[str, str],
        payload: Payload,
        given: str,
        stored: str,
        ascii_form: str | None,
    ) -> None:
        response = client.post("/api/v1/organisations", json=payload(email=given), headers=admin)

        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        assert (body["email"], body["email_ascii"]) == (stored, ascii_form)
        again = client.get(f"/api/v1/organisations/{body['id']}", headers=admin).get_json()
        assert (again["email"], again["email_ascii"]) == (stored, ascii_form)

    @pytest.mark.parametrize(
        "address",
        [
            "a@[127.0.0.1]",
            '"a\\"b"@example.org',
            '"a\x07b"@example.org',
            '"a b"@example.org',
            "a@localhost",
            "a@printer.local",
            "a@example",
            "a..b@example.org",
            "a@" + "x" * 250 + ".org",
            "Name <a@example.org>",
        ],
    )
    def test_what_can_never_be_delivered_is_a_422_naming_the_email(
        self, client: FlaskClient, admin: dict[str, str], payload: Payload, address: str
    ) -> None:
        response = client.post("/api/v1/organisations", json=payload(email=address), headers=admin)

        assert response.status_code == 422, response.get_json()
        assert list(response.get_json()["errors"]["json"]) == ["email"]

    @pytest.mark.parametrize(
        "address", ["info@žene.example.ba", "žena@example.ba", "a@[127.0.0.1]", '"a b"@example.org']
    )
    def test_the_contracts_accept_exactly_what_the_registry_accepts(
        self, client: FlaskClient, admin: dict[str, str], payload: Payload, address: str
    ) -> None:
        registered = client.post(
            "/api/v1/organisations", json=payload(email=address), headers=admin
        ).status_code
        message = {
            "organisation_id": "o1",
            "name": "x",
            "kind": "cso",
            "country": "BA",
            "email": address,
            "language": "bs",
            "topics": [],
        }
        contract_errors = OrganisationRegisteredV1().validate(message)

        assert (registered == 201) == (not contract_errors), contract_errors
