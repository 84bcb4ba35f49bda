"""Specification of notify's audience lookup against a real registry served over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tacso_notify.audience import AudienceUnavailable, RegistryDirectory
from tacso_notify.domain import Recipient
from tacso_registry import operations
from tacso_registry.bootstrap import Registry
from tacso_shared.db import transaction

AddOrganisations = Callable[..., list[str]]


@pytest.fixture
def add(registry: Registry) -> AddOrganisations:
    """Register ``count`` organisations with the given fields; return their ids."""
    numbers = iter(range(10_000))

    def add_organisations(count: int = 1, **fields: Any) -> list[str]:
        ids = []
        with transaction(registry.sessions) as session:
            for _ in range(count):
                n = next(numbers)
                data: dict[str, Any] = {
                    "name": f"Organisation {n}",
                    "kind": "cso",
                    "country": "BA",
                    "email": f"org{n}@example.org",
                    "language": "bs",
                    "topics": ["youth"],
                    "mailing_consent": True,
                    **fields,
                }
                ids.append(operations.register_organisation(session, data).id)
        return ids

    return add_organisations


@pytest.fixture
def directory(registry_url: str, admin: dict[str, str]) -> RegistryDirectory:
    key = admin["Authorization"].removeprefix("Bearer ")
    return RegistryDirectory(registry_url, key, page_size=3, timeout=(2.0, 5.0))


def flatten(pages: list[list[Recipient]]) -> list[str]:
    return [r.organisation_id for page in pages for r in page]


class TestRegistryDirectory:
    def test_yields_every_match_exactly_once_in_pages_of_page_size(
        self, directory: RegistryDirectory, add: AddOrganisations
    ) -> None:
        matching = add(8, country="BA", kind="cso", topics=["youth"])

        pages = list(directory.pages("BA", "cso", ["youth"]))

        assert [len(page) for page in pages] == [3, 3, 2]
        assert flatten(pages) == sorted(matching)

    def test_a_full_last_page_yields_no_empty_page_after_it(
        self, directory: RegistryDirectory, add: AddOrganisations
    ) -> None:
        matching = add(6)

        pages = list(directory.pages("BA", "cso", ["youth"]))

        assert [len(page) for page in pages] == [3, 3]
        assert flatten(pages) == sorted(matching)

    def test_yields_recipients_with_name_email_and_language(
        self, directory: RegistryDirectory, add: AddOrganisations
    ) -> None:
        [org_id] = add(name="Udruženje Žena", email="zene@example.org", language="hr")

        [[recipient]] = list(directory.pages("BA", "cso", []))

        assert recipient == Recipient(
            organisation_id=org_id, name="Udruženje Žena", email="zene@example.org", language="hr"
        )

    def test_asks_only_for_the_country_kind_topics_and_consenting_organisations(
        self, directory: RegistryDirectory, add: AddOrganisations
    ) -> None:
        matching = add(2, topics=["youth"]) + add(2, topics=["environment", "advocacy"])
        add(2, country="RS", language="sr")
        add(2, kind="media")
        add(2, topics=["migration"])
        add(2, mailing_consent=False)

        pages = list(directory.pages("BA", "cso", ["youth", "environment"]))

        assert flatten(pages) == sorted(matching)

    def test_no_topics_means_every_consenting_organisation_of_the_kind(
        self, directory: RegistryDirectory, add: AddOrganisations
    ) -> None:
        matching = add(2, kind="media", topics=[]) + add(2, kind="media", topics=["youth"])
        add(1, kind="media", mailing_consent=False)
        add(1, kind="cso")

        assert flatten(list(directory.pages("BA", "media", []))) == sorted(matching)

    def test_no_match_yields_no_pages(self, directory: RegistryDirectory) -> None:
        assert list(directory.pages("TR", "media", [])) == []


class TestRegistryUnavailable:
    def test_a_registry_that_is_down_raises_audience_unavailable(self, unused_url: str) -> None:
        directory = RegistryDirectory(unused_url, "test-admin-key", timeout=(2.0, 5.0))

        with pytest.raises(AudienceUnavailable, match="unreachable"):
            list(directory.pages("BA", "cso", []))

    def test_a_wrong_api_key_raises_audience_unavailable_mentioning_401(
        self, registry_url: str
    ) -> None:
        directory = RegistryDirectory(registry_url, "not-the-key", timeout=(2.0, 5.0))

        with pytest.raises(AudienceUnavailable, match="401"):
            list(directory.pages("BA", "cso", []))
