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
ORGANISATION_UPDATED = "org.tacso.registry.organisation.updated.v1"
ORGANISATION_ERASED = "org.tacso.registry.organisation.erased.v1"
EVENT_PUBLISHED = "org.tacso.events.event.published.v1"
EVENT_UPDATED = "org.tacso.events.event.updated.v1"
EVENT_CANCELLED = "org.tacso.events.event.cancelled.v1"
REMINDER_DUE = "org.tacso.events.registration.reminder.v1"
SIGNUP_CONFIRMATION_REQUESTED = "org.tacso.registry.signup.confirmation.v1"
USER_INVITED = "org.tacso.registry.user.invited.v1"

#: What a registration can become. ``declined`` is an invitee's "I can't attend": it holds no seat.
REGISTRATION_STATUSES = ("confirmed", "waitlisted", "offered", "expired", "cancelled", "declined")
#: The fields of an event whose change is *material*: it bumps the revision and tells everyone.
MATERIAL_FIELDS = ("starts_at", "ends_at", "venue", "online_url")

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


@dataclass(frozen=True)
class OrganisationUpdated:
    """An organisation's profile changed (the whole new profile; ``active`` false = deactivated)."""

    organisation_id: str
    name: str
    kind: str
    country: str
    email: str
    language: str
    topics: tuple[str, ...]
    active: bool = True
    mailing_consent: bool = True


@dataclass(frozen=True)
class OrganisationErased:
    """An organisation was erased: its personal data is gone and must be redacted everywhere."""

    organisation_id: str
    country: str
    #: The addresses it had (so a consumer can redact them in what it keeps), never republished.
    emails: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventUpdated:
    """A published event changed materially; ``event`` is the new state (its revision grew)."""

    event: EventPublished
    #: The material fields that changed (a subset of :data:`MATERIAL_FIELDS`).
    changed: tuple[str, ...]
    previous_starts_at: datetime
    previous_ends_at: datetime
    previous_venue: Venue | None = None
    previous_online_url: str | None = None

    @property
    def country(self) -> str:
        return self.event.country


@dataclass(frozen=True)
class EventCancelled:
    """A published event was cancelled; ``event`` is its last state (revision bumped)."""

    event: EventPublished
    reason: str
    cancelled_at: datetime

    @property
    def country(self) -> str:
        return self.event.country


@dataclass(frozen=True)
class RegistrationChanged:
    """A registration reached a status: one message per status change.

    ``sequence`` counts the registration's status changes (1 for the first): (registration_id,
    sequence) identifies the change, so a consumer sends its mail once per change.
    """

    registration_id: str
    organisation_id: str
    status: str
    seats: int
    sequence: int
    changed_at: datetime
    #: The event as it is now (its country is the routing key's).
    event: EventPublished
    #: 1-based place in the waitlist (``waitlisted`` only).
    position: int | None = None
    #: The end of the claim window (``offered`` only).
    offer_expires_at: datetime | None = None
    note: str | None = None

    @property
    def country(self) -> str:
        return self.event.country


@dataclass(frozen=True)
class ReminderDue:
    """A reminder to a confirmed registrant is due ``offset`` before the event starts."""

    registration_id: str
    organisation_id: str
    #: As configured (``7d``, ``1d``, ``30s``): with the revision, keys the reminder in the ledger.
    offset: str
    due_at: datetime
    event: EventPublished
    seats: int = 1

    @property
    def country(self) -> str:
        return self.event.country


@dataclass(frozen=True)
class SignupConfirmationRequested:
    """Someone signed an organisation up: mail the address its confirmation link.

    ``already_registered``: the address belongs to an organisation already, so the mail says so
    (and how to manage its preferences) instead of carrying a link; the sign-up's answer was the
    same either way, so nobody learns from it whether an address is known.
    """

    signup_id: str
    email: str
    name: str
    language: str
    country: str
    expires_at: datetime
    confirm_url: str | None = None
    already_registered: bool = False


@dataclass(frozen=True)
class UserInvited:
    """A person was given an account: mail them the link that sets its password."""

    user_id: str
    email: str
    name: str
    language: str
    #: The country of the person's organisation (the network admin's default when it has none).
    country: str
    set_password_url: str
    expires_at: datetime


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


