"""The public calendar feed (iCalendar) and the HTML listing of events: what they show.

Both show the same events: published ones that have not ended, and those cancelled in the last
:data:`RECENTLY_CANCELLED` (so a subscribed calendar learns of the cancellation). Plain functions
over a session, no Flask.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import jinja2
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tacso_events.models import CANCELLED, DRAFT, PUBLISHED, Event, EventTopic
from tacso_shared.calendar import ical_uid
from tacso_shared.i18n import (
    LOCALES,
    N_,
    Catalog,
    country_name,
    format_when,
    language_name,
    language_of,
)
from tacso_shared.vocabulary import COUNTRIES, EVENT_TYPES, TOPICS

#: How long a cancelled event stays in the feed and the listing, marked cancelled.
RECENTLY_CANCELLED = timedelta(days=30)
#: The most events one feed or page shows (the soonest first).
MAX_EVENTS = 500
PRODID = "-//TACSO//Events feed//EN"
PACKAGE = Path(__file__).parent
TRANSLATIONS = PACKAGE / "translations"
TEMPLATES = PACKAGE / "templates" / "listing"


@dataclass(frozen=True)
class FeedFilter:
    """Which events a feed or listing shows (every field optional)."""

    country: str | None = None
    topics: tuple[str, ...] = ()
    type: str | None = None


@dataclass(frozen=True)
class Feed:
    """The events of a feed, and when its content last changed (``None``: never had any)."""

    events: list[Event]
    last_modified: datetime | None


def event_page_url(public_base_url: str, event_id: str) -> str:
    """The event's public page (HTML)."""
    return f"{public_base_url.rstrip('/')}/events/{event_id}"


def feed(session: Session, flt: FeedFilter, now: datetime | None = None) -> Feed:
    """The events ``flt`` selects, soonest first, and when that selection last changed.

    ``last_modified`` is the latest of: any write to a non-draft event of the country (a topic
    or type change can move an event out of a filtered feed, so it is not filtered by those),
    the end of the last event that left the feed by ending, and the moment the last cancelled
    one left it. It is never earlier than the real last change, so a conditional GET never
    keeps a stale copy.
    """
    now = now or datetime.now(UTC)
    horizon = now - RECENTLY_CANCELLED
    query = sa.select(Event).where(
        sa.or_(
            sa.and_(Event.status == PUBLISHED, Event.ends_at >= now),
            sa.and_(Event.status == CANCELLED, Event.cancelled_at >= horizon),
        )
    )
    if flt.country:
        query = query.where(Event.country == flt.country)
    if flt.type:
        query = query.where(Event.type == flt.type)
    if flt.topics:
        query = query.where(
            sa.exists().where(EventTopic.event_id == Event.id, EventTopic.topic.in_(flt.topics))
        )
    query = query.order_by(Event.starts_at, Event.id).limit(MAX_EVENTS)
    events = list(session.scalars(query))

    in_country = (Event.country == flt.country) if flt.country else sa.true()
    written, ended, cancelled = session.execute(
        sa.select(
            sa.func.max(Event.updated_at).filter(Event.status != DRAFT),
            sa.func.max(Event.ends_at).filter(Event.status == PUBLISHED, Event.ends_at < now),
            sa.func.max(Event.cancelled_at).filter(
                Event.status == CANCELLED, Event.cancelled_at < horizon
            ),
        ).where(in_country)
    ).one()
    gone = _utc(cancelled)
    moments = [_utc(written), _utc(ended), gone + RECENTLY_CANCELLED if gone else None]
    found = [moment for moment in moments if moment is not None]
    return Feed(events, max(found) if found else None)


def _utc(moment: datetime | str | None) -> datetime | None:
    # Aggregates skip the column type: SQLite returns a string, PostgreSQL an aware datetime.
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _location(event: Event) -> str | None:
    venue = event.venue
    if venue is not None:
        return ", ".join(part for part in (venue["name"], venue["address"], venue["city"]) if part)
    return event.online_url


def calendar_name(flt: FeedFilter) -> str:
    """The feed's name as calendars show it: ``TACSO events: Bosnia and Herzegovina, Workshop``."""
    parts = [COUNTRIES[flt.country].name] if flt.country else []
    parts += [TOPICS[topic] for topic in flt.topics]
    if flt.type:
        parts.append(EVENT_TYPES[flt.type])
    return "TACSO events" + (f": {', '.join(parts)}" if parts else "")


def build_feed(events: list[Event], flt: FeedFilter, domain: str, public_base_url: str) -> bytes:
    """The iCalendar ``METHOD:PUBLISH`` feed of ``events``.

    Each event has the UID of the invitations notify mails (``event-<id>@<domain>``) and their
    SEQUENCE (revision - 1), so a calendar that has both shows one event, at its newest
    revision. Times are in UTC; nothing in it depends on the moment it is built (DTSTAMP is
    the event's last change), so the same data gives the same bytes and the same ETag.
    """
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    name = calendar_name(flt)
    calendar.add("x-wr-calname", name)
    calendar.add("x-wr-caldesc", f"{name} (published by the TACSO Resource Centres)")
    # How often subscribers should look again (Apple, Outlook; Google decides for itself).
    calendar.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT1H")
    for event in events:
        calendar.add_component(_vevent(event, domain, public_base_url))
    result: bytes = calendar.to_ical()
    return result


