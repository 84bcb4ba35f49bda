"""The client against the real processes: credentials, paging, errors, the BA scenario, the demo.

The stack is shared by the tests of this folder: each registers its own organisations (its own
tag in their names and emails) and counts what existed before it where that matters.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from requests.auth import AuthBase

from support.smtp import RecordingSMTPServer
from support.stack import ADMIN_KEY, Stack
from support.waiting import wait_until
from tacso_client import (
    ApiError,
    ApiKey,
    ClientCredentials,
    Conflict,
    NotFound,
    PasswordGrant,
    TacsoClient,
    Unauthorized,
    ValidationFailed,
)
from tacso_client.types import Delivery, Organisation, OrganisationCreate
from tacso_devtools.stack import run_demo

#: The ``client_of`` fixture (conftest.py): a client of the stack with a given credential.
ClientOf = Callable[[AuthBase | None], TacsoClient]


def _org(tag: str, kind: str, country: str, topics: list[str]) -> OrganisationCreate:
    return {
        "name": f"{tag} {uuid.uuid4().hex[:6]}",
        "kind": kind,
        "country": country,
        "email": f"{tag}-{uuid.uuid4().hex[:10]}@example.org",
        "language": "en",
        "topics": topics,
    }


def _register(
    tacso: TacsoClient, n: int, tag: str, kind: str, country: str, topics: list[str]
) -> list[Organisation]:
    return [tacso.registry.create_organisation(_org(tag, kind, country, topics)) for _ in range(n)]


def _requests_made(tacso: TacsoClient) -> list[str]:
    """Record the URL of every response the client receives from now on."""
    urls: list[str] = []

    def record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        urls.append(response.url)

    tacso.http.hooks["response"].append(record)
    return urls


class TestCredentials:
    def test_the_admin_key_is_a_network_admin(self, tacso: TacsoClient) -> None:
        assert tacso.registry.me()["role"] == "network_admin"

    def test_client_credentials_fetch_one_token_and_reuse_it(
        self, client_of: ClientOf, stack: Stack, tacso: TacsoClient
    ) -> None:
        key = tacso.registry.create_api_key("client test", "network_admin")
        auth = ClientCredentials(stack.url("registry", ""), key["id"], key["secret"])

        with client_of(auth) as client:
            me = client.registry.me()
            deliveries = list(client.notify.deliveries(event_id="none"))

        assert me["subject"] == f"api-key:{key['id']}"
        assert me["via"] == "token"
        assert deliveries == []
        assert auth.fetched == 1, "one token for the three services"

    def test_a_token_near_its_expiry_is_renewed_before_it_is_used(
        self, client_of: ClientOf, stack: Stack, tacso: TacsoClient
    ) -> None:
        key = tacso.registry.create_api_key("client renewal", "network_admin")
        now = [0.0]
        auth = ClientCredentials(
            stack.url("registry", ""), key["id"], key["secret"], clock=lambda: now[0]
        )
        with client_of(auth) as client:
            first = auth.token()
            client.registry.me()
            now[0] = 900 - 61  # a 15-minute token with a minute and a second left: kept
            assert auth.token() == first and auth.fetched == 1
            now[0] = 900 - 59  # under a minute left: renewed before the request
            client.registry.me()

        assert auth.fetched == 2

    def test_a_rejected_token_is_fetched_again_once(
        self, client_of: ClientOf, stack: Stack, tacso: TacsoClient
    ) -> None:
        key = tacso.registry.create_api_key("client rejected", "network_admin")
        auth = ClientCredentials(stack.url("registry", ""), key["id"], key["secret"])
        with client_of(auth) as client:
            auth.token()
            auth._token = "not-a-token"  # what a token signed with a retired key looks like

            assert client.registry.me()["subject"] == f"api-key:{key['id']}"

        assert auth.fetched == 2

    def test_a_person_signs_in_with_the_password_grant(
        self, client_of: ClientOf, stack: Stack, tacso: TacsoClient
    ) -> None:
        email = f"editor-{uuid.uuid4().hex[:8]}@example.org"
        rc = next(tacso.registry.organisations(country="BA", kind="resource_centre"))
        invited = tacso.registry.invite_user(email, "An Editor", "country_editor", rc["id"])
        with client_of(None) as anonymous:
            anonymous.registry.set_password(invited["invitation_token"], "correct horse 42 staple")

        auth = PasswordGrant(stack.url("registry", ""), email, "correct horse 42 staple")
        with client_of(auth) as client:
            me = client.registry.me()

        assert me["role"] == "country_editor"
        assert me["countries"] == ["BA"]

    def test_a_wrong_secret_is_unauthorized_with_the_oauth_reason(
        self, client_of: ClientOf, stack: Stack, tacso: TacsoClient
    ) -> None:
        key = tacso.registry.create_api_key("client wrong", "network_admin")
        auth = ClientCredentials(stack.url("registry", ""), key["id"], "wrong")

        with client_of(auth) as client, pytest.raises(Unauthorized) as raised:
            client.registry.me()

        assert raised.value.status == 401
        assert raised.value.errors == {"oauth": {"invalid_client": [raised.value.message]}}

    def test_public_operations_need_no_credential(self, client_of: ClientOf, stack: Stack) -> None:
        with client_of(None) as client:
            topics = client.registry.topics()
            keys = client.registry.jwks()["keys"]
            with pytest.raises(Unauthorized):
                client.registry.me()

        assert {"slug": "human-rights", "label": "Human rights"} in topics
        assert keys and all(k["kty"] for k in keys)


class TestPaging:
    def test_organisations_are_iterated_across_keyset_pages(self, tacso: TacsoClient) -> None:
        tag = f"page-{uuid.uuid4().hex[:6]}"
        ours = _register(tacso, 7, tag, "cso", "XK", [])
        urls = _requests_made(tacso)

        listed = list(tacso.registry.organisations(country="XK", kind="cso", page_size=3))

        assert {o["id"] for o in ours} <= {o["id"] for o in listed}
        assert len(listed) == len({o["id"] for o in listed}), "an organisation listed twice"
        assert len(urls) == len(listed) // 3 + 1
        assert all("after=" in url for url in urls[1:]), urls

    def test_events_are_iterated_across_numbered_pages(self, tacso: TacsoClient) -> None:
        office = next(tacso.registry.organisations(country="XK", kind="tacso_office"))
        created = [
            tacso.events.create_event(
                {
                    "title": f"Paging workshop {n}",
                    "type": "workshop",
                    "country": "XK",
                    "topics": ["environment"],
                    "starts_at": "2026-12-20T09:00:00+00:00",
                    "ends_at": "2026-12-20T12:00:00+00:00",
                    "online_url": "https://meet.example.org/paging",
                    "organiser_id": office["id"],
                }
            )
            for n in range(5)
        ]
        urls = _requests_made(tacso)

        listed = list(tacso.events.events(country="XK", topic="environment", page_size=2))

        assert {e["id"] for e in created} <= {e["id"] for e in listed}
        assert len(urls) == (len(listed) + 1) // 2
        assert "page=3" in urls[2]


class TestErrors:
    def test_a_bad_field_is_validation_failed_naming_the_field(self, tacso: TacsoClient) -> None:
        body = _org("bad", "cso", "BA", ["human-rights"])
        body["email"] = "not an address"

        with pytest.raises(ValidationFailed) as raised:
            tacso.registry.create_organisation(body)

        error = raised.value
        assert error.status == 422
        assert "email" in error.errors["json"]
        assert any("email" in m.lower() for m in error.field_errors()["email"])

    def test_an_email_registered_twice_is_a_conflict(self, tacso: TacsoClient) -> None:
        body = _org("twice", "cso", "BA", [])
        tacso.registry.create_organisation(body)

        with pytest.raises(Conflict) as raised:
            tacso.registry.create_organisation(body)

        assert raised.value.status == 409

    def test_an_unknown_event_is_not_found(self, tacso: TacsoClient) -> None:
        with pytest.raises(NotFound) as raised:
            tacso.events.event(str(uuid.uuid4()))

        assert raised.value.status == 404
        assert raised.value.message


class TestEventChanges:
    def test_an_event_is_patched_registered_for_and_its_registrations_listed(
        self, tacso: TacsoClient
    ) -> None:
        office = next(tacso.registry.organisations(country="XK", kind="tacso_office"))
        cso = tacso.registry.create_organisation(_org("rsvp", "cso", "XK", []))
        event = tacso.events.create_event(
            {
                "title": "Registration workshop",
                "type": "workshop",
                "country": "XK",
                "topics": ["environment"],
                "starts_at": "2026-12-21T09:00:00+00:00",
                "ends_at": "2026-12-21T12:00:00+00:00",
                "online_url": "https://meet.example.org/rsvp",
                "capacity": 10,
                "organiser_id": office["id"],
            }
        )
        etag = tacso.events.event_etag(event["id"])

        patched = tacso.events.update_event(
            event["id"], {"title": "Renamed workshop", "capacity": 5}, if_match=etag
        )
        with pytest.raises(ApiError) as stale:
            tacso.events.update_event(event["id"], {"title": "Again"}, if_match=etag)
        registration = tacso.events.register(event["id"], cso["id"], seats=2)
        listed = list(tacso.events.registrations(event["id"], page_size=1))
        tacso.events.cancel_registration(event["id"], registration["id"])
        cancelled = list(tacso.events.registrations(event["id"], status="cancelled"))

        assert (patched["title"], patched["capacity"]) == ("Renamed workshop", 5)
        assert patched["revision"] == event["revision"], "no material change"
        assert stale.value.status == 412
        assert (registration["status"], registration["seats"]) == ("confirmed", 2)
        assert [r["id"] for r in listed] == [registration["id"]]
        assert [r["id"] for r in cancelled] == [registration["id"]]

    def test_an_organisation_is_patched_deactivated_and_its_preferences_replaced(
        self, tacso: TacsoClient
    ) -> None:
        org = tacso.registry.create_organisation(_org("prefs", "cso", "XK", ["environment"]))

        patched = tacso.registry.update_organisation(org["id"], {"name": "Renamed CSO"})
        tacso.registry.deactivate_organisation(org["id"])
        tacso.registry.activate_organisation(org["id"])
        wanted = tacso.registry.set_preferences(
            org["id"], {"all": True, "topics_opted_out": ["environment"]}
        )
        read = tacso.registry.preferences(org["id"])

        assert (patched["name"], patched["email"]) == ("Renamed CSO", org["email"])
        assert read == wanted and read["topics_opted_out"] == ["environment"]

    def test_the_calendar_and_the_listing_page_need_no_credential(
        self, client_of: ClientOf
    ) -> None:
        with client_of(None) as client:
            calendar = client.events.calendar(country="XK", topics=["environment"])
            page = client.events.listing_page(country="XK", lang="en")

        assert calendar.startswith("BEGIN:VCALENDAR")
        assert "<html" in page.lower()


def _wait_all_sent(tacso: TacsoClient, event_id: str, expected: int) -> list[Delivery]:
    def all_sent() -> list[Delivery] | None:
        rows = list(tacso.notify.deliveries(event_id=event_id, page_size=4))
        done = len(rows) == expected and all(r["status"] == "sent" for r in rows)
        return rows if done else None

    rows = wait_until(all_sent, timeout=60, message=f"{expected} sent for {event_id}")
    assert rows is not None
    return rows


def test_a_ba_event_reaches_exactly_the_right_csos_and_media_through_the_client(
    tacso: TacsoClient, smtp_server: RecordingSMTPServer
) -> None:
    # Whoever the shared stack already has in BA (another test's organisations) counts too.
    csos_before = list(tacso.registry.organisations(country="BA", kind="cso", topic="human-rights"))
    media_before = list(tacso.registry.organisations(country="BA", kind="media"))
    hr_ba = _register(tacso, 5, "hr-ba", "cso", "BA", ["human-rights"])
    _register(tacso, 3, "se-ba", "cso", "BA", ["social-entrepreneurship"])
    _register(tacso, 3, "hr-rs", "cso", "RS", ["human-rights"])
    media_ba = _register(tacso, 2, "media-ba", "media", "BA", [])
    _register(tacso, 2, "media-rs", "media", "RS", [])
    organiser = next(tacso.registry.organisations(country="BA", kind="resource_centre"))

    event = tacso.events.create_event(
        {
            "title": f"Client workshop {uuid.uuid4().hex[:8]}",
            "type": "workshop",
            "country": "BA",
            "topics": ["human-rights"],
            "starts_at": "2026-12-15T09:00:00+00:00",
            "ends_at": "2026-12-15T15:30:00+00:00",
            "venue": {"name": "Hotel Europe", "city": "Sarajevo"},
            "organiser_id": organiser["id"],
        }
    )

    invited = {o["email"] for o in [*csos_before, *hr_ba] if o["mailing_consent"]}
    noticed = {o["email"] for o in [*media_before, *media_ba] if o["mailing_consent"]}
    rows = _wait_all_sent(tacso, event["id"], len(invited) + len(noticed))
    assert {r["recipient"] for r in rows if r["kind"] == "invitation"} == invited
    assert {r["recipient"] for r in rows if r["kind"] == "press_notice"} == noticed
    assert tacso.events.event(event["id"])["status"] == "published"
    summary = tacso.notify.delivery_summary(event["id"])
    assert summary["counts"]["invitation"]["sent"] == len(invited)
    report = tacso.notify.event_report(event["id"])
    assert report["total"] == len(invited) + len(noticed)
    assert tacso.notify.event_report_csv(event["id"]).startswith("kind,")
    mail = [m for m in smtp_server.messages if m.header("X-TACSO-Event-Id") == event["id"]]
    assert sorted(m.rcpt_tos[0] for m in mail) == sorted(invited | noticed)
    audit = tacso.events.audit(resource_id=event["id"])
    assert any(entry["action"].startswith("event.") for entry in audit)


def test_the_demo_runs_through_the_client(
    client_of: ClientOf, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    with client_of(ApiKey(ADMIN_KEY)) as client:
        run_demo(client, timeout=60)

    out = capsys.readouterr().out
    assert "Published 'Human rights and civic space workshop" in out
    invited = out.split("Invited:")[1].split("Press notice:")[0]
    assert "sarajevo-human-rights-forum-" in invited and "mostar-youth-initiative-" in invited
    assert "belgrade" not in invited and "tuzla" not in invited
    assert "radio-sarajevo-demo-" in out.split("Press notice:")[1]
