"""Message contracts: one versioned marshmallow schema per message type, loading a typed message.

Each contract version is a frozen dataclass (what handlers and publishers work with, checked by
mypy field by field) and the marshmallow schema that validates it on the wire and loads it. A type
name ends with its version (``...v1``). A breaking change adds a new type; consumers keep
accepting the old one until no publisher sends it.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from marshmallow import Schema, ValidationError, fields, post_load, validate

from tacso_shared.addresses import EmailAddressField
from tacso_shared.envelope import Envelope, PoisonMessage
from tacso_shared.vocabulary import COUNTRIES, EVENT_TYPES, LANGUAGES, ORGANISATION_KINDS, TOPICS

ORGANISATION_REGISTERED = "org.tacso.registry.organisation.registered.v1"
EVENT_PUBLISHED = "org.tacso.events.event.published.v1"

_country = validate.OneOf(sorted(COUNTRIES))
_topic = fields.String(validate=validate.OneOf(sorted(TOPICS)))


@dataclass(frozen=True)
class OrganisationRegistered:
    """An organisation joined the registry."""

    organisation_id: str
    name: str
    kind: str
    country: str
    email: str
    language: str
    topics: tuple[str, ...]


@dataclass(frozen=True)
class Venue:
    """Where an event takes place in person."""

    name: str
    city: str
    address: str | None = None


@dataclass(frozen=True)
class EventText:
    """An event's title and description in one more language."""

    language: str
    title: str
    description: str | None = None


@dataclass(frozen=True)
class EventPublished:
    """An event became public (``revision`` grows with every later change of the event)."""

    event_id: str
    revision: int
    title: str
    type: str
    country: str
    topics: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    organiser_id: str
    organiser_name: str
    #: The event's public page (PUBLIC_BASE_URL may be an internal name: no TLD needed).
    url: str
    description: str | None = None
    venue: Venue | None = None
    online_url: str | None = None
    capacity: int | None = None
    organiser_email: str | None = None
    #: The language the title and description are written in.
    language: str = "en"
    #: The title and description in other languages (recipients of those read them).
    translations: tuple[EventText, ...] = ()

    def text_in(self, language: str) -> EventText:
        """The title and description in ``language`` if there are, else as written."""
        for text in self.translations:
            if text.language == language:
                return text
        return EventText(self.language, self.title, self.description)


class OrganisationRegisteredV1(Schema):
    """``org.tacso.registry.organisation.registered.v1``: loads :class:`OrganisationRegistered`."""

    organisation_id = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(ORGANISATION_KINDS))
    country = fields.String(required=True, validate=_country)
    email = EmailAddressField(required=True)
    language = fields.String(required=True, validate=validate.OneOf(sorted(LANGUAGES)))
    topics = fields.List(_topic, required=True)

    @post_load
    def _message(self, data: dict[str, Any], **_: Any) -> OrganisationRegistered:
        return OrganisationRegistered(**{**data, "topics": tuple(data["topics"])})


class VenueV1(Schema):
    """Where an event takes place in person: loads :class:`Venue`."""

    name = fields.String(required=True)
    address = fields.String(load_default=None, allow_none=True)
    city = fields.String(required=True)

    @post_load
    def _venue(self, data: dict[str, Any], **_: Any) -> Venue:
        return Venue(**data)


class EventTextV1(Schema):
    """An event's title and description in one more language: loads :class:`EventText`."""

    language = fields.String(required=True, validate=validate.OneOf(sorted(LANGUAGES)))
    title = fields.String(required=True, validate=validate.Length(min=1))
    description = fields.String(load_default=None, allow_none=True)

    @post_load
    def _text(self, data: dict[str, Any], **_: Any) -> EventText:
        return EventText(**data)


