"""An event's life after it was created: edits (JSON merge patch) and cancellation.

Plain functions over a database session (no Flask, no kombu), like :mod:`tacso_events.operations`.

The rule for edits: a change to a *material* field (:data:`MATERIAL_FIELDS`: starts_at, ends_at,
venue, online_url) of a published event bumps its ``revision`` and writes ``event.updated`` to
the outbox in the same transaction; any other change (title, description, topics, type,
capacity, translations) bumps nothing and publishes nothing. A draft changes freely and silently.
A cancellation bumps the revision and writes ``event.cancelled``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError
from sqlalchemy.orm import Session

from tacso_events.models import CANCELLED, DRAFT, PUBLISHED, Event, EventTopic, outbox
from tacso_events.operations import SOURCE, CreateEvent, EventNotFound, event_published
from tacso_events.registrations import (
    Policy,
    check_capacity_change,
    close_event_registrations,
    promote,
    reschedule_event_jobs,
)
from tacso_events.schemas import EventCreateSchema
from tacso_shared import outbox as outbox_ops
from tacso_shared.contracts import (
    MATERIAL_FIELDS,
    EventCancelled,
    EventUpdated,
    Venue,
    envelope_of,
)

#: The create request's fields that a merge patch may change (``status`` changes only through
#: publish and cancel; ``country`` and ``organiser_id`` may be sent, but only unchanged).
PATCHABLE_FIELDS = (
    "title",
    "description",
    "type",
    "country",
    "topics",
    "starts_at",
    "ends_at",
    "venue",
    "online_url",
    "capacity",
    "organiser_id",
    "language",
    "translations",
)
MAX_REASON_LENGTH = 500


class InvalidChange(Exception):
    """The edit is refused; ``errors`` maps each field to its reasons (a 422)."""

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(str(errors))
        self.errors = errors


class EventIsCancelled(Exception):
    """The event is cancelled: it can be neither edited nor cancelled again."""


class DraftNotCancellable(Exception):
    """A draft was never published: nobody was told about it, so there is nothing to cancel."""


class PreconditionFailed(Exception):
    """The client's ``If-Match`` does not name the event's current version."""


@dataclass(frozen=True)
class Edit:
    """What an edit did: the event as it is now and the material fields that changed."""

    event: Event
    #: Material fields whose value changed (empty: nothing to tell anyone).
    material: tuple[str, ...]
    #: True when the revision grew and ``event.updated`` was written to the outbox.
    published_update: bool
    #: The event before the edit, as a create request says it (for the audit log).
    before: dict[str, Any]


def event_etag(event: Event) -> str:
    """The event's entity tag: it changes with every write (material or not).

    Built from the revision and ``updated_at``, so a client that read the event can make its
    edit conditional on nobody having changed it since (``If-Match``).
    """
    stamp = event.updated_at.astimezone(UTC).isoformat()
    digest = hashlib.sha256(f"{event.id}|{event.revision}|{stamp}".encode()).hexdigest()
    return f"r{event.revision}-{digest[:16]}"


def create_document(event: Event) -> dict[str, Any]:
    """The event as a create request would have said it: what a merge patch applies to."""
    return {
        "title": event.title,
        "description": event.description,
        "type": event.type,
        "country": event.country,
        "topics": list(event.topics),
        "starts_at": event.starts_at.astimezone(UTC).isoformat(),
        "ends_at": event.ends_at.astimezone(UTC).isoformat(),
        "venue": event.venue,
        "online_url": event.online_url,
        "capacity": event.capacity,
        "organiser_id": event.organiser_id,
        "language": event.language,
        "translations": event.translations or {},
        # Validated as on create: a draft stays a draft, a published event stays published.
        "status": DRAFT if event.status == DRAFT else PUBLISHED,
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: ``patch`` applied to ``target`` (neither is modified)."""
    if not isinstance(patch, dict):
        return patch
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _check_if_match(event: Event, if_match: Collection[str] | None) -> None:
    """Raise unless ``if_match`` (strong tags of ``If-Match``; ``None``: any) names the event."""
    if if_match is not None and event_etag(event) not in if_match:
        raise PreconditionFailed(event.id)


def _locked(session: Session, event_id: str) -> Event:
    # populate_existing: an instance this session read before the lock must not keep stale values.
    event = session.get(Event, event_id, with_for_update=True, populate_existing=True)
    if event is None:
        raise EventNotFound(event_id)
    return event


def _venue_of(event: Event) -> Venue | None:
    venue = event.venue
    return Venue(**venue) if venue else None


def _material_changes(event: Event, command: CreateEvent) -> tuple[str, ...]:
    new: dict[str, Any] = {
        "starts_at": command.starts_at.astimezone(UTC),
        "ends_at": command.ends_at.astimezone(UTC),
        "venue": command.venue,
        "online_url": command.online_url,
    }
    old: dict[str, Any] = {
        "starts_at": event.starts_at.astimezone(UTC),
        "ends_at": event.ends_at.astimezone(UTC),
        "venue": _venue_of(event),
        "online_url": event.online_url,
    }
    return tuple(name for name in MATERIAL_FIELDS if new[name] != old[name])


