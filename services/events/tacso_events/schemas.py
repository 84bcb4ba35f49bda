"""Request and response schemas of the events API (validation and OpenAPI from one source)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import current_app
from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_dump,
    validate,
    validates,
    validates_schema,
)

from tacso_events.models import CREATABLE_STATUSES, PUBLISHED, Event
from tacso_events.operations import (
    CreateEvent,
    EventFilter,
    EventPage,
    EventQuery,
    api_url,
    event_url,
)
from tacso_events.registrations import Occupancy, occupancies, occupancy
from tacso_shared.contracts import EventText, Venue
from tacso_shared.vocabulary import COUNTRIES, EVENT_TYPES, LANGUAGES, TOPICS
from tacso_shared.web import AsciiInteger

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_PAGE = 1_000_000
MAX_CAPACITY = 1_000_000

_AWARE_MESSAGE = "Must be an ISO 8601 date-time with a UTC offset, e.g. 2026-05-04T09:00:00+02:00."


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


def _no_nul(value: str | None) -> None:
    if value is not None and "\x00" in value:
        raise ValidationError("Must not contain NUL characters.")


def _in_utc_range(value: datetime) -> None:
    # A time near the ends of the calendar cannot be stored once converted to UTC.
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValidationError("Must be a date-time between years 1 and 9999 in UTC.") from None


def _aware(**kwargs: Any) -> fields.AwareDateTime:
    return fields.AwareDateTime(
        validate=_in_utc_range, error_messages={"invalid_awareness": _AWARE_MESSAGE}, **kwargs
    )


class VenueSchema(Schema):
    """Where an event takes place in person."""

    name = fields.String(
        required=True, validate=[validate.Length(min=1, max=200), _not_blank, _no_nul]
    )
    address = fields.String(
        load_default=None, allow_none=True, validate=[validate.Length(max=300), _no_nul]
    )
    city = fields.String(
        required=True, validate=[validate.Length(min=1, max=100), _not_blank, _no_nul]
    )

    @post_load
    def _venue(self, data: dict[str, Any], **_: Any) -> Venue:
        address = data.get("address")
        return Venue(
            name=data["name"].strip(),
            city=data["city"].strip(),
            address=address.strip() or None if address is not None else None,
        )


class EventTextSchema(Schema):
    """An event's title and description in one more language."""

    title = fields.String(required=True, validate=[validate.Length(min=1, max=200), _no_nul])
    description = fields.String(
        load_default=None, allow_none=True, validate=[validate.Length(max=20_000), _no_nul]
    )

    @validates("title")
    def _title_not_blank(self, value: str, **_: Any) -> None:
        _not_blank(value)


