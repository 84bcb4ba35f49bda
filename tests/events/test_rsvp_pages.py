"""The public event page and the RSVP page: languages, states, forms, and friendly refusals."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.pofile import read_po
from flask.testing import FlaskClient

import tacso_shared.i18n
from tacso_events.bootstrap import Events
from tacso_events.pages import TRANSLATIONS
from tacso_shared.db import transaction
from tacso_shared.i18n import CATALOGS, LOCALES
from tacso_shared.links import LinkSigner, LinkToken

PLACEHOLDER = re.compile(r"%\(\w+\)s")
SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=20)
ORG = "org-zdravo"
Create = Callable[..., dict[str, Any]]


def future(**overrides: Any) -> dict[str, Any]:
    when = {
        "starts_at": SOON.isoformat(),
        "ends_at": (SOON + timedelta(hours=6)).isoformat(),
        "capacity": 2,
        "translations": {
            "bs": {"title": "Ljudska prava u praksi", "description": "Radionica na bosanskom."}
        },
    }
    return {**when, **overrides}


def link(events: Events, event_id: str, **changes: Any) -> str:
    token = LinkToken(
        purpose=changes.pop("purpose", "rsvp"),
        organisation_id=changes.pop("organisation_id", ORG),
        event_id=event_id,
        expires_at=changes.pop("expires_at", SOON + timedelta(hours=6)),
        language=changes.pop("language", "bs"),
    )
    keys = changes.pop("keys", events.settings.common.link_signing_keys)
    return f"/rsvp/{LinkSigner(keys).sign(token)}"


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


class TestEventPage:
    def test_a_bosnian_reader_gets_bosnian_words_and_a_babel_date(
        self, client: FlaskClient, create_event: Create
    ) -> None:
        event = create_event(**future())
        page = client.get(f"/events/{event['id']}", headers={"Accept-Language": "bs,en;q=0.5"})
        assert page.status_code == 200
        assert page.mimetype == "text/html"
        body = text(page)
        assert '<html lang="bs">' in body
        assert "Ljudska prava u praksi" in body and "Radionica na bosanskom." in body
        assert "Organizator" in body and "Slobodnih mjesta: 2" in body
        assert "Ljudska prava" in body, "topics in Bosnian"
        weekday = ("ponedjeljak", "utorak", "srijeda", "četvrtak", "petak", "subota", "nedjelja")
        assert any(day in body for day in weekday)
        assert "Centralnoevropsko" in body, "the time zone named for people"
        assert "openstreetmap.org/search?query=" in body
        assert "/api/v1" not in body, "a page for people links no JSON"
        assert "<script" not in body

    def test_lang_wins_over_the_browser_and_the_switcher_lists_every_language(
        self, client: FlaskClient, create_event: Create
    ) -> None:
        event = create_event(**future())
        body = text(client.get(f"/events/{event['id']}?lang=mk", headers={"Accept-Language": "bs"}))
        assert "Организатор" in body
        for code in LOCALES:
            assert f'href="?lang={code}"' in body

    def test_the_page_has_a_strict_csp_with_a_nonce_and_landmarks(
        self, client: FlaskClient, create_event: Create
    ) -> None:
        page = client.get(f"/events/{create_event(**future())['id']}")
        csp = page.headers["Content-Security-Policy"]
        nonce = re.search(r"'nonce-([^']+)'", csp)
        assert nonce and f'nonce="{nonce.group(1)}"' in text(page)
        assert "default-src 'none'" in csp and "unsafe-inline" not in csp
        assert page.headers["X-Frame-Options"] == "DENY"
        for landmark in ("<header>", "<main", "<footer>", "<nav aria-label="):
            assert landmark in text(page)

    def test_a_cancelled_event_shows_a_banner(
        self, client: FlaskClient, create_event: Create, events: Events
    ) -> None:
        event = create_event(**future())
        _set_status(events, event["id"], "cancelled")
        body = text(client.get(f"/events/{event['id']}?lang=en"))
        assert "This event has been cancelled." in body

    @pytest.mark.parametrize("path", ["/events/no-such-event", "/events/%s"])
    def test_an_unknown_or_draft_event_is_a_friendly_404(
        self, client: FlaskClient, create_event: Create, path: str
    ) -> None:
        draft = create_event(**future(status="draft"))
        page = client.get(
            (path % draft["id"]) if "%s" in path else path, query_string={"lang": "hr"}
        )
        assert page.status_code == 404
        assert "Događaj nije pronađen" in text(page) and "Traceback" not in text(page)


class TestRsvpPage:
    def test_the_link_s_language_shows_the_forms_and_a_get_changes_nothing(
        self, client: FlaskClient, create_event: Create, events: Events
    ) -> None:
        event = create_event(**future())
        url = link(events, event["id"])
        page = client.get(url + "?answer=decline")
        body = text(page)
        assert page.status_code == 200
        assert "Još niste odgovorili." in body
        assert 'value="decline" checked' in body
        assert "Prisustvovat ću" in body and "Ne mogu prisustvovati" in body
        assert page.headers["Cache-Control"] == "no-store"
        assert _registrations(client, event["id"]) == []

    def test_a_link_without_a_language_reads_the_browser_s(
        self, client: FlaskClient, create_event: Create, events: Events
    ) -> None:
        url = link(events, create_event(**future())["id"], language=None)
        body = text(client.get(url, headers={"Accept-Language": "sr-Latn-RS,sr;q=0.8"}))
        assert '<html lang="sr-Latn">' in body and "Još niste odgovorili." in body

    def test_attend_then_change_to_decline_then_back(
        self, client: FlaskClient, create_event: Create, events: Events
    ) -> None:
        event = create_event(**future())
        url = link(events, event["id"])
        answered = client.post(url, data={"answer": "attend", "seats": "2"})
        assert answered.status_code == 303
        again = client.post(url, data={"answer": "attend", "seats": "2"})
        assert again.status_code == 303, "idempotent"
        shown = text(client.get(answered.headers["Location"]))
        assert "Hvala: vaš odgovor je sačuvan." in shown
        assert "Vaša prijava je potvrđena. Broj mjesta: 2." in shown
        assert [
            (r["status"], r["seats"], r["sequence"]) for r in _registrations(client, event["id"])
        ] == [("confirmed", 2, 1)]
        client.post(url, data={"answer": "decline"})
        client.post(url, data={"answer": "attend", "seats": "1"})
        assert [(r["status"], r["sequence"]) for r in _registrations(client, event["id"])] == [
            ("confirmed", 3)
        ]

    def test_an_offer_can_be_claimed_from_the_page(
        self, client: FlaskClient, create_event: Create, events: Events
    ) -> None:
        event = create_event(**future(capacity=1))
        first = link(events, event["id"], organisation_id="org-first")
        mine = link(events, event["id"], language="en")
        client.post(first, data={"answer": "attend", "seats": "1"})
        client.post(mine, data={"answer": "attend", "seats": "1"})
        assert "You are on the waitlist, in place 1." in text(client.get(mine))
        client.post(first, data={"answer": "decline"})
        offered = text(client.get(mine))
        assert "A seat has been freed for you." in offered and "Claim my seat" in offered
        assert client.post(mine, data={"answer": "claim"}).status_code == 303
        assert "Your registration is confirmed." in text(client.get(mine))

    def test_an_offer_past_its_window_cannot_be_claimed_from_the_page(
        self, client: FlaskClient, create_event: Create, events: Events
    ) -> None:
        event = create_event(**future(capacity=1))
        first = link(events, event["id"], organisation_id="org-first")
        mine = link(events, event["id"], language="en")
        client.post(first, data={"answer": "attend", "seats": "1"})
        client.post(mine, data={"answer": "attend", "seats": "1"})
        client.post(first, data={"answer": "decline"})
        with transaction(events.sessions) as session:
            session.execute(
                sa.text("UPDATE registrations SET offer_expires_at = :t WHERE status = 'offered'"),
                {"t": datetime.now(UTC) - timedelta(seconds=1)},
            )
        shown = text(client.get(mine))
        assert "The seat offer you had has expired." in shown and "Claim my seat" not in shown
        refused = client.post(mine, data={"answer": "claim"})
        assert refused.status_code == 409
        assert "There is no open seat offer to claim." in text(refused)

    def test_a_tampered_link_is_a_friendly_400(
        self, client: FlaskClient, create_event: Create, events: Events
    ) -> None:
        url = link(events, create_event(**future())["id"])
        page = client.get(url[:-3] + "xyz", headers={"Accept-Language": "sq"})
        assert page.status_code == 400
        assert "Kjo lidhje nuk është e vlefshme" in text(page)

    def test_a_link_signed_with_a_foreign_key_is_a_400(
        self, client: FlaskClient, create_event: Create, events: Events
    ) -> None:
        url = link(events, create_event(**future())["id"], keys=("someone-else's-key",))
        assert client.get(url).status_code == 400
        assert client.post(url, data={"answer": "attend"}).status_code == 400

    def test_a_link_made_for_another_purpose_is_a_400(
        self, client: FlaskClient, create_event: Create, events: Events
    ) -> None:
        url = link(events, create_event(**future())["id"], purpose="unsubscribe")
        assert client.get(url).status_code == 400

    def test_an_expired_link_is_a_410_in_the_link_s_language(
        self, client: FlaskClient, create_event: Create, events: Events
    ) -> None:
        url = link(
            events,
            create_event(**future())["id"],
            expires_at=datetime.now(UTC) - timedelta(minutes=1),
            language="tr",
        )
        page = client.get(url)
        assert page.status_code == 410
        assert "bağlantının süresi doldu" in text(page), "Turkish: the link has expired"

    def test_an_unknown_event_is_a_404_page(self, client: FlaskClient, events: Events) -> None:
        page = client.get(link(events, "no-such-event"))
        assert page.status_code == 404 and "Događaj nije pronađen" in text(page)

    @pytest.mark.parametrize("seats", ["0", "-1", "4", "two", "", "٣", "9" * 5000])
    def test_bad_seats_are_a_400_page_and_change_nothing(
        self, client: FlaskClient, create_event: Create, events: Events, seats: str
    ) -> None:
        event = create_event(**future())
        page = client.post(link(events, event["id"]), data={"answer": "attend", "seats": seats})
        assert page.status_code == 400
        assert "Izaberite između 1 i 3 mjesta." in text(page)
        assert _registrations(client, event["id"]) == []

    def test_a_cross_site_post_is_refused(
        self, client: FlaskClient, create_event: Create, events: Events
    ) -> None:
        event = create_event(**future())
        url = link(events, event["id"], language="en")
        for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}):
            page = client.post(url, data={"answer": "attend", "seats": "1"}, headers=headers)
            assert page.status_code == 403
            assert "sent from another site" in text(page)
        same = client.post(
            url,
            data={"answer": "decline"},
            headers={"Sec-Fetch-Site": "same-origin", "Origin": "https://events.tacso.example.org"},
        )
        assert same.status_code == 303
        # What Chromium sends for the page's own form under Referrer-Policy: no-referrer.
        own = client.post(
            url,
            data={"answer": "decline"},
            headers={"Sec-Fetch-Site": "same-origin", "Origin": "null"},
        )
        assert own.status_code == 303

    def test_a_started_event_takes_no_answers(
        self, client: FlaskClient, create_event: Create, events: Events
    ) -> None:
        started = datetime.now(UTC) - timedelta(hours=1)
        event = create_event(
            starts_at=started.isoformat(), ends_at=(started + timedelta(hours=5)).isoformat()
        )
        url = link(events, event["id"], language="en", expires_at=started + timedelta(hours=5))
        assert "Answers are closed: the event has started." in text(client.get(url))
        page = client.post(url, data={"answer": "attend", "seats": "1"})
        assert page.status_code == 409 and "Answers are closed" in text(page)


class TestCatalogs:
    @pytest.mark.parametrize("language", sorted(set(LOCALES) - {"en"}))
    def test_the_catalog_translates_every_message(self, language: str) -> None:
        path = TRANSLATIONS / CATALOGS[language] / "LC_MESSAGES" / "messages.po"
        with path.open("rb") as po:
            catalog = read_po(po)
        wanted = _extracted()
        assert len(wanted) > 40
        missing = sorted(
            m for m in wanted if m not in catalog or not catalog[m].string or catalog[m].fuzzy
        )
        assert not missing, f"{path} misses {missing} (run make i18n-update and translate)"
        for message in wanted:
            translated = str(catalog[message].string)
            assert sorted(PLACEHOLDER.findall(translated)) == sorted(PLACEHOLDER.findall(message))


def _extracted() -> set[str]:
    method_map = [("**/templates/**", "jinja2"), ("**.py", "python")]
    options = {"**/templates/**": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true"}}
    found = extract_from_dir(
        str(TRANSLATIONS.parent), method_map, options, keywords={"_": None, "N_": None}
    )
    shared = extract_from_file("python", tacso_shared.i18n.__file__, keywords={"N_": None})
    messages = [m for _, _, m, _, _ in found] + [m for _, m, _, _ in shared]
    return {m for m in messages if isinstance(m, str)}


def _registrations(client: FlaskClient, event_id: str) -> list[dict[str, Any]]:
    response = client.get(
        f"/api/v1/events/{event_id}/registrations",
        headers={"Authorization": "Bearer test-admin-key"},
    )
    assert response.status_code == 200, response.get_json()
    items: list[dict[str, Any]] = response.get_json()["items"]
    return items


def _set_status(events: Events, event_id: str, status: str) -> None:
    from tacso_events.models import Event

    with transaction(events.sessions) as session:
        event = session.get(Event, event_id)
        assert event is not None
        event.status = status