def validate_edit(event: Event, patch: Mapping[str, Any], now: datetime) -> CreateEvent:
    """The event's new state after ``patch``, validated as a create request; else raise why not.

    Raises :class:`InvalidChange` for unknown fields, for a change of country or organiser, for
    whatever a create request would be refused for (ends before it starts, a topic we do not
    have...), and for moving a published event into the past.
    """
    unknown = sorted(set(patch) - set(PATCHABLE_FIELDS))
    if unknown:
        raise InvalidChange(
            {
                name: [
                    "Cannot be changed: use POST /api/v1/events/{event_id}/publish or /cancel."
                    if name == "status"
                    else "Unknown field."
                ]
                for name in unknown
            }
        )
    merged = merge_patch(create_document(event), dict(patch))
    try:
        command: CreateEvent = EventCreateSchema().load(merged)
    except ValidationError as exc:
        raise InvalidChange(dict(exc.messages_dict)) from None
    errors: dict[str, list[str]] = {}
    if command.country != event.country:
        errors["country"] = [
            f"An event does not change country ({event.country}); cancel it and create "
            "a new one in the other country."
        ]
    if command.organiser_id != event.organiser_id:
        errors["organiser_id"] = ["An event does not change its organiser."]
    moved = (
        command.starts_at.astimezone(UTC) != event.starts_at
        or command.ends_at.astimezone(UTC) != event.ends_at
    )
    if event.status == PUBLISHED and moved and command.starts_at <= now:
        errors["starts_at"] = ["A published event cannot be moved to a time that has passed."]
    if errors:
        raise InvalidChange(errors)
    return command


def edit_event(
    session: Session,
    event_id: str,
    patch: Mapping[str, Any],
    public_base_url: str,
    correlation_id: str | None = None,
    *,
    if_match: Collection[str] | None = None,
    now: datetime | None = None,
    policy: Policy | None = None,
) -> Edit:
    """Apply a JSON merge patch to an event; a material change of a published one is announced.

    Raises :class:`EventNotFound`, :class:`EventIsCancelled`, :class:`PreconditionFailed`,
    :class:`InvalidChange` or :class:`~tacso_events.registrations.CapacityBelowTaken`. A raised
    capacity offers the new seats to the waitlist; a move reschedules reminders and offers.
    """
    now = now or datetime.now(UTC)
    policy = policy or Policy(public_base_url)
    event = _locked(session, event_id)
    if event.status == CANCELLED:
        raise EventIsCancelled(event_id)
    _check_if_match(event, if_match)
    before = create_document(event)
    command = validate_edit(event, patch, now)
    material = _material_changes(event, command)
    capacity_changed = command.capacity != event.capacity
    if capacity_changed:
        check_capacity_change(session, event, command.capacity)
    previous_starts_at, previous_ends_at = event.starts_at, event.ends_at
    previous_venue, previous_online_url = _venue_of(event), event.online_url
    _apply(event, command)
    event.updated_at = now
    announce = event.status == PUBLISHED and bool(material)
    if announce:
        event.revision += 1
    session.flush()
    if announce:
        message = EventUpdated(
            event=event_published(event, public_base_url),
            changed=material,
            previous_starts_at=previous_starts_at,
            previous_ends_at=previous_ends_at,
            previous_venue=previous_venue,
            previous_online_url=previous_online_url,
        )
        outbox_ops.enqueue(session, outbox, envelope_of(message, SOURCE, event.id, correlation_id))
    if event.status == PUBLISHED and material:
        # Reminders follow the new start; open offers end before it.
        reschedule_event_jobs(session, event, policy, now)
    if capacity_changed and event.status == PUBLISHED:
        # New seats go to the waitlist (in the order it was made).
        promote(session, event, policy, now, correlation_id)
    return Edit(event, material, announce, before)


def _apply(event: Event, command: CreateEvent) -> None:
    venue = command.venue
    event.title = command.title
    event.description = command.description
    event.type = command.type
    event.starts_at = command.starts_at.astimezone(UTC)
    event.ends_at = command.ends_at.astimezone(UTC)
    event.venue_name = venue.name if venue else None
    event.venue_address = venue.address if venue else None
    event.venue_city = venue.city if venue else None
    event.online_url = command.online_url
    event.capacity = command.capacity
    event.language = command.language
    event.translations = {
        text.language: {"title": text.title, "description": text.description}
        for text in command.translations
    } or None
    wanted = set(command.topics)
    # Keep the rows of topics that stay: deleting and re-adding the same key in one flush
    # would collide on the primary key.
    event.topic_links = [link for link in event.topic_links if link.topic in wanted] + [
        EventTopic(topic=topic) for topic in sorted(wanted - set(event.topics))
    ]


def cancel_event(
    session: Session,
    event_id: str,
    reason: str,
    public_base_url: str,
    correlation_id: str | None = None,
    *,
    if_match: Collection[str] | None = None,
    now: datetime | None = None,
    policy: Policy | None = None,
) -> Event:
    """Cancel a published event and, in the same transaction, write ``event.cancelled``.

    Raises :class:`EventNotFound`, :class:`DraftNotCancellable`, :class:`EventIsCancelled` or
    :class:`PreconditionFailed`. Open waitlist offers are voided and every scheduled job of the
    event (offer expiries, reminders) is dropped in the same transaction.
    """
    now = now or datetime.now(UTC)
    policy = policy or Policy(public_base_url)
    event = _locked(session, event_id)
    if event.status == DRAFT:
        raise DraftNotCancellable(event_id)
    if event.status == CANCELLED:
        raise EventIsCancelled(event_id)
    _check_if_match(event, if_match)
    event.status = CANCELLED
    event.cancel_reason = reason
    event.cancelled_at = now
    event.revision += 1
    event.updated_at = now
    session.flush()
    message = EventCancelled(
        event=event_published(event, public_base_url), reason=reason, cancelled_at=now
    )
    outbox_ops.enqueue(session, outbox, envelope_of(message, SOURCE, event.id, correlation_id))
    close_event_registrations(session, event, policy, now, correlation_id)
    return event