class OrganisationUpdatedV1(Schema):
    """``org.tacso.registry.organisation.updated.v1``: loads :class:`OrganisationUpdated`."""

    organisation_id = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(ORGANISATION_KINDS))
    country = fields.String(required=True, validate=_country)
    email = EmailAddressField(required=True)
    language = fields.String(required=True, validate=validate.OneOf(sorted(LANGUAGES)))
    topics = fields.List(_topic, required=True)
    active = fields.Boolean(load_default=True)
    mailing_consent = fields.Boolean(load_default=True)

    @post_load
    def _message(self, data: dict[str, Any], **_: Any) -> OrganisationUpdated:
        return OrganisationUpdated(**{**data, "topics": tuple(data["topics"])})


class OrganisationErasedV1(Schema):
    """``org.tacso.registry.organisation.erased.v1``: loads :class:`OrganisationErased`."""

    organisation_id = fields.String(required=True)
    country = fields.String(required=True, validate=_country)
    emails = fields.List(fields.String(), load_default=list)

    @post_load
    def _message(self, data: dict[str, Any], **_: Any) -> OrganisationErased:
        return OrganisationErased(**{**data, "emails": tuple(data["emails"])})


class EventUpdatedV1(Schema):
    """``org.tacso.events.event.updated.v1``: loads :class:`EventUpdated`."""

    event = fields.Nested(EventPublishedV1, required=True)
    changed = fields.List(
        fields.String(validate=validate.OneOf(MATERIAL_FIELDS)),
        required=True,
        validate=validate.Length(min=1),
    )
    previous_starts_at = fields.AwareDateTime(required=True)
    previous_ends_at = fields.AwareDateTime(required=True)
    previous_venue = fields.Nested(VenueV1, load_default=None, allow_none=True)
    previous_online_url = fields.Url(load_default=None, allow_none=True, require_tld=False)

    @post_load
    def _message(self, data: dict[str, Any], **_: Any) -> EventUpdated:
        return EventUpdated(**{**data, "changed": tuple(data["changed"])})


class EventCancelledV1(Schema):
    """``org.tacso.events.event.cancelled.v1``: loads :class:`EventCancelled`."""

    event = fields.Nested(EventPublishedV1, required=True)
    reason = fields.String(required=True)
    cancelled_at = fields.AwareDateTime(required=True)

    @post_load
    def _message(self, data: dict[str, Any], **_: Any) -> EventCancelled:
        return EventCancelled(**data)


class RegistrationChangedV1(Schema):
    """``org.tacso.events.registration.<status>.v1``: loads :class:`RegistrationChanged`."""

    registration_id = fields.String(required=True)
    organisation_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(REGISTRATION_STATUSES))
    seats = fields.Integer(required=True, validate=validate.Range(min=0))
    sequence = fields.Integer(required=True, validate=validate.Range(min=1))
    changed_at = fields.AwareDateTime(required=True)
    event = fields.Nested(EventPublishedV1, required=True)
    position = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1))
    offer_expires_at = fields.AwareDateTime(load_default=None, allow_none=True)
    note = fields.String(load_default=None, allow_none=True)

    @post_load
    def _message(self, data: dict[str, Any], **_: Any) -> RegistrationChanged:
        return RegistrationChanged(**data)


class ReminderDueV1(Schema):
    """``org.tacso.events.registration.reminder.v1``: loads :class:`ReminderDue`."""

    registration_id = fields.String(required=True)
    organisation_id = fields.String(required=True)
    offset = fields.String(required=True, validate=validate.Regexp(r"^[1-9][0-9]*[smhd]$"))
    due_at = fields.AwareDateTime(required=True)
    event = fields.Nested(EventPublishedV1, required=True)
    seats = fields.Integer(load_default=1, validate=validate.Range(min=0))

    @post_load
    def _message(self, data: dict[str, Any], **_: Any) -> ReminderDue:
        return ReminderDue(**data)


