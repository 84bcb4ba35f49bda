"""Specification of organisations that change: merge patch, (de)activation, erasure, consent
records, mailing preferences and the audience queries notify makes (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from tacso_registry import accounts
from tacso_registry.app import create_app
from tacso_registry.bootstrap import MIGRATIONS, Registry
from tacso_registry.models import Organisation, outbox
from tacso_shared.contracts import ORGANISATION_ERASED, ORGANISATION_UPDATED
from tacso_shared.db import migrate, transaction
from tacso_shared.identity import ORGANISATION_MEMBER, SERVICE

ORGANISATIONS = "/api/v1/organisations"
Make = Callable[..., dict[str, Any]]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """The registry on SQLite, then on PostgreSQL."""
    name = "registry" if request.param == "sqlite" else "postgres_registry"
    yield request.getfixturevalue(name)


@pytest.fixture
def api(backend: Registry) -> FlaskClient:
    return create_app(backend).test_client()


@pytest.fixture
def make(api: FlaskClient, admin: dict[str, str], payload: Any) -> Make:
    """Register an organisation through the API; its JSON."""

    def create(**overrides: Any) -> dict[str, Any]:
        response = api.post(ORGANISATIONS, json=payload(**overrides), headers=admin)
        assert response.status_code == 201, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    return create


def messages(registry: Registry, message_type: str) -> list[dict[str, Any]]:
    with registry.engine.connect() as conn:
        rows = conn.execute(
            sa.select(outbox.c.body)
            .where(outbox.c.message_type == message_type)
            .order_by(outbox.c.created_at)
        ).scalars()
        return [json.loads(body)["data"] for body in rows]


def audience(
    api: FlaskClient, admin: dict[str, str], kind: str = "invitation", **query: Any
) -> list[str]:
    params: dict[str, Any] = {"country": "BA", "kind": "cso", "mail_kind": kind, **query}
    response = api.get(ORGANISATIONS, query_string=params, headers=admin)
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


class TestPatch:
    def test_changes_only_the_given_fields_and_publishes_organisation_updated(
        self, api: FlaskClient, admin: dict[str, str], make: Make, backend: Registry
    ) -> None:
        org = make(name="Old name", topics=["youth"])

        response = api.patch(
            f"{ORGANISATIONS}/{org['id']}",
            json={
                "name": " New name ",
                "email": "New@Example.org",
                "contacts": [{"name": "Amra H.", "email": "amra@example.org", "role": "director"}],
            },
            headers=admin,
        )

        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["name"] == "New name"
        assert body["email"] == "new@example.org"
        assert body["topics"] == ["youth"]
        assert body["contacts"] == [
            {"name": "Amra H.", "email": "amra@example.org", "role": "director"}
        ]
        [message] = messages(backend, ORGANISATION_UPDATED)
        assert message["email"] == "new@example.org"
        assert message["country"] == "BA"

    def test_merge_patch_content_type_and_null_clears_topics(
        self, api: FlaskClient, admin: dict[str, str], make: Make
    ) -> None:
        org = make(topics=["youth"])

        response = api.patch(
            f"{ORGANISATIONS}/{org['id']}",
            data=json.dumps({"topics": None}),
            headers={**admin, "Content-Type": "application/merge-patch+json"},
        )

        assert response.status_code == 200, response.get_json()
        assert response.get_json()["topics"] == []

    def test_a_patch_that_changes_nothing_publishes_nothing(
        self, api: FlaskClient, admin: dict[str, str], make: Make, backend: Registry
    ) -> None:
        org = make()

        response = api.patch(f"{ORGANISATIONS}/{org['id']}", json={}, headers=admin)

        assert response.status_code == 200
        assert messages(backend, ORGANISATION_UPDATED) == []

    def test_replaces_a_seeded_placeholder_address(
        self, api: FlaskClient, admin: dict[str, str], backend: Registry
    ) -> None:
        from tacso_registry.seed import seed_organisations

        with transaction(backend.sessions) as session:
            seed_organisations(session)
            rc = session.scalars(
                sa.select(Organisation).where(Organisation.kind == "resource_centre")
            ).first()
            assert rc is not None
            rc_id = rc.id

        response = api.patch(
            f"{ORGANISATIONS}/{rc_id}", json={"email": "office@vesta.example.ba"}, headers=admin
        )

        assert response.status_code == 200, response.get_json()
        assert response.get_json()["email"] == "office@vesta.example.ba"

    @pytest.mark.parametrize(
        ("body", "field", "status"),
        [
            ({"kind": "media"}, "kind", 422),
            ({"country": "RS"}, "country", 422),
            ({"name": None}, "name", 422),
            ({"name": "   "}, "name", 422),
            ({"email": "not an address"}, "email", 422),
            ({"email": "a@[127.0.0.1]"}, "email", 422),
            ({"language": "xx"}, "language", 422),
            ({"topics": ["knitting"]}, "topics", 422),
            ({"contacts": [{"email": "x@example.org"}]}, "contacts", 422),
            ({"contacts": [{"name": "A", "phone": "call me"}]}, "contacts", 422),
            ({"colour": "blue"}, "colour", 422),
            ({"mailing_consent": False}, "mailing_consent", 422),
        ],
    )
    def test_bad_patches_are_refused_naming_the_field(
        self,
        api: FlaskClient,
        admin: dict[str, str],
        make: Make,
        body: dict[str, Any],
        field: str,
        status: int,
    ) -> None:
        org = make()

        response = api.patch(f"{ORGANISATIONS}/{org['id']}", json=body, headers=admin)

        assert response.status_code == status, response.get_json()
        assert field in response.get_json()["errors"]["json"]

    @pytest.mark.parametrize("raw", ["[1, 2]", '"name"', "{not json"])
    def test_a_patch_that_is_not_a_json_object_is_refused(
        self, api: FlaskClient, admin: dict[str, str], make: Make, raw: str
    ) -> None:
        org = make()

        response = api.patch(
            f"{ORGANISATIONS}/{org['id']}",
            data=raw,
            headers={**admin, "Content-Type": "application/json"},
        )

        assert response.status_code in (400, 422), response.get_json()

    def test_another_organisations_email_is_a_409(
        self, api: FlaskClient, admin: dict[str, str], make: Make
    ) -> None:
        first, second = make(), make()

        response = api.patch(
            f"{ORGANISATIONS}/{second['id']}", json={"email": first["email"]}, headers=admin
        )

        assert response.status_code == 409
        assert "email" in response.get_json()["errors"]["json"]

    def test_an_unknown_organisation_is_a_404(
        self, api: FlaskClient, admin: dict[str, str]
    ) -> None:
        response = api.patch(f"{ORGANISATIONS}/nope", json={"name": "X"}, headers=admin)

        assert response.status_code == 404


class TestActivation:
    def test_a_deactivated_organisation_leaves_the_audience_and_comes_back(
        self, api: FlaskClient, admin: dict[str, str], make: Make, backend: Registry
    ) -> None:
        org = make()

        off = api.post(f"{ORGANISATIONS}/{org['id']}/deactivate", headers=admin)
        assert off.status_code == 200 and off.get_json()["active"] is False
        assert org["id"] not in audience(api, admin)
        assert messages(backend, ORGANISATION_UPDATED)[-1]["active"] is False

        on = api.post(f"{ORGANISATIONS}/{org['id']}/activate", headers=admin)
        assert on.get_json()["active"] is True
        assert org["id"] in audience(api, admin)

    def test_an_organisation_member_may_not_deactivate_or_erase_its_own(
        self, api: FlaskClient, make: Make, backend: Registry
    ) -> None:
        org = make()
        with transaction(backend.sessions) as session:
            key = accounts.create_api_key(session, "member", ORGANISATION_MEMBER, org["id"])
        member = {"Authorization": f"Bearer {key.secret}"}

        assert (
            api.post(f"{ORGANISATIONS}/{org['id']}/deactivate", headers=member).status_code == 403
        )
        assert api.delete(f"{ORGANISATIONS}/{org['id']}", headers=member).status_code == 403
        patched = api.patch(f"{ORGANISATIONS}/{org['id']}", json={"name": "Ours"}, headers=member)
        assert patched.status_code == 200


class TestErasure:
    def test_leaves_no_personal_data_in_registry(
        self, api: FlaskClient, admin: dict[str, str], make: Make, backend: Registry
    ) -> None:
        org = make(
            name="Udruženje Tajna",
            email="tajna@example.org",
            contacts=[{"name": "Lejla Secret", "email": "lejla@example.org"}],
        )
        api.patch(f"{ORGANISATIONS}/{org['id']}", json={"name": "Udruženje Tajna 2"}, headers=admin)
        with transaction(backend.sessions) as session:
            accounts.create_account(
                session, "member@example.org", "Mirza Member", ORGANISATION_MEMBER, org["id"]
            )

        response = api.delete(f"{ORGANISATIONS}/{org['id']}", headers=admin)

        assert response.status_code == 204
        secrets = ("tajna", "lejla", "secret", "mirza", "member@example.org")
        with backend.engine.connect() as conn:
            dumps = []
            for table in (
                "organisations",
                "consents",
                "audit_log",
                "accounts",
                "organisation_topics",
            ):
                rows = conn.execute(sa.text(f"SELECT * FROM {table}")).all()  # noqa: S608
                dumps.append(repr(rows).lower())
            published = conn.execute(
                sa.select(outbox.c.body).where(outbox.c.published_at.is_not(None))
            ).all()
        for dump in dumps:
            for secret in secrets:
                assert secret not in dump
        assert published == []
        tombstone = api.get(f"{ORGANISATIONS}/{org['id']}", headers=admin).get_json()
        assert tombstone["name"] == "Erased organisation"
        assert tombstone["email"].endswith("@erased.invalid")
        assert tombstone["erased"] is True and tombstone["active"] is False
        assert tombstone["contacts"] == []
        [erased] = messages(backend, ORGANISATION_ERASED)
        assert erased == {
            "organisation_id": org["id"],
            "country": "BA",
            "emails": ["lejla@example.org", "tajna@example.org"],
        }
        consents = api.get(f"{ORGANISATIONS}/{org['id']}/consents", headers=admin).get_json()
        assert len(consents) == 1 and consents[0]["withdrawn_at"] is not None
        assert consents[0]["basis"] == "legitimate_interest"

    def test_an_erased_organisation_cannot_change_and_is_not_erased_twice(
        self, api: FlaskClient, admin: dict[str, str], make: Make
    ) -> None:
        org = make()
        api.delete(f"{ORGANISATIONS}/{org['id']}", headers=admin)

        assert api.delete(f"{ORGANISATIONS}/{org['id']}", headers=admin).status_code == 410
        patch = api.patch(f"{ORGANISATIONS}/{org['id']}", json={"name": "Back"}, headers=admin)
        assert patch.status_code == 410
        assert org["id"] not in audience(api, admin)
        assert api.delete(f"{ORGANISATIONS}/unknown", headers=admin).status_code == 404

    def test_the_erased_address_can_register_again(
        self, api: FlaskClient, admin: dict[str, str], make: Make
    ) -> None:
        org = make(email="again@example.org")
        api.delete(f"{ORGANISATIONS}/{org['id']}", headers=admin)

        assert make(email="again@example.org")["id"] != org["id"]


class TestConsent:
    def test_without_a_consent_object_legitimate_interest_is_recorded_with_the_caller(
        self, api: FlaskClient, admin: dict[str, str], make: Make
    ) -> None:
        org = make()

        [record] = api.get(f"{ORGANISATIONS}/{org['id']}/consents", headers=admin).get_json()

        assert record["basis"] == "legitimate_interest"
        assert record["source"] == "api"
        assert record["actor"] == "admin-api-key"
        assert record["withdrawn_at"] is None
        assert org["mailing_consent"] is True

    def test_a_given_consent_is_recorded_with_its_text_version(
        self, api: FlaskClient, admin: dict[str, str], make: Make
    ) -> None:
        org = make(consent={"basis": "consent", "text_version": "2026-11", "source": "admin"})

        [record] = api.get(f"{ORGANISATIONS}/{org['id']}/consents", headers=admin).get_json()

        assert (record["basis"], record["source"], record["text_version"]) == (
            "consent",
            "admin",
            "2026-11",
        )

    def test_mailing_consent_false_records_no_basis_and_mails_nothing(
        self, api: FlaskClient, admin: dict[str, str], make: Make
    ) -> None:
        org = make(mailing_consent=False)

        assert api.get(f"{ORGANISATIONS}/{org['id']}/consents", headers=admin).get_json() == []
        assert org["id"] not in audience(api, admin)

    @pytest.mark.parametrize(
        ("consent", "field"),
        [
            ({"basis": "because"}, "basis"),
            ({}, "basis"),
            ({"basis": "consent"}, "text_version"),
            ({"basis": "consent", "text_version": "v1", "source": "import"}, "source"),
            ({"basis": "consent", "text_version": "v1", "extra": 1}, "extra"),
            ("yes", "_schema"),
        ],
    )
    def test_a_bad_consent_is_refused_naming_the_field(
        self, api: FlaskClient, admin: dict[str, str], payload: Any, consent: Any, field: str
    ) -> None:
        response = api.post(ORGANISATIONS, json=payload(consent=consent), headers=admin)

        assert response.status_code == 422, response.get_json()
        assert field in response.get_json()["errors"]["json"]["consent"]

    def test_consent_contradicting_mailing_consent_false_is_refused(
        self, api: FlaskClient, admin: dict[str, str], payload: Any
    ) -> None:
        body = payload(mailing_consent=False, consent={"basis": "legitimate_interest"})

        response = api.post(ORGANISATIONS, json=body, headers=admin)

        assert response.status_code == 422
        assert "consent" in response.get_json()["errors"]["json"]


class TestPreferences:
    def test_default_preferences_want_everything(
        self, api: FlaskClient, admin: dict[str, str], make: Make
    ) -> None:
        org = make()

        response = api.get(f"{ORGANISATIONS}/{org['id']}/preferences", headers=admin)

        assert response.get_json() == {
            "all": True,
            "kinds": {"invitation": True, "press_notice": True, "reminder": True, "update": True},
            "topics_opted_out": [],
        }

    def test_opting_out_of_a_kind_leaves_that_kind_only(
        self, api: FlaskClient, admin: dict[str, str], make: Make, backend: Registry
    ) -> None:
        org = make()

        response = api.put(
            f"{ORGANISATIONS}/{org['id']}/preferences",
            json={"all": True, "kinds": {"invitation": False}},
            headers=admin,
        )

        assert response.status_code == 200, response.get_json()
        assert response.get_json()["kinds"]["invitation"] is False
        assert org["id"] not in audience(api, admin, "invitation")
        assert org["id"] in audience(api, admin, "reminder")
        assert len(messages(backend, ORGANISATION_UPDATED)) == 1

    def test_a_topic_opt_out_excludes_only_that_topics_events(
        self, api: FlaskClient, admin: dict[str, str], make: Make
    ) -> None:
        org = make(topics=["youth", "environment"])
        api.put(
            f"{ORGANISATIONS}/{org['id']}/preferences",
            json={"all": True, "topics_opted_out": ["youth"]},
            headers=admin,
        )

        youth: dict[str, Any] = {"topic": ["youth"], "event_topic": ["youth"]}
        environment: dict[str, Any] = {"topic": ["environment"], "event_topic": ["environment"]}
        both: dict[str, Any] = {
            "topic": ["youth", "environment"],
            "event_topic": ["youth", "environment"],
        }
        assert org["id"] not in audience(api, admin, **youth)
        assert org["id"] in audience(api, admin, **environment)
        assert org["id"] in audience(api, admin, **both)
        assert org["id"] not in audience(api, admin, "press_notice", event_topic=["youth"])

    def test_opting_out_of_everything_then_back_in_restores_the_audience(
        self, api: FlaskClient, admin: dict[str, str], make: Make
    ) -> None:
        org = make()
        path = f"{ORGANISATIONS}/{org['id']}/preferences"

        api.put(path, json={"all": False}, headers=admin)
        assert org["id"] not in audience(api, admin)
        api.put(path, json={"all": True}, headers=admin)
        assert org["id"] in audience(api, admin)

    def test_the_service_role_tells_opted_out_organisations_from_the_audience(
        self, api: FlaskClient, admin: dict[str, str], make: Make, backend: Registry
    ) -> None:
        """What notify's audience preview relies on: with its service key, the plain list keeps
        those who opted out and the audience query leaves them out, so the difference counts
        them."""
        with transaction(backend.sessions) as session:
            key = accounts.create_api_key(session, "notify", SERVICE, None)
        service = {"Authorization": f"Bearer {key.secret}"}
        everything, topic, kind, other_topic, wanted = (make() for _ in range(5))
        preferences = {
            everything["id"]: {"all": False},
            topic["id"]: {"all": True, "topics_opted_out": ["human-rights"]},
            kind["id"]: {"all": True, "kinds": {"invitation": False}},
            other_topic["id"]: {"all": True, "topics_opted_out": ["youth"]},
        }
        for organisation_id, body in preferences.items():
            response = api.put(
                f"{ORGANISATIONS}/{organisation_id}/preferences", json=body, headers=admin
            )
            assert response.status_code == 200, response.get_json()
        query: dict[str, Any] = {"country": "BA", "kind": "cso", "topic": ["human-rights"]}

        listed = api.get(ORGANISATIONS, query_string=query, headers=service)
        asked = api.get(
            ORGANISATIONS,
            query_string={**query, "mail_kind": "invitation", "event_topic": ["human-rights"]},
            headers=service,
        )

        assert listed.status_code == asked.status_code == 200, listed.get_json()
        listed_ids = {item["id"] for item in listed.get_json()["items"]}
        asked_ids = {item["id"] for item in asked.get_json()["items"]}
        assert listed_ids - asked_ids == {everything["id"], topic["id"], kind["id"]}
        assert {wanted["id"], other_topic["id"]} <= asked_ids
        assert listed.get_json()["total"] - asked.get_json()["total"] == 3

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"all": True, "kinds": {"newsletter": False, "spam": True}}, "kinds"),
            ({"all": True, "kinds": {"invitation": "nope"}}, "kinds"),
            ({"all": True, "topics_opted_out": ["knitting"]}, "topics_opted_out"),
            ({"kinds": {"invitation": False}}, "all"),
            ({"all": True, "everything": False}, "everything"),
        ],
    )
    def test_invalid_preferences_are_refused_naming_them(
        self, api: FlaskClient, admin: dict[str, str], make: Make, body: Any, field: str
    ) -> None:
        org = make()

        response = api.put(f"{ORGANISATIONS}/{org['id']}/preferences", json=body, headers=admin)

        assert response.status_code == 422, response.get_json()
        errors = response.get_json()["errors"]["json"]
        assert field in errors
        if "newsletter" in json.dumps(body):
            assert "newsletter" in errors["kinds"][0] and "spam" in errors["kinds"][0]

    def test_a_bad_mail_kind_in_the_audience_query_is_a_422(
        self, api: FlaskClient, admin: dict[str, str]
    ) -> None:
        response = api.get(f"{ORGANISATIONS}?mail_kind=newsletter", headers=admin)

        assert response.status_code == 422
        assert "mail_kind" in response.get_json()["errors"]["query"]


def test_existing_organisations_get_a_consent_record_from_the_migration(tmp_path: Path) -> None:
    """Migration 0004 records ``legitimate_interest`` for organisations with mailing consent."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    migrate(MIGRATIONS, url, "0003")
    engine = sa.create_engine(url)
    row = {"kind": "cso", "country": "BA", "language": "bs", "created_at": "2026-01-01 00:00:00"}
    with engine.begin() as conn:
        for org_id, consent in (("yes", True), ("no", False)):
            conn.execute(
                sa.text(
                    "INSERT INTO organisations (id, name, kind, country, email, language, "
                    "mailing_consent, created_at, updated_at) VALUES (:id, :id, :kind, :country, "
                    ":email, :language, :consent, :created_at, :created_at)"
                ),
                {**row, "id": org_id, "email": f"{org_id}@example.org", "consent": consent},
            )
    migrate(MIGRATIONS, url)
    with engine.connect() as conn:
        records = conn.execute(
            sa.text("SELECT organisation_id, basis, source, actor FROM consents")
        ).all()
        active = conn.execute(sa.text("SELECT active, opted_out_all FROM organisations")).all()
    engine.dispose()
    assert [tuple(r) for r in records] == [("yes", "legitimate_interest", "api", "migration-0004")]
    assert {tuple(r) for r in active} == {(1, 0)}


def test_published_erasure_messages_lose_their_addresses(
    registry: Registry, client: FlaskClient, admin: dict[str, str], register: Any
) -> None:
    """Once the relay published ``organisation.erased``, the outbox copy keeps no address."""
    from click.testing import CliRunner

    from tacso_registry.cli import cli

    org = register(email="gone@example.org")
    client.delete(f"{ORGANISATIONS}/{org['id']}", headers=admin)
    with registry.engine.begin() as conn:
        conn.execute(outbox.update().values(published_at=sa.func.now()))
    env = {
        "REGISTRY_DATABASE_URL": str(registry.engine.url),
        "ADMIN_API_KEY": "test-admin-key",
    }

    result = CliRunner().invoke(cli, ["redact-erasures"], env=env, catch_exceptions=False)

    assert "1 published erasure message(s) redacted" in result.output
    with registry.engine.connect() as conn:
        bodies = conn.execute(sa.select(outbox.c.body)).scalars().all()
    assert not any("gone@example.org" in body for body in bodies)