class EventPublishedV1(Schema):
    """``org.tacso.events.event.published.v1``: loads :class:`EventPublished`."""

    event_id = fields.String(required=True)
    revision = fields.Integer(required=True, validate=validate.Range(min=1))
    title = fields.String(required=True, validate=validate.Length(min=1))
    description = fields.String(load_default=None, allow_none=True)
    type = fields.String(required=True, validate=validate.OneOf(sorted(EVENT_TYPES)))
    country = fields.String(required=True, validate=_country)
    topics = fields.List(_topic, required=True)
    starts_at = fields.AwareDateTime(required=True)
    ends_at = fields.AwareDateTime(required=True)
    venue = fields.Nested(VenueV1, load_default=None, allow_none=True)
    online_url = fields.Url(load_default=None, allow_none=True, require_tld=False)
    capacity = fields.Integer(load_default=None, allow_none=True)
    organiser_id = fields.String(required=True)
    organiser_name = fields.String(required=True)
    organiser_email = EmailAddressField(load_default=None, allow_none=True)
    # PUBLIC_BASE_URL may be an internal name (http://events:5002): no top-level domain needed.
    url = fields.Url(required=True, require_tld=False)
    # Added to v1 with defaults: a message without them is the event in English, untranslated.
    language = fields.String(load_default="en", validate=validate.OneOf(sorted(LANGUAGES)))
    translations = fields.List(fields.Nested(EventTextV1), load_default=list)

    @post_load
    def _message(self, data: dict[str, Any], **_: Any) -> EventPublished:
        return EventPublished(
            **{**data, "topics": tuple(data["topics"]), "translations": tuple(data["translations"])}
        )


class CountryMessage(Protocol):
    """What every integration message has: the country its routing key carries."""

    @property
    def country(self) -> str: ...


M = TypeVar("M", bound=CountryMessage)


@dataclass(frozen=True)
class Contract(Generic[M]):
    """A message type: its typed message, its schema and how its routing key is made."""

    type: str
    message: builtins.type[M]
    schema: builtins.type[Schema]
    routing_key_prefix: str

    def routing_key(self, message: M) -> str:
        """``<prefix>.<country>``: consumers can bind to one country or to all (``*``)."""
        return f"{self.routing_key_prefix}.{message.country}"

    def dump(self, message: M) -> dict[str, Any]:
        """The JSON-ready ``data`` of ``message``; ValueError if it breaks the contract."""
        data: dict[str, Any] = self.schema().dump(message)
        self.load(data)
        return data

    def load(self, data: dict[str, Any]) -> M:
        """The typed message in ``data``; ValueError (with the fields) if it breaks the contract."""
        try:
            loaded = self.schema().load(data)
        except ValidationError as exc:
            raise ValueError(
                f"{self.type} data does not match its contract: {exc.messages}"
            ) from exc
        if not isinstance(loaded, self.message):  # pragma: no cover - a schema without post_load
            raise TypeError(f"{self.type} schema loads {type(loaded).__name__}")
        return loaded


ORGANISATION_REGISTERED_V1: Contract[OrganisationRegistered] = Contract(
    ORGANISATION_REGISTERED,
    OrganisationRegistered,
    OrganisationRegisteredV1,
    "organisation.registered",
)
EVENT_PUBLISHED_V1: Contract[EventPublished] = Contract(
    EVENT_PUBLISHED, EventPublished, EventPublishedV1, "event.published"
)

#: Every integration contract by its type name.
CONTRACTS: dict[str, Contract[Any]] = {
    c.type: c for c in (ORGANISATION_REGISTERED_V1, EVENT_PUBLISHED_V1)
}
#: The contract of each message class (a publisher hands over the message, not its type name).
CONTRACT_OF: dict[type, Contract[Any]] = {c.message: c for c in CONTRACTS.values()}


def envelope_of(
    message: CountryMessage,
    source: str,
    subject: str | None = None,
    correlation_id: str | None = None,
) -> Envelope:
    """The envelope carrying ``message`` (validated against its contract)."""
    contract = CONTRACT_OF[type(message)]
    return Envelope(
        type=contract.type,
        source=source,
        subject=subject,
        correlationid=correlation_id,
        data=contract.dump(message),
    )


def load_data(envelope: Envelope) -> Any:
    """The typed message of an incoming envelope; :class:`PoisonMessage` if it is unusable."""
    contract = CONTRACTS.get(envelope.type)
    if contract is None:
        raise PoisonMessage(f"unknown message type {envelope.type!r}")
    try:
        return contract.load(envelope.data)
    except ValueError as exc:
        raise PoisonMessage(str(exc)) from exc