class SignupConfirmationRequestedV1(Schema):
    """``org.tacso.registry.signup.confirmation.v1``: loads :class:`SignupConfirmationRequested`."""

    signup_id = fields.String(required=True, validate=validate.Length(min=1, max=36))
    email = EmailAddressField(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    language = fields.String(required=True, validate=validate.OneOf(sorted(LANGUAGES)))
    country = fields.String(required=True, validate=_country)
    expires_at = fields.AwareDateTime(required=True)
    confirm_url = fields.Url(load_default=None, allow_none=True, require_tld=False)
    already_registered = fields.Boolean(load_default=False)

    @post_load
    def _message(self, data: dict[str, Any], **_: Any) -> SignupConfirmationRequested:
        return SignupConfirmationRequested(**data)


class UserInvitedV1(Schema):
    """``org.tacso.registry.user.invited.v1``: loads :class:`UserInvited`."""

    user_id = fields.String(required=True, validate=validate.Length(min=1, max=36))
    email = EmailAddressField(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    language = fields.String(required=True, validate=validate.OneOf(sorted(LANGUAGES)))
    country = fields.String(required=True, validate=_country)
    set_password_url = fields.Url(required=True, require_tld=False)
    expires_at = fields.AwareDateTime(required=True)

    @post_load
    def _message(self, data: dict[str, Any], **_: Any) -> UserInvited:
        return UserInvited(**data)


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
        """``<prefix>.<country>``: consumers can bind to one country or to all (``*``).

        A registration's prefix names its status: ``registration.<status>.<country>``.
        """
        if isinstance(message, RegistrationChanged):
            return f"registration.{message.status}.{message.country}"
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
ORGANISATION_UPDATED_V1: Contract[OrganisationUpdated] = Contract(
    ORGANISATION_UPDATED, OrganisationUpdated, OrganisationUpdatedV1, "organisation.updated"
)
ORGANISATION_ERASED_V1: Contract[OrganisationErased] = Contract(
    ORGANISATION_ERASED, OrganisationErased, OrganisationErasedV1, "organisation.erased"
)
EVENT_PUBLISHED_V1: Contract[EventPublished] = Contract(
    EVENT_PUBLISHED, EventPublished, EventPublishedV1, "event.published"
)
EVENT_UPDATED_V1: Contract[EventUpdated] = Contract(
    EVENT_UPDATED, EventUpdated, EventUpdatedV1, "event.updated"
)
EVENT_CANCELLED_V1: Contract[EventCancelled] = Contract(
    EVENT_CANCELLED, EventCancelled, EventCancelledV1, "event.cancelled"
)
#: One type per status (``org.tacso.events.registration.confirmed.v1``...), one message class.
REGISTRATION_CHANGED_V1: dict[str, Contract[RegistrationChanged]] = {
    status: Contract(
        f"org.tacso.events.registration.{status}.v1",
        RegistrationChanged,
        RegistrationChangedV1,
        "registration.*",
    )
    for status in REGISTRATION_STATUSES
}
REMINDER_DUE_V1: Contract[ReminderDue] = Contract(
    REMINDER_DUE, ReminderDue, ReminderDueV1, "registration.reminder"
)
#: Account mail: both bound by notify's ``notify.accounts.<country>`` queues (``account.*.XX``).
SIGNUP_CONFIRMATION_REQUESTED_V1: Contract[SignupConfirmationRequested] = Contract(
    SIGNUP_CONFIRMATION_REQUESTED,
    SignupConfirmationRequested,
    SignupConfirmationRequestedV1,
    "account.signup",
)
USER_INVITED_V1: Contract[UserInvited] = Contract(
    USER_INVITED, UserInvited, UserInvitedV1, "account.invited"
)

#: Every integration contract by its type name.
_ALL: tuple[Contract[Any], ...] = (
    ORGANISATION_REGISTERED_V1,
    ORGANISATION_UPDATED_V1,
    ORGANISATION_ERASED_V1,
    EVENT_PUBLISHED_V1,
    EVENT_UPDATED_V1,
    EVENT_CANCELLED_V1,
    *REGISTRATION_CHANGED_V1.values(),
    REMINDER_DUE_V1,
    SIGNUP_CONFIRMATION_REQUESTED_V1,
    USER_INVITED_V1,
)
CONTRACTS: dict[str, Contract[Any]] = {c.type: c for c in _ALL}
#: The contract of each message class (a publisher hands over the message, not its type name);
#: a registration's contract depends on its status (:func:`contract_of`).
CONTRACT_OF: dict[type, Contract[Any]] = {
    c.message: c for c in CONTRACTS.values() if c.message is not RegistrationChanged
}


def contract_of(message: CountryMessage) -> Contract[Any]:
    """The contract ``message`` travels under."""
    if isinstance(message, RegistrationChanged):
        return REGISTRATION_CHANGED_V1[message.status]
    return CONTRACT_OF[type(message)]


def envelope_of(
    message: CountryMessage,
    source: str,
    subject: str | None = None,
    correlation_id: str | None = None,
) -> Envelope:
    """The envelope carrying ``message`` (validated against its contract)."""
    contract = contract_of(message)
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