class EventCreateSchema(Schema):
    """What a client sends to create an event (published at once unless ``status`` is draft)."""

    title = fields.String(required=True, validate=[validate.Length(min=1, max=200), _no_nul])
    description = fields.String(
        load_default=None, allow_none=True, validate=[validate.Length(max=20_000), _no_nul]
    )
    type = fields.String(required=True, validate=validate.OneOf(list(EVENT_TYPES)))
    country = fields.String(required=True, validate=validate.OneOf(sorted(COUNTRIES)))
    topics = fields.List(
        fields.String(validate=validate.OneOf(sorted(TOPICS))),
        required=True,
        metadata={"description": "Topic slugs (may be empty); duplicates are dropped."},
    )
    starts_at = _aware(required=True)
    ends_at = _aware(required=True)
    venue = fields.Nested(VenueSchema, load_default=None, allow_none=True)
    online_url = fields.Url(
        load_default=None,
        allow_none=True,
        schemes={"http", "https"},
        validate=validate.Length(max=2000),
        metadata={"description": "Where to join online (http or https)."},
    )
    capacity = fields.Integer(
        load_default=None,
        allow_none=True,
        strict=True,
        validate=validate.Range(min=1, max=MAX_CAPACITY),
    )
    organiser_id = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=64),
            validate.Regexp(r"^[A-Za-z0-9_-]+$", error="Not a valid organisation id."),
        ],
        metadata={"description": "A Resource Centre or TACSO office of the event's country."},
    )
    status = fields.String(load_default=PUBLISHED, validate=validate.OneOf(CREATABLE_STATUSES))
    language = fields.String(
        load_default="en",
        validate=validate.OneOf(sorted(LANGUAGES)),
        metadata={"description": "The language title and description are written in."},
    )
    translations = fields.Dict(
        keys=fields.String(validate=validate.OneOf(sorted(LANGUAGES))),
        values=fields.Nested(EventTextSchema),
        load_default=dict,
        metadata={
            "description": "Title and description in other languages, by language code: "
            'e.g. `{"bs": {"title": "Radionica o ljudskim pravima"}}`. A recipient whose '
            "language has a translation reads it; the others read the event as written, "
            "with its language named."
        },
    )

    @validates("title")
    def _title_not_blank(self, value: str, **_: Any) -> None:
        _not_blank(value)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _consistent(self, data: dict[str, Any], original: Any, **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        starts_at, ends_at = data.get("starts_at"), data.get("ends_at")
        if starts_at is not None and ends_at is not None and ends_at <= starts_at:
            errors["ends_at"] = ["Must be after starts_at."]
        # A venue or online_url that was sent but is invalid has its own error already.
        sent = original if isinstance(original, dict) else {}
        if sent.get("venue") is None and sent.get("online_url") is None:
            errors["venue"] = ["A venue or an online_url is required."]
        if errors:
            raise ValidationError(errors)

    @post_load
    def _command(self, data: dict[str, Any], **_: Any) -> CreateEvent:
        description = data.get("description")
        return CreateEvent(
            title=data["title"].strip(),
            description=description.strip() or None if description is not None else None,
            type=data["type"],
            country=data["country"],
            topics=tuple(sorted(set(data["topics"]))),
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            venue=data.get("venue"),
            online_url=data.get("online_url"),
            capacity=data.get("capacity"),
            organiser_id=data["organiser_id"],
            status=data["status"],
            language=data["language"],
            translations=tuple(
                EventText(
                    language,
                    text["title"].strip(),
                    (text.get("description") or "").strip() or None,
                )
                for language, text in sorted(data["translations"].items())
                if language != data["language"]
            ),
        )


class VenueOutSchema(Schema):
    """A venue as the API returns it."""

    name = fields.String(required=True)
    address = fields.String(required=True, allow_none=True)
    city = fields.String(required=True)


def _public_url(event: Event) -> str:
    events = current_app.extensions["tacso_events"]
    return api_url(events.settings.common.public_base_url, event.id)


def _page_url(event: Event) -> str:
    events = current_app.extensions["tacso_events"]
    return event_url(events.settings.common.public_base_url, event.id)


_OCCUPANCY = "_tacso_occupancy"


def _occupancy(event: Event) -> Occupancy:
    """How full ``event`` is (counted once per dump; a list counts all its events at once)."""
    found: Occupancy | None = event.__dict__.get(_OCCUPANCY)
    if found is None:
        with current_app.extensions["tacso_events"].sessions() as session:
            found = occupancy(session, event)
        event.__dict__[_OCCUPANCY] = found
    return found


class EventSchema(Schema):
    """An event as the API returns it (dumped from the model)."""

    id = fields.String(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True, allow_none=True)
    type = fields.String(required=True)
    country = fields.String(required=True)
    topics = fields.List(fields.String(), required=True)
    starts_at = fields.AwareDateTime(required=True)
    ends_at = fields.AwareDateTime(required=True)
    venue = fields.Nested(VenueOutSchema, required=True, allow_none=True)
    online_url = fields.String(required=True, allow_none=True)
    capacity = fields.Integer(required=True, allow_none=True)
    organiser_id = fields.String(required=True)
    organiser_name = fields.String(required=True)
    status = fields.String(
        required=True,
        metadata={
            "description": "`published`, or `draft` until published, or `cancelled` after "
            "`POST /api/v1/events/{event_id}/cancel`."
        },
    )
    revision = fields.Integer(
        required=True,
        metadata={
            "description": "1 when first published; 0 while a draft; one more for each "
            "material change (starts_at, ends_at, venue, online_url) and for a cancellation."
        },
    )
    language = fields.String(required=True)
    translations = fields.Function(
        lambda event: event.translations or {},
        required=True,
        metadata={"type": "object", "description": "Title and description by language."},
    )
    url = fields.Function(
        _public_url,
        required=True,
        metadata={"type": "string", "description": "Where the event can be read (JSON API)."},
    )
    page_url = fields.Function(
        _page_url,
        required=True,
        metadata={"type": "string", "description": "The event's public page, for people."},
    )
    seats_taken = fields.Function(
        lambda event: _occupancy(event).seats_taken,
        required=True,
        metadata={"type": "integer", "description": "Seats confirmed or held for an offer."},
    )
    seats_left = fields.Function(
        lambda event: _occupancy(event).seats_left,
        required=True,
        allow_none=True,
        metadata={
            "type": "integer",
            "nullable": True,
            "description": "Seats still free; null for an event without a capacity.",
        },
    )
    waitlist_length = fields.Function(
        lambda event: _occupancy(event).waitlist_length,
        required=True,
        metadata={"type": "integer", "description": "Registrations waiting for a seat."},
    )
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)
    published_at = fields.AwareDateTime(required=True, allow_none=True)
    cancel_reason = fields.String(
        required=True, allow_none=True, metadata={"description": "Why it was cancelled."}
    )
    cancelled_at = fields.AwareDateTime(required=True, allow_none=True)


class EventQuerySchema(Schema):
    """Filters and paging for the list of published events."""

    country = fields.String(validate=validate.OneOf(sorted(COUNTRIES)))
    topic = fields.List(
        fields.String(validate=validate.OneOf(sorted(TOPICS))),
        metadata={"description": "Repeat to match any of several topics."},
    )
    type = fields.String(validate=validate.OneOf(list(EVENT_TYPES)))
    from_ = _aware(
        data_key="from",
        metadata={"description": "Only events that end at or after this time."},
    )
    to = _aware(
        metadata={"description": "Only events that start before this time."},
    )
    page = AsciiInteger(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    page_size = AsciiInteger(
        load_default=DEFAULT_PAGE_SIZE, validate=validate.Range(min=1, max=MAX_PAGE_SIZE)
    )

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        start, end = data.get("from_"), data.get("to")
        if start is not None and end is not None and end <= start:
            raise ValidationError("Must be after from.", field_name="to")

    @post_load
    def _query(self, data: dict[str, Any], **_: Any) -> EventQuery:
        return EventQuery(
            EventFilter(
                country=data.get("country"),
                topics=tuple(data.get("topic") or ()),
                type=data.get("type"),
                ends_from=data.get("from_"),
                starts_before=data.get("to"),
            ),
            data["page"],
            data["page_size"],
        )


class EventPageSchema(Schema):
    """One page of published events, ordered by start time."""

    items = fields.List(fields.Nested(EventSchema), required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(required=True)

    @pre_dump
    def _count_seats(self, page: EventPage, **_: Any) -> EventPage:
        # One query for the whole page rather than one per event.
        if page.items:
            with current_app.extensions["tacso_events"].sessions() as session:
                for event_id, found in occupancies(session, page.items).items():
                    next(e for e in page.items if e.id == event_id).__dict__[_OCCUPANCY] = found
        return page