def _vevent(event: Event, domain: str, public_base_url: str) -> icalendar.Event:
    url = event_page_url(public_base_url, event.id)
    vevent = icalendar.Event()
    vevent.add("uid", ical_uid(event.id, domain))
    # SEQUENCE starts at 0 while revisions start at 1, as in notify's invitations.
    vevent.add("sequence", max(event.revision - 1, 0))
    vevent.add("dtstamp", event.updated_at.astimezone(UTC).replace(microsecond=0))
    vevent.add("created", event.created_at.astimezone(UTC).replace(microsecond=0))
    vevent.add("last-modified", event.updated_at.astimezone(UTC).replace(microsecond=0))
    vevent.add("dtstart", event.starts_at.astimezone(UTC))
    vevent.add("dtend", event.ends_at.astimezone(UTC))
    vevent.add("summary", event.title)
    text = [event.description or ""]
    if event.status == CANCELLED:
        text.insert(0, f"Cancelled: {event.cancel_reason}")
    text.append(url)
    vevent.add("description", "\n\n".join(part for part in text if part))
    location = _location(event)
    if location:
        vevent.add("location", location)
    vevent.add("url", url)
    vevent.add("categories", [EVENT_TYPES[event.type], *(TOPICS[t] for t in event.topics)])
    vevent.add("status", "CANCELLED" if event.status == CANCELLED else "CONFIRMED")
    vevent.add("transp", "OPAQUE")
    return vevent


# ---- the HTML listing ----------------------------------------------------------------------


@functools.cache
def catalog() -> Catalog:
    """The events service's translations (one per process)."""
    return Catalog(TRANSLATIONS)


@functools.cache
def _loader() -> jinja2.FileSystemLoader:
    return jinja2.FileSystemLoader(str(TEMPLATES))


def _environment(language: str) -> jinja2.Environment:
    return catalog().environment(_loader(), language)


@dataclass(frozen=True)
class Row:
    """One event as the listing shows it, in the reader's language."""

    id: str
    title: str
    title_language: str
    when: str
    where: str | None
    type: str
    topics: list[str]
    country: str
    cancelled: bool
    cancel_reason: str | None
    url: str


def _row(event: Event, language: str, public_base_url: str) -> Row:
    gettext = catalog().translations(language).gettext
    translated = (event.translations or {}).get(language)
    return Row(
        id=event.id,
        title=translated["title"] if translated else event.title,
        title_language=language if translated else event.language,
        when=format_when(
            event.starts_at, event.ends_at, COUNTRIES[event.country].timezone, language
        ),
        where=_location(event),
        type=gettext(EVENT_TYPES[event.type]),
        topics=[gettext(TOPICS[topic]) for topic in event.topics],
        country=country_name(event.country, language),
        cancelled=event.status == CANCELLED,
        cancel_reason=event.cancel_reason,
        url=f"/events/{event.id}",
    )


def render_listing(
    events: list[Event],
    flt: FeedFilter,
    language: str,
    public_base_url: str,
    query: str = "",
) -> str:
    """The listing page in ``language``: a filter form (GET, no script) and the events."""
    language = language_of(language)
    gettext = catalog().translations(language).gettext
    page: str = (
        _environment(language)
        .get_template("events.html")
        .render(
            rows=[_row(event, language, public_base_url) for event in events],
            filter=flt,
            countries=_options({c: country_name(c, language) for c in COUNTRIES}),
            topics=_options({t: gettext(label) for t, label in TOPICS.items()}),
            types=_options({t: gettext(label) for t, label in EVENT_TYPES.items()}),
            languages=[(code, language_name(code, code)) for code in LOCALES],
            feed_url=f"/api/v1/events.ics{query}",
            max_events=MAX_EVENTS,
        )
    )
    return page


def render_error(language: str, errors: dict[str, Any]) -> str:
    """The friendly page for a listing asked with filters we do not have."""
    language = language_of(language)
    gettext = catalog().translations(language).gettext
    fields = [gettext(FILTER_NAMES.get(name, name)) for name in sorted(errors)]
    page: str = _environment(language).get_template("error.html").render(fields=fields)
    return page


#: The filters' names as the form labels them (for the error page).
FILTER_NAMES = {"country": N_("Country"), "topic": N_("Topics"), "type": N_("Type")}


def _options(labels: dict[str, str]) -> list[tuple[str, str]]:
    return sorted(labels.items(), key=lambda item: item[1])
