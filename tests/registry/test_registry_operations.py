"""Specification of the registry's operations: transactions, seeding, listing, and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from support.waiting import wait_until
from tacso_registry import operations
from tacso_registry.app import create_app
from tacso_registry.bootstrap import MIGRATIONS, Registry, apply_migrations
from tacso_registry.models import Organisation, outbox
from tacso_registry.operations import OrganisationFilter, organisation_id_for
from tacso_registry.seed import seed_organisations
from tacso_shared.contracts import load_data
from tacso_shared.db import alembic_config, transaction
from tacso_shared.envelope import parse_envelope
from tacso_shared.vocabulary import COUNTRIES


class Boom(Exception):
    """Raised on purpose to roll a transaction back."""


def organisation_data(**overrides: Any) -> dict[str, Any]:
    """What the create schema hands to :func:`operations.register_organisation`."""
    data: dict[str, Any] = {
        "name": "Udruženje Zdravo",
        "kind": "cso",
        "country": "BA",
        "email": "info@zdravo.example.org",
        "language": "bs",
        "topics": ["human-rights", "youth"],
        "mailing_consent": True,
    }
    data.update(overrides)
    return data


def count_rows(registry: Registry, table: sa.Table | type[Organisation]) -> int:
    with registry.sessions() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(table)) or 0


def all_organisations(registry: Registry) -> list[Organisation]:
    with registry.sessions() as session:
        return list(session.scalars(sa.select(Organisation).order_by(Organisation.id)))


class TestRegisterOrganisation:
    def test_stores_the_organisation_and_its_message_in_one_transaction(
        self, registry: Registry
    ) -> None:
        with transaction(registry.sessions) as session:
            org = operations.register_organisation(session, organisation_data(), "corr-1")

        assert count_rows(registry, Organisation) == 1
        with registry.engine.connect() as conn:
            [row] = conn.execute(sa.select(outbox)).all()
        envelope = parse_envelope(row.body)
        assert envelope.subject == org.id
        assert load_data(envelope).organisation_id == org.id
        assert row.routing_key == "organisation.registered.BA"

    def test_a_rolled_back_transaction_leaves_neither_organisation_nor_message(
        self, registry: Registry
    ) -> None:
        with pytest.raises(Boom), transaction(registry.sessions) as session:
            operations.register_organisation(session, organisation_data())
            assert session.scalar(sa.select(sa.func.count()).select_from(outbox)) == 1
            raise Boom

        assert count_rows(registry, Organisation) == 0
        assert count_rows(registry, outbox) == 0

    def test_refuses_an_email_already_registered(self, registry: Registry) -> None:
        with transaction(registry.sessions) as session:
            operations.register_organisation(session, organisation_data())

        with pytest.raises(operations.DuplicateEmail), transaction(registry.sessions) as session:
            operations.register_organisation(session, organisation_data(name="Copy"))

        assert count_rows(registry, Organisation) == 1
        assert count_rows(registry, outbox) == 1


class TestListOrganisations:
    def test_keyset_paging_with_a_topic_filter_returns_each_match_once(
        self, registry: Registry
    ) -> None:
        with transaction(registry.sessions) as session:
            expected = sorted(
                operations.register_organisation(
                    session,
                    organisation_data(email=f"m{n}@example.org", topics=topics),
                ).id
                for n, topics in enumerate([["youth"], ["youth", "advocacy"], ["advocacy"]] * 3)
            )
            for n in range(4):
                operations.register_organisation(
                    session, organisation_data(email=f"other{n}@example.org", topics=["migration"])
                )

        seen: list[str] = []
        after: str | None = None
        flt = OrganisationFilter(topics=("youth", "advocacy"))
        with registry.sessions() as session:
            while True:
                page = operations.list_organisations(session, flt, page_size=2, after=after)
                # Counted on the first page only: keyset pages leave the total out.
                assert page.total == (9 if after is None else None)
                seen.extend(o.id for o in page.items)
                if page.next_after is None:
                    break
                after = page.next_after

        assert seen == expected


class TestSeed:
    def test_adds_the_seven_offices_and_six_resource_centres(self, registry: Registry) -> None:
        with transaction(registry.sessions) as session:
            added = seed_organisations(session)

        orgs = all_organisations(registry)
        assert added == 13
        assert len(orgs) == 13
        offices = [o.country for o in orgs if o.kind == "tacso_office"]
        centres = [o.country for o in orgs if o.kind == "resource_centre"]
        assert sorted(offices) == sorted(COUNTRIES)
        assert Counter(centres) == Counter(c for c in COUNTRIES if c != "AL")
        assert all(o.id == organisation_id_for(o.email) for o in orgs)
        assert count_rows(registry, outbox) == 13

    def test_is_idempotent(self, registry: Registry) -> None:
        with transaction(registry.sessions) as session:
            seed_organisations(session)
        before = [(o.id, o.email, o.created_at) for o in all_organisations(registry)]

        with transaction(registry.sessions) as session:
            added_again = seed_organisations(session)

        assert added_again == 0
        assert [(o.id, o.email, o.created_at) for o in all_organisations(registry)] == before
        assert count_rows(registry, outbox) == 13


@pytest.mark.postgres
class TestOnPostgreSQL:
    def test_migrations_can_run_again_on_a_migrated_database(
        self, postgres_registry: Registry
    ) -> None:
        apply_migrations(postgres_registry.settings.common)

        with postgres_registry.engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        head = ScriptDirectory.from_config(
            alembic_config(MIGRATIONS, "sqlite://")
        ).get_current_head()
        assert version == head

    def test_create_and_list_work_through_the_api(self, postgres_registry: Registry) -> None:
        assert postgres_registry.engine.dialect.name == "postgresql"
        client = create_app(postgres_registry).test_client()
        admin = {"Authorization": f"Bearer {postgres_registry.settings.common.admin_api_key}"}
        payload = {
            "name": "Žene za mir",
            "kind": "cso",
            "country": "BA",
            "language": "bs",
            "topics": ["youth", "gender-equality"],
        }
        created = [
            client.post(
                "/api/v1/organisations",
                json={**payload, "email": f"Org{n}@Example.org"},
                headers=admin,
            )
            for n in range(5)
        ]
        assert [r.status_code for r in created] == [201] * 5
        duplicate = client.post(
            "/api/v1/organisations", json={**payload, "email": "org0@example.org"}, headers=admin
        )
        assert duplicate.status_code == 409

        first = client.get("/api/v1/organisations?topic=youth&page_size=3", headers=admin)
        body = first.get_json()
        second = client.get(
            f"/api/v1/organisations?topic=youth&page_size=3&after={body['next_after']}",
            headers=admin,
        ).get_json()

        ids = [o["id"] for o in body["items"] + second["items"]]
        assert ids == sorted(r.get_json()["id"] for r in created)
        assert body["total"] == 5
        assert body["items"][0]["topics"] == ["gender-equality", "youth"]
        assert body["items"][0]["created_at"].endswith("+00:00")
        assert count_rows(postgres_registry, outbox) == 5

    def test_seed_is_idempotent(self, postgres_registry: Registry) -> None:
        with transaction(postgres_registry.sessions) as session:
            assert seed_organisations(session) == 13
        with transaction(postgres_registry.sessions) as session:
            assert seed_organisations(session) == 0
        assert count_rows(postgres_registry, Organisation) == 13

    def test_health_reports_the_database(self, postgres_registry: Registry) -> None:
        response = create_app(postgres_registry).test_client().get("/healthz")

        assert response.status_code == 200


@pytest.mark.postgres
class TestConcurrentRegistrationOnPostgreSQL:
    def test_a_concurrent_duplicate_email_is_409_not_500(self, postgres_registry: Registry) -> None:
        client = create_app(postgres_registry).test_client()
        admin = {"Authorization": f"Bearer {postgres_registry.settings.common.admin_api_key}"}
        data = organisation_data(email="race@example.org")
        statuses: list[int] = []

        def post_the_same_email() -> None:
            response = client.post("/api/v1/organisations", json=data, headers=admin)
            statuses.append(response.status_code)

        with postgres_registry.sessions() as first, first.begin():
            operations.register_organisation(first, data)
            first.flush()
            # The second request passes its SELECT check (the first row is not committed yet)
            # and then waits on the unique index until the first transaction ends.
            racer = threading.Thread(target=post_the_same_email)
            racer.start()
            wait_until(
                lambda: blocked_on_a_lock(postgres_registry), message="second INSERT to block"
            )
        racer.join(timeout=30)

        assert statuses == [409]
        assert count_rows(postgres_registry, Organisation) == 1


def blocked_on_a_lock(registry: Registry) -> bool:
    """Whether some other session of this database waits on a lock."""
    with registry.engine.connect() as conn:
        waiting = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    return bool(waiting)
