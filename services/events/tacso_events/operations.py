"""What the events service does, as plain functions over a database session (no Flask, no kombu)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tacso_events.models import DRAFT, PUBLISHED, Event, EventTopic, outbox
from tacso_events.registry_client import Organisation, RegistryClient
from tacso_shared import outbox as outbox_ops
from tacso_shared.contracts import EventPublished, EventText, Venue, envelope_of
from tacso_shared.vocabulary import ORGANISER_KINDS

SOURCE = "/tacso/events"


class InvalidOrganiser(Exception):
    """The organiser may not organise this event; ``reason`` says why, for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EventNotFound(Exception):
    """No event has this id."""


class AlreadyPublished(Exception):
    """The event is published already (or was, and is cancelled now)."""


@dataclass(frozen=True)
class EventFilter:
    """Which published events a list returns."""

    country: str | None = None
    topics: tuple[str, ...] = ()
    type: str | None = None
    ends_from: datetime | None = None
    starts_before: datetime | None = None


@dataclass(frozen=True)
class EventQuery:
    """A client's question to the public list: which events, which page."""

    filter: EventFilter
    page: int = 1
    page_size: int = 20


@dataclass(frozen=True)
class EventPage:
    """One page of a filtered list of events."""

    items: list[Event]
    page: int
    page_size: int
    total: int


def event_url(public_base_url: str, event_id: str) -> str:
    """The event's public HTML page: where people read it (``EventPublished.url``)."""
    return f"{public_base_url.rstrip('/')}/events/{event_id}"


def api_url(public_base_url: str, event_id: str) -> str:
    """Where the event can be read through the public JSON API (the API's ``url`` field)."""
    return f"{public_base_url.rstrip('/')}/api/v1/events/{event_id}"


@dataclass(frozen=True)
class CreateEvent:
    """A client's request to create an event (validated by ``EventCreateSchema``)."""

    title: str
    type: str
    country: str
    topics: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    organiser_id: str
    status: str = PUBLISHED
    description: str | None = None
    venue: Venue | None = None
    online_url: str | None = None
    capacity: int | None = None
    language: str = "en"
    translations: tuple[EventText, ...] = ()


def check_organiser(organisation: Organisation | None, country: str) -> Organisation:
    """Return ``organisation`` if it may organise an event in ``country``; else raise why not."""
    if organisation is None:
        raise InvalidOrganiser("No such organisation.")
    if organisation.kind not in ORGANISER_KINDS:
        raise InvalidOrganiser("Must be a resource centre or TACSO office.")
    if organisation.country != country:
        raise InvalidOrganiser(f"The organiser belongs to {organisation.country}, not {country}.")
    return organisation


def create_event(
    session: Session,
    command: CreateEvent,
    registry: RegistryClient,
    public_base_url: str,
    correlation_id: str | None = None,
) -> Event:
    """Add an event whose organiser the registry vouches for.

    A published event gets its ``event.published`` message in the same transaction. Raises
    :class:`InvalidOrganiser`, or ``RegistryUnavailable`` when the registry cannot be asked.
    """
    organiser = check_organiser(registry.get_organisation(command.organiser_id), command.country)
    now = datetime.now(UTC)
    venue = command.venue
    event = Event(
        id=str(uuid.uuid4()),
        title=command.title,
        description=command.description,
        type=command.type,
        country=command.country,
        starts_at=command.starts_at.astimezone(UTC),
        ends_at=command.ends_at.astimezone(UTC),
        venue_name=venue.name if venue else None,
        venue_address=venue.address if venue else None,
        venue_city=venue.city if venue else None,
        online_url=command.online_url,
        capacity=command.capacity,
        language=command.language,
        translations={
            text.language: {"title": text.title, "description": text.description}
            for text in command.translations
        }
        or None,
        organiser_id=organiser.id,
        organiser_name=organiser.name,
        organiser_email=organiser.email,
        status=DRAFT,
        revision=0,
        created_at=now,
        updated_at=now,
        published_at=None,
        topic_links=[EventTopic(topic=t) for t in sorted(set(command.topics))],
    )
    session.add(event)
    session.flush()
    if command.status == PUBLISHED:
        _publish(session, event, public_base_url, correlation_id, now)
    return event


def publish_event(
    session: Session,
    event_id: str,
    public_base_url: str,
    correlation_id: str | None = None,
) -> Event:
    """Publish a draft and, in the same transaction, enqueue its ``event.published`` message."""
    event = session.get(Event, event_id, with_for_update=True)
    if event is None:
        raise EventNotFound(event_id)
    if event.status != DRAFT:
        raise AlreadyPublished(event_id)
    _publish(session, event, public_base_url, correlation_id, datetime.now(UTC))
    return event


def _publish(
    session: Session,
    event: Event,
    public_base_url: str,
    correlation_id: str | None,
    now: datetime,
) -> None:
    event.status = PUBLISHED
    event.revision += 1
    event.published_at = now
    event.updated_at = now
    session.flush()
    message = event_published(event, public_base_url)
    outbox_ops.enqueue(session, outbox, envelope_of(message, SOURCE, event.id, correlation_id))


def event_published(event: Event, public_base_url: str) -> EventPublished:
    """The event's ``event.published`` message: the one mapping from the model to the contract."""
    venue = event.venue
    return EventPublished(
        event_id=event.id,
        revision=event.revision,
        title=event.title,
        description=event.description,
        type=event.type,
        country=event.country,
        topics=tuple(event.topics),
        starts_at=event.starts_at,
        ends_at=event.ends_at,
        venue=Venue(**venue) if venue else None,
        online_url=event.online_url,
        capacity=event.capacity,
        organiser_id=event.organiser_id,
        organiser_name=event.organiser_name,
        organiser_email=event.organiser_email,
        url=event_url(public_base_url, event.id),
        language=event.language,
        translations=tuple(
            EventText(language, text["title"], text.get("description"))
            for language, text in sorted((event.translations or {}).items())
        ),
    )


def get_event(session: Session, event_id: str, include_drafts: bool = False) -> Event | None:
    """The event with this id, if any (drafts only with ``include_drafts``)."""
    event = session.get(Event, event_id)
    if event is None or (event.status != PUBLISHED and not include_drafts):
        return None
    return event


def list_events(
    session: Session, flt: EventFilter, page: int = 1, page_size: int = 20
) -> EventPage:
    """Published events matching ``flt``, ordered by start time then id."""
    query = sa.select(Event).where(Event.status == PUBLISHED)
    if flt.country:
        query = query.where(Event.country == flt.country)
    if flt.type:
        query = query.where(Event.type == flt.type)
    if flt.ends_from is not None:
        query = query.where(Event.ends_at >= flt.ends_from)
    if flt.starts_before is not None:
        query = query.where(Event.starts_at < flt.starts_before)
    if flt.topics:
        query = query.where(
            sa.exists().where(EventTopic.event_id == Event.id, EventTopic.topic.in_(flt.topics))
        )
    total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
    query = (
        query.order_by(Event.starts_at, Event.id).limit(page_size).offset((page - 1) * page_size)
    )
    return EventPage(list(session.scalars(query)), page, page_size, total)
