"""The public calendar feed and HTML listing: what they show, two parsers, caching and 304s.

Runs on SQLite and on PostgreSQL (the feed's Last-Modified comes from aggregates, which the two
databases return differently).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
import vobject
from babel.dates import format_date
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.pofile import read_po
from flask.testing import FlaskClient

import tacso_shared.i18n
from support.infra import postgres_databases
from tacso_events import feeds
from tacso_events.app import create_app
from tacso_events.bootstrap import Events, apply_migrations, bootstrap, load_settings
from tacso_events.models import Event
from tacso_shared.calendar import ical_uid, uid_domain, uid_domain_from_env
from tacso_shared.db import transaction
from tacso_shared.i18n import CATALOGS, LOCALES

ADMIN = {"Authorization": "Bearer test-admin-key"}
PUBLIC_BASE_URL = "https://events.tacso.example.org"
DOMAIN = "tacso.example.org"
PLACEHOLDER = re.compile(r"%\(\w+\)s")

Create = Callable[..., dict[str, Any]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def events(request: pytest.FixtureRequest, tmp_path: Path, fake_registry: Any) -> Iterator[Events]:
    """The events service (UID domain from MAIL_FROM) on SQLite or a fresh PostgreSQL database."""

    def wire(url: str) -> Iterator[Events]:
        settings = load_settings(
            {
                "VAR_DIR": str(tmp_path),
                "EVENTS_DATABASE_URL": url,
                "ADMIN_API_KEY": "test-admin-key",
                "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
                "MAIL_FROM": f"events@{DOMAIN}",
                "LISTING_CACHE_SECONDS": "0",
            }
        )
        apply_migrations(settings.common)
        wired = bootstrap(settings, registry=fake_registry)
        try:
            yield wired
        finally:
            wired.engine.dispose()

    if request.param == "sqlite":
        yield from wire(f"sqlite:///{tmp_path / 'events.sqlite3'}")
    else:
        with postgres_databases("events") as urls:
            yield from wire(urls["events"])


@pytest.fixture
def client(events: Events) -> FlaskClient:
    return create_app(events).test_client()


def future(days: int, hour: int = 9) -> str:
    moment = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return (moment + timedelta(days=days)).isoformat()


@pytest.fixture
def world(create_event: Create, client: FlaskClient) -> dict[str, dict[str, Any]]:
    """A BA workshop (moved once: revision 2), a BA conference, a past BA event, a draft, an
    RS training and a cancelled BA workshop."""
    workshop = create_event(
        title="Human rights workshop",
        type="workshop",
        topics=["human-rights"],
        starts_at=future(10),
        ends_at=future(10, 15),
        translations={"bs": {"title": "Radionica o ljudskim pravima"}},
    )
    moved = client.patch(
        f"/api/v1/events/{workshop['id']}",
        json={"starts_at": future(11), "ends_at": future(11, 15)},
        headers=ADMIN,
    )
    assert moved.status_code == 200
    conference = create_event(
        title="Youth conference",
        type="conference",
        topics=["youth"],
        starts_at=future(20),
        ends_at=future(21),
        venue=None,
        online_url="https://meet.example.org/youth",
    )
    past = create_event(title="Past event", starts_at=future(-5), ends_at=future(-5, 12))
    draft = create_event(title="Draft", status="draft", starts_at=future(5), ends_at=future(5, 12))
    training = create_event(
        title="Serbian training",
        type="training",
        topics=["advocacy"],
        country="RS",
        organiser_id="6b1d3a52-2f0e-4c55-9d3a-0d3c7f1f0a02",
        starts_at=future(12),
        ends_at=future(12, 12),
    )
    cancelled = create_event(
        title="Cancelled workshop",
        type="workshop",
        topics=["advocacy"],
        starts_at=future(15),
        ends_at=future(15, 12),
    )
    response = client.post(
        f"/api/v1/events/{cancelled['id']}/cancel",
        json={"reason": "The trainer is ill."},
        headers=ADMIN,
    )
    assert response.status_code == 200
    return {
        "workshop": moved.get_json(),
        "conference": conference,
        "past": past,
        "draft": draft,
        "training": training,
        "cancelled": response.get_json(),
    }


def parse(body: bytes) -> dict[str, Any]:
    """The feed's VEVENTs by UID (icalendar's value types are too wide to be of use here)."""
    calendar: Any = icalendar.Calendar.from_ical(body)
    return {str(component["UID"]): component for component in calendar.walk("VEVENT")}


class TestUid:
    def test_the_uid_domain_is_mail_froms_as_notify_computes_it(self) -> None:
        assert uid_domain("events@tacso.example.org") == "tacso.example.org"
        assert uid_domain("no-at-sign") == "no-at-sign"
        assert uid_domain("") == "tacso.local"
        assert uid_domain_from_env({}) == "tacso.local"
        assert uid_domain_from_env({"MAIL_FROM": "x@y.example"}) == "y.example"
        assert ical_uid("ev-1", "y.example") == "event-ev-1@y.example"

    def test_notify_uses_the_same_uid(self) -> None:
        from tacso_notify import rendering

        assert rendering.ical_uid is ical_uid


class TestFeed:
    def test_the_feed_is_a_valid_publish_calendar(
        self, client: FlaskClient, world: dict[str, dict[str, Any]]
    ) -> None:
        response = client.get("/api/v1/events.ics")

        assert response.status_code == 200
        assert response.mimetype == "text/calendar"
        calendar: Any = icalendar.Calendar.from_ical(response.data)
        assert calendar["VERSION"] == "2.0"
        assert calendar["METHOD"] == "PUBLISH"
        assert calendar["CALSCALE"] == "GREGORIAN"
        assert str(calendar["PRODID"]).startswith("-//TACSO//")
        assert calendar["X-WR-CALNAME"] == "TACSO events"
        assert b"\r\n" in response.data

    def test_it_shows_upcoming_published_and_recently_cancelled_events(
        self, client: FlaskClient, world: dict[str, dict[str, Any]]
    ) -> None:
        found = parse(client.get("/api/v1/events.ics").data)

        expected = {"workshop", "conference", "training", "cancelled"}
        assert set(found) == {ical_uid(world[name]["id"], DOMAIN) for name in expected}

    def test_uid_sequence_times_url_and_location(
        self, client: FlaskClient, world: dict[str, dict[str, Any]]
    ) -> None:
        workshop = world["workshop"]
        found = parse(client.get("/api/v1/events.ics?country=BA").data)

        event = found[f"event-{workshop['id']}@{DOMAIN}"]
        assert int(event["SEQUENCE"]) == workshop["revision"] - 1 == 1
        assert event["DTSTART"].dt == datetime.fromisoformat(workshop["starts_at"])
        assert event["DTSTART"].dt.tzinfo is not None
        assert event["DTSTART"].dt.utcoffset() == timedelta(0)
        assert event["DTEND"].dt == datetime.fromisoformat(workshop["ends_at"])
        assert str(event["URL"]) == f"{PUBLIC_BASE_URL}/events/{workshop['id']}"
        assert str(event["LOCATION"]) == "Hotel Europe, Vladislava Skarića 5, Sarajevo"
        assert str(event["SUMMARY"]) == "Human rights workshop"
        assert str(event["STATUS"]) == "CONFIRMED"
        online = found[f"event-{world['conference']['id']}@{DOMAIN}"]
        assert str(online["LOCATION"]) == "https://meet.example.org/youth"
        assert int(online["SEQUENCE"]) == 0

    def test_a_cancelled_event_is_marked_and_its_sequence_grew(
        self, client: FlaskClient, world: dict[str, dict[str, Any]]
    ) -> None:
        cancelled = world["cancelled"]
        event = parse(client.get("/api/v1/events.ics").data)[ical_uid(cancelled["id"], DOMAIN)]

        assert str(event["STATUS"]) == "CANCELLED"
        assert int(event["SEQUENCE"]) == 1
        assert "The trainer is ill." in str(event["DESCRIPTION"])

    def test_a_second_parser_reads_the_same_events(
        self, client: FlaskClient, world: dict[str, dict[str, Any]]
    ) -> None:
        body = client.get("/api/v1/events.ics?country=BA").data.decode()

        calendar = vobject.readOne(body)
        events = {e.uid.value: e for e in calendar.vevent_list}
        assert calendar.method.value == "PUBLISH"
        workshop = events[ical_uid(world["workshop"]["id"], DOMAIN)]
        assert int(workshop.sequence.value) == 1
        assert workshop.dtstart.value == datetime.fromisoformat(world["workshop"]["starts_at"])
        assert workshop.url.value == f"{PUBLIC_BASE_URL}/events/{world['workshop']['id']}"
        cancelled = events[ical_uid(world["cancelled"]["id"], DOMAIN)]
        assert cancelled.status.value == "CANCELLED"
        assert len(events) == 3

    @pytest.mark.parametrize(
        ("query", "names"),
        [
            ("country=BA", {"workshop", "conference", "cancelled"}),
            ("country=RS", {"training"}),
            ("topic=youth", {"conference"}),
            ("topic=youth&topic=human-rights", {"workshop", "conference"}),
            ("type=workshop&country=BA", {"workshop", "cancelled"}),
            ("country=AL", set()),
        ],
    )
    def test_filters(
        self,
        client: FlaskClient,
        world: dict[str, dict[str, Any]],
        query: str,
        names: set[str],
    ) -> None:
        found = parse(client.get(f"/api/v1/events.ics?{query}").data)

        assert set(found) == {ical_uid(world[name]["id"], DOMAIN) for name in names}

    def test_the_calendar_is_named_after_its_filters(self, client: FlaskClient) -> None:
        body = client.get("/api/v1/events.ics?country=BA&type=workshop").data
        calendar: Any = icalendar.Calendar.from_ical(body)

        assert calendar["X-WR-CALNAME"] == "TACSO events: Bosnia and Herzegovina, Workshop"

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ("country=XX", "country"),
            ("topic=cooking", "topic"),
            ("type=party", "type"),
            ("country=ba", "country"),
        ],
    )
    def test_a_bad_filter_is_a_422(self, client: FlaskClient, query: str, field: str) -> None:
        response = client.get(f"/api/v1/events.ics?{query}")

        assert response.status_code == 422
        assert field in response.get_json()["errors"]["query"]

    def test_an_event_cancelled_long_ago_is_gone(
        self, client: FlaskClient, events: Events, world: dict[str, dict[str, Any]]
    ) -> None:
        with transaction(events.sessions) as session:
            event = session.get(Event, world["cancelled"]["id"])
            assert event is not None
            event.cancelled_at = datetime.now(UTC) - timedelta(days=31)

        found = parse(client.get("/api/v1/events.ics").data)

        assert ical_uid(world["cancelled"]["id"], DOMAIN) not in found


class TestConditionalGet:
    @pytest.mark.parametrize("path", ["/api/v1/events.ics?country=BA", "/events?country=BA"])
    def test_etag_round_trip(
        self, client: FlaskClient, world: dict[str, dict[str, Any]], path: str
    ) -> None:
        first = client.get(path)
        etag = first.headers["ETag"]

        again = client.get(path, headers={"If-None-Match": etag})
        other = client.get(path, headers={"If-None-Match": '"something-else"'})

        assert first.status_code == 200
        assert first.headers["Cache-Control"] == "public, max-age=60"
        assert again.status_code == 304
        assert again.data == b""
        assert again.headers["ETag"] == etag
        assert other.status_code == 200

    @pytest.mark.parametrize("path", ["/api/v1/events.ics?country=BA", "/events?country=BA"])
    def test_last_modified_round_trip(
        self, client: FlaskClient, world: dict[str, dict[str, Any]], path: str
    ) -> None:
        first = client.get(path)
        last_modified = first.headers["Last-Modified"]
        stamp = parsedate_to_datetime(last_modified)

        same = client.get(path, headers={"If-Modified-Since": last_modified})
        older = client.get(
            path, headers={"If-Modified-Since": format_datetime(stamp - timedelta(hours=1), True)}
        )

        assert abs(stamp - datetime.now(UTC)) < timedelta(minutes=1)
        assert same.status_code == 304
        assert older.status_code == 200

    def test_a_change_changes_the_etag_and_last_modified(
        self, client: FlaskClient, world: dict[str, dict[str, Any]]
    ) -> None:
        path = "/api/v1/events.ics?country=BA"
        first = client.get(path)

        client.patch(
            f"/api/v1/events/{world['conference']['id']}",
            json={"title": "Youth conference 2030"},
            headers=ADMIN,
        )
        second = client.get(path, headers={"If-None-Match": first.headers["ETag"]})

        assert second.status_code == 200
        assert second.headers["ETag"] != first.headers["ETag"]
        assert b"Youth conference 2030" in second.data

    def test_an_event_leaving_a_type_filter_moves_last_modified(
        self, client: FlaskClient, events: Events, world: dict[str, dict[str, Any]]
    ) -> None:
        with events.sessions() as session:
            before = feeds.feed(session, feeds.FeedFilter(type="conference")).last_modified

        client.patch(
            f"/api/v1/events/{world['conference']['id']}",
            json={"type": "expo"},
            headers=ADMIN,
        )
        with events.sessions() as session:
            after = feeds.feed(session, feeds.FeedFilter(type="conference"))

        assert after.events == []
        assert before is not None and after.last_modified is not None
        assert after.last_modified > before

    def test_an_empty_database_has_no_last_modified(self, client: FlaskClient) -> None:
        response = client.get("/api/v1/events.ics")

        assert response.status_code == 200
        assert "Last-Modified" not in response.headers
        assert (
            client.get(
                "/api/v1/events.ics", headers={"If-None-Match": response.headers["ETag"]}
            ).status_code
            == 304
        )


class TestListing:
    def test_the_bosnian_page_has_bosnian_labels_and_a_babel_date(
        self, client: FlaskClient, world: dict[str, dict[str, Any]]
    ) -> None:
        response = client.get("/events?country=BA&lang=bs")

        assert response.status_code == 200
        assert response.mimetype == "text/html"
        assert response.headers["Content-Language"] == "bs"
        page = response.get_data(as_text=True)
        assert '<html lang="bs">' in page
        for label in ("Događaji mreže TACSO", "Filtriraj događaje", "Sve države", "Teme"):
            assert label in page
        assert "Radionica" in page, "the event type, translated"
        assert "Ljudska prava" in page, "the topic, translated"
        assert "Bosna i Hercegovina" in page, "the country, from CLDR"
        assert "Radionica o ljudskim pravima" in page, "the event's own Bosnian title"
        starts = datetime.fromisoformat(world["workshop"]["starts_at"])
        day = format_date(starts.astimezone(ZoneInfo("Europe/Sarajevo")), "full", locale="bs")
        assert re.search(r"\d{4}\.$", day), day
        assert day in page
        assert "Centralnoevropsko" in page, "the time zone named as people say it"
        assert "Otkazano" in page and "The trainer is ill." in page
        assert f'href="/events/{world["workshop"]["id"]}"' in page
        assert "Past event" not in page and "Draft" not in page

    def test_accept_language_chooses_when_lang_is_absent(
        self, client: FlaskClient, world: dict[str, dict[str, Any]]
    ) -> None:
        response = client.get("/events", headers={"Accept-Language": "sr-Latn-RS, en;q=0.5"})

        assert response.headers["Content-Language"] == "sr-Latn"
        assert "Događaji mreže TACSO" in response.get_data(as_text=True)
        assert "Accept-Language" in response.headers["Vary"]

    def test_the_form_works_without_script_and_empty_choices_mean_any(
        self, client: FlaskClient, world: dict[str, dict[str, Any]]
    ) -> None:
        response = client.get("/events?country=&type=&topic=&lang=en")

        page = response.get_data(as_text=True)
        assert response.status_code == 200
        assert '<form method="get" action="/events"' in page
        assert "<script" not in page
        assert "script-src" not in response.headers["Content-Security-Policy"]
        assert '<label for="country">' in page and '<select id="country" name="country">' in page
        assert "Serbian training" in page

    def test_a_bad_filter_is_a_friendly_400_page(self, client: FlaskClient) -> None:
        response = client.get("/events?country=XX&lang=bs")

        page = response.get_data(as_text=True)
        assert response.status_code == 400
        assert response.mimetype == "text/html"
        assert "Ovi filteri nisu ispravni" in page
        assert "Država" in page
        assert 'href="/events?lang=bs"' in page

    def test_the_page_links_the_feed_with_the_same_filters(
        self, client: FlaskClient, world: dict[str, dict[str, Any]]
    ) -> None:
        page = client.get("/events?country=BA&topic=youth&lang=en").get_data(as_text=True)

        assert 'href="/api/v1/events.ics?country=BA&amp;topic=youth"' in page


def extracted_messages() -> set[str]:
    """Every message the events templates and code mark for translation."""
    package = Path(feeds.__file__).parent
    method_map = [("**/templates/**", "jinja2"), ("**.py", "python")]
    options = {"**/templates/**": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true"}}
    found = extract_from_dir(str(package), method_map, options, keywords={"_": None, "N_": None})
    shared = extract_from_file("python", tacso_shared.i18n.__file__, keywords={"N_": None})
    messages = [message for _, _, message, _, _ in found] + [m for _, m, _, _ in shared]
    return {message for message in messages if isinstance(message, str)}


@pytest.mark.parametrize("language", sorted(set(LOCALES) - {"en"}))
def test_the_events_catalog_translates_every_message(language: str) -> None:
    path = feeds.TRANSLATIONS / CATALOGS[language] / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as po:
        catalog = read_po(po)
    wanted = extracted_messages()
    assert "Events of the TACSO network" in wanted
    missing = sorted(
        m for m in wanted if m not in catalog or not catalog[m].string or catalog[m].fuzzy
    )
    assert not missing, f"{path} misses {missing} (run make i18n-update and translate)"
    for message in wanted:
        translated = str(catalog[message].string)
        assert sorted(PLACEHOLDER.findall(translated)) == sorted(PLACEHOLDER.findall(message))
