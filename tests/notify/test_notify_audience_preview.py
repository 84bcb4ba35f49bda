"""The audience preview (``GET /api/v1/events/<id>/audience`` on notify): the three services with
real databases, registry and events served over HTTP, real credentials."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.world import ADMIN_KEY_CALLER, World, build_world
from tacso_notify.domain import MessageKind
from tacso_notify.preview import count_kind
from tacso_registry import operations
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
            "opted_out": 0,
            "suppressed": was["excluded"]["suppressed"] + 1,
        }
        assert invitation["excluded_total"] == was["excluded_total"] + 2
        press = body["press_notice"]
        assert press["organisation_kind"] == "media"
        assert press["recipients"] == before["press_notice"]["recipients"] + 1
        assert press["by_language"]["sq"] == before["press_notice"]["by_language"].get("sq", 0) + 1

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
