"""Rendering of update notices, cancellation notices and reminders, in every language (no I/O)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy

import icalendar
import pytest

from support.messages import event_published
from tacso_notify.domain import Recipient, Sender
from tacso_notify.i18n import LOCALES
from tacso_notify.rendering import describe_changes, ical_uid, prepare_notice
from tacso_notify.unsubscribe import UnsubscribeLinks
from tacso_shared.contracts import EventCancelled, EventPublished, EventUpdated, ReminderDue
from tacso_shared.links import LinkSigner

CYRILLIC = re.compile("[\u0400-\u04ff]")
START = datetime(2026, 12, 15, 9, 0, tzinfo=UTC)
SENDER = Sender("events@tacso.example")
#: English words of the new templates that must not reach a reader of another language.
ENGLISH = ("has changed", "has cancelled", "What changes", "Reason:", "reminder of the event")


def event(revision: int = 1) -> EventPublished:
    return event_published(
        event_id="ev-notice",
        revision=revision,
        title="Human rights in practice",
        type="workshop",
        country="BA",
        topics=(),
        starts_at=START,
        ends_at=START + timedelta(hours=6),
        venue={"name": "Hotel Europe", "city": "Sarajevo"},
        online_url="https://meet.example/ev",
        organiser_id="rc",
        organiser_name="VESTA",
        url="https://events.tacso.example/events/ev-notice",
    )


def update() -> EventUpdated:
    old = event()
    return EventUpdated(
        event=replace(old, revision=2, starts_at=START + timedelta(days=1), online_url=None),
        changed=("starts_at", "online_url"),
        previous_starts_at=old.starts_at,
        previous_ends_at=old.ends_at,
        previous_venue=old.venue,
        previous_online_url=old.online_url,
    )


def notices() -> list[EventUpdated | EventCancelled | ReminderDue]:
    return [
        update(),
        EventCancelled(event=event(3), reason="Illness.", cancelled_at=START),
        ReminderDue("reg", "org", "1d", START - timedelta(days=1), event(), seats=2),
    ]


def rendered(notice: object, language: str, press: bool = False) -> EmailMessage:
    assert isinstance(notice, EventUpdated | EventCancelled | ReminderDue)
    prepared = prepare_notice(notice, SENDER, language=language, press=press)
    raw = prepared.for_recipient(Recipient("org", "Org", "org@example.org", language))
    message = BytesParser(policy=default_policy).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


@pytest.mark.parametrize("language", sorted(set(LOCALES) - {"en"}))
@pytest.mark.parametrize("press", [False, True])
def test_every_notice_reads_in_the_readers_language(language: str, press: bool) -> None:
    for notice in notices():
        message = rendered(notice, language, press)
        text = text_of(message)
        for words in ENGLISH:
            assert words not in text, (language, type(notice).__name__, words)
        if language in ("sr", "mk"):
            assert CYRILLIC.search(str(message["Subject"])), message["Subject"]
        elif language in ("sr_Latn", "cnr", "bs", "hr", "sq", "tr"):
            assert not CYRILLIC.search(text)


def test_an_update_carries_a_request_with_the_invitations_uid_and_a_higher_sequence() -> None:
    calendar = calendar_of(rendered(update(), "en"))
    assert calendar["METHOD"] == "REQUEST"
    vevent = calendar.walk("VEVENT")[0]
    assert str(vevent["UID"]) == ical_uid("ev-notice", "tacso.local")
    assert int(str(vevent["SEQUENCE"])) == 1
    assert vevent.decoded("DTSTART") == START + timedelta(days=1)


def test_a_cancellation_carries_a_cancel() -> None:
    calendar = calendar_of(rendered(notices()[1], "en"))
    vevent = calendar.walk("VEVENT")[0]
    assert calendar["METHOD"] == "CANCEL"
    assert (str(vevent["STATUS"]), int(str(vevent["SEQUENCE"]))) == ("CANCELLED", 2)


def test_media_and_reminders_get_no_calendar() -> None:
    assert find_calendar(rendered(update(), "en", press=True)) is None
    assert find_calendar(rendered(notices()[2], "en")) is None


def test_a_time_change_on_the_same_day_gives_both_times() -> None:
    old = event()
    moved = EventUpdated(
        event=replace(old, revision=2, starts_at=START + timedelta(hours=1)),
        changed=("starts_at",),
        previous_starts_at=old.starts_at,
        previous_ends_at=old.ends_at,
    )
    [line] = describe_changes(moved, "en")
    assert line.startswith("The event moves from Tuesday, December 15, 2026, 10:00")
    assert "11:00" in line and "same time" not in line


def test_the_online_link_sentences() -> None:
    assert describe_changes(update(), "en")[1] == "The event no longer has an online link."


def find_calendar(message: EmailMessage) -> str | None:
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            return str(part.get_content())
    return None


def calendar_of(message: EmailMessage) -> icalendar.Calendar:
    text = find_calendar(message)
    assert text is not None
    return icalendar.Calendar.from_ical(text)


@pytest.mark.parametrize("press", [False, True])
def test_every_notice_ends_with_its_recipients_preferences_link(press: bool) -> None:
    links = UnsubscribeLinks(LinkSigner(("k" * 32,)), "https://registry.tacso.example")
    for notice in notices():
        prepared = prepare_notice(notice, SENDER, language="bs", press=press, unsubscribe=links)
        raw = prepared.for_recipient(Recipient("org-7", "Org", "org@example.org", "bs"))
        message = BytesParser(policy=default_policy).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        header = re.fullmatch(r"<(.+)/unsubscribe/(.+)>", str(message["List-Unsubscribe"]))
        assert header is not None, type(notice).__name__
        preferences = f"{header[1]}/preferences/{header[2]}"
        html = message.get_body(("html",))
        assert html is not None
        assert preferences in text_of(message), type(notice).__name__
        assert "Odaberite šta primate ili se odjavite:" in text_of(message)
        assert f'<a href="{preferences}">' in str(html.get_content()), type(notice).__name__
