"""The audience preview (``GET /api/v1/events/<id>/audience`` on notify): the three services with
real databases, registry and events served over HTTP, real credentials."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from support.world import ADMIN_KEY_CALLER, World, build_world
from tacso_notify.domain import MessageKind
from tacso_notify.preview import count_kind
from tacso_registry import operations
from tacso_registry.models import Organisation
from tacso_shared.db import transaction
from tacso_shared.identity import COUNTRY_EDITOR

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with build_world(tmp_path) as built:
        yield built


def _add(world: World, **fields: Any) -> str:
    data: dict[str, Any] = {
        "name": f"Preview {uuid.uuid4().hex[:8]}",
        "kind": "cso",
        "country": "BA",
        "email": f"preview-{uuid.uuid4().hex[:10]}@example.org",
        "language": "bs",
        "topics": ["human-rights"],
        "mailing_consent": True,
        **fields,
    }
    with transaction(world.registry.sessions) as session:
        operations.register_organisation(session, data)
    email: str = data["email"]
    return email


def _prefer(world: World, email: str, **preferences: Any) -> None:
    """Set the organisation's mailing preferences through registry's API, as its editor would."""
    with world.registry.sessions() as session:
        organisation_id = session.scalar(
            sa.select(Organisation.id).where(Organisation.email == email)
        )
    response = world.clients["registry"].put(
        f"/api/v1/organisations/{organisation_id}/preferences",
        json={"all": True, **preferences},
        headers=world.headers(ADMIN_KEY_CALLER),
    )
    assert response.status_code == 200, response.get_data(as_text=True)


def _audience(world: World, event_id: str, caller: str = ADMIN_KEY_CALLER) -> Any:
    return world.clients["notify"].get(
        f"/api/v1/events/{event_id}/audience", headers=world.headers(caller)
    )


class TestAudiencePreview:
    def test_a_draft_counts_recipients_by_language_and_topic_and_exclusions_by_reason(
        self, world: World
    ) -> None:
        draft = world.draft("BA", world.orgs["ba_rc"])
        before = _audience(world, draft).get_json()
        _add(world, language="bs")
        _add(world, language="hr", topics=["human-rights", "youth"])
        _add(world, language="bs", mailing_consent=False)
        suppressed = _add(world, language="sr")
        world.notify.ledger.suppress([(suppressed, "bounced")])
        _add(world, topics=["youth"])  # not on the event's topics: not in the audience at all
        _add(world, country="RS")  # another country
        _add(world, kind="media", topics=[], language="sq")

        response = _audience(world, draft)

        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        assert body["status"] == "draft"
        assert body["country"] == "BA"
        invitation, was = body["invitation"], before["invitation"]
        assert invitation["recipients"] == was["recipients"] + 2
        assert invitation["by_language"].get("bs", 0) == was["by_language"].get("bs", 0) + 1
        assert invitation["by_language"].get("hr", 0) == was["by_language"].get("hr", 0) + 1
        assert invitation["by_topic"]["human-rights"] == was["by_topic"].get("human-rights", 0) + 2
        assert invitation["excluded"] == {
            "no_consent": was["excluded"]["no_consent"] + 1,
            "opted_out": was["excluded"]["opted_out"],
            "suppressed": was["excluded"]["suppressed"] + 1,
        }
        assert invitation["excluded_total"] == was["excluded_total"] + 2
        press = body["press_notice"]
        assert press["organisation_kind"] == "media"
        assert press["recipients"] == before["press_notice"]["recipients"] + 1
        assert press["by_language"]["sq"] == before["press_notice"]["by_language"].get("sq", 0) + 1

    def test_opt_outs_of_everything_of_the_kind_or_of_the_events_topics_are_counted(
        self, world: World
    ) -> None:
        draft = world.draft("BA", world.orgs["ba_rc"])
        before = _audience(world, draft).get_json()
        _prefer(world, _add(world), all=False)
        _prefer(world, _add(world), topics_opted_out=["human-rights"])
        _prefer(world, _add(world), kinds={"invitation": False})
        # Opted out of one of its topics, not the event's: still invited.
        _prefer(world, _add(world, topics=["human-rights", "youth"]), topics_opted_out=["youth"])
        # Opted out of press notices only: still invited.
        _prefer(world, _add(world, language="hr"), kinds={"press_notice": False})
        # Opted out and suppressed: counted once, under the first reason.
        suppressed = _add(world)
        _prefer(world, suppressed, all=False)
        world.notify.ledger.suppress([(suppressed, "bounced")])
        # Without consent and opted out: no consent comes first.
        _prefer(world, _add(world, mailing_consent=False), all=False)
        # A media outlet that wants no mail about the event's topic gets no press notice.
        _prefer(world, _add(world, kind="media", topics=[]), topics_opted_out=["human-rights"])
        # Not in the event's country: not in the audience, opted out or not.
        _prefer(world, _add(world, country="RS"), all=False)

        response = _audience(world, draft)

        assert response.status_code == 200, response.get_data(as_text=True)
        invitation, was = response.get_json()["invitation"], before["invitation"]
        assert invitation["excluded"] == {
            "no_consent": was["excluded"]["no_consent"] + 1,
            "opted_out": was["excluded"]["opted_out"] + 4,
            "suppressed": was["excluded"]["suppressed"],
        }
        assert invitation["recipients"] == was["recipients"] + 2
        assert invitation["by_language"].get("hr", 0) == was["by_language"].get("hr", 0) + 1
        press, was_press = response.get_json()["press_notice"], before["press_notice"]
        assert press["excluded"]["opted_out"] == was_press["excluded"]["opted_out"] + 1
        assert press["recipients"] == was_press["recipients"]

    def test_the_preview_agrees_with_registrys_audience_query(self, world: World) -> None:
        draft = world.draft("BA", world.orgs["ba_rc"])
        _prefer(world, _add(world), all=False)
        _prefer(world, _add(world), topics_opted_out=["human-rights"])
        _add(world)

        invitation = _audience(world, draft).get_json()["invitation"]
        asked = world.clients["registry"].get(
            "/api/v1/organisations",
            query_string={
                "country": "BA",
                "kind": "cso",
                "topic": "human-rights",
                "mail_kind": "invitation",
                "event_topic": "human-rights",
            },
            headers=world.headers(ADMIN_KEY_CALLER),
        )

        assert asked.status_code == 200
        assert (
            invitation["recipients"] + invitation["excluded"]["suppressed"]
            == (asked.get_json()["total"])
        )

    def test_a_published_event_is_previewed_too(self, world: World) -> None:
        response = world.clients["events"].post(
            "/api/v1/events",
            json={
                "title": "Published",
                "type": "workshop",
                "country": "BA",
                "topics": ["human-rights"],
                "starts_at": "2026-12-15T09:00:00+00:00",
                "ends_at": "2026-12-15T15:00:00+00:00",
                "online_url": "https://meet.example.org/x",
                "organiser_id": world.orgs["ba_rc"].id,
            },
            headers=world.headers(ADMIN_KEY_CALLER),
        )
        assert response.status_code == 201

        preview = _audience(world, response.get_json()["id"], COUNTRY_EDITOR)

        assert preview.status_code == 200
        assert preview.get_json()["status"] == "published"

    def test_another_countrys_draft_is_a_404_for_an_editor(self, world: World) -> None:
        draft = world.draft("RS", world.orgs["rs_rc"])

        assert _audience(world, draft, COUNTRY_EDITOR).status_code == 404
        assert _audience(world, draft).status_code == 200

    def test_an_unknown_event_is_a_404(self, world: World) -> None:
        assert _audience(world, str(uuid.uuid4())).status_code == 404

    def test_registry_down_is_a_503_not_a_500(self, world: World) -> None:
        draft = world.draft("BA", world.orgs["ba_rc"])
        world.stop_registry()

        response = _audience(world, draft)

        assert response.status_code == 503
        assert "registry" in response.get_json()["message"]


class TestCounting:
    def test_each_excluded_organisation_counts_once_under_its_first_reason(self) -> None:
        audience = [
            {"email": "a@x.org", "language": "bs", "topics": ["youth"], "mailing_consent": False},
            {"email": "b@x.org", "language": "bs", "topics": ["youth"], "mailing_consent": True},
        ]

        preview = count_kind(MessageKind.INVITATION, ["youth"], audience, {"a@x.org", "b@x.org"}, 3)

        assert preview.recipients == 0
        assert preview.excluded == {"no_consent": 1, "opted_out": 3, "suppressed": 1}

    def test_outside_registrys_audience_is_opted_out_and_inactive_is_counted_nowhere(
        self,
    ) -> None:
        def org(key: str, **fields: Any) -> dict[str, Any]:
            return {
                "id": key,
                "email": f"{key}@x.org",
                "language": "bs",
                "topics": ["youth"],
                "mailing_consent": True,
                "active": True,
                **fields,
            }

        audience = [
            org("wanted"),
            org("out"),
            org("out-and-suppressed"),
            org("no-consent", mailing_consent=False),
            org("inactive", active=False),
            org("erased", erased=True, mailing_consent=False),
        ]

        preview = count_kind(
            MessageKind.INVITATION,
            ["youth"],
            audience,
            {"out-and-suppressed@x.org"},
            wanted={"wanted"},
        )

        assert preview.recipients == 1
        assert preview.excluded == {"no_consent": 1, "opted_out": 2, "suppressed": 0}
