"""Message contracts: one versioned marshmallow schema per message type.

A type name ends with its version (``...v1``). A breaking change adds a new type; consumers keep
accepting the old one until no publisher sends it.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from tacso_shared.addresses import EmailAddressField
from tacso_shared.envelope import Envelope, PoisonMessage
from tacso_shared.vocabulary import COUNTRIES, EVENT_TYPES, LANGUAGES, ORGANISATION_KINDS, TOPICS

ORGANISATION_REGISTERED = "org.tacso.registry.organisation.registered.v1"
EVENT_PUBLISHED = "org.tacso.events.event.published.v1"

_country = validate.OneOf(sorted(COUNTRIES))
_topic = fields.String(validate=validate.OneOf(sorted(TOPICS)))


class OrganisationRegisteredV1(Schema):
    """An organisation joined the registry."""

    organisation_id = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(ORGANISATION_KINDS))
    country = fields.String(required=True, validate=_country)
    email = EmailAddressField(required=True)
    language = fields.String(required=True, validate=validate.OneOf(sorted(LANGUAGES)))
    topics = fields.List(_topic, required=True)


class VenueV1(Schema):
    """Where an event takes place in person."""

    name = fields.String(required=True)
    address = fields.String(load_default=None, allow_none=True)
    city = fields.String(required=True)


class EventPublishedV1(Schema):
    """An event became public (``revision`` grows with every later change of the event)."""

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


@dataclass(frozen=True)
class Contract:
    """A message type: its schema and how its routing key is made."""

    type: str
    schema: builtins.type[Schema]
    routing_key_prefix: str

    def routing_key(self, data: dict[str, Any]) -> str:
        """``<prefix>.<country>``: consumers can bind to one country or to all (``*``)."""
        return f"{self.routing_key_prefix}.{data['country']}"


CONTRACTS: dict[str, Contract] = {
    c.type: c
    for c in (
        Contract(ORGANISATION_REGISTERED, OrganisationRegisteredV1, "organisation.registered"),
        Contract(EVENT_PUBLISHED, EventPublishedV1, "event.published"),
    )
}


def dump_data(message_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """Validate outgoing ``data`` against its contract and return its JSON-ready form."""
    contract = CONTRACTS[message_type]
    schema = contract.schema()
    errors = schema.validate(schema.dump(data))
    if errors:
        raise ValueError(f"{message_type} data does not match its contract: {errors}")
    result: dict[str, Any] = schema.dump(data)
    return result


def load_data(envelope: Envelope) -> dict[str, Any]:
    """Validate an incoming envelope's ``data``; raise :class:`PoisonMessage` if it is unusable."""
    contract = CONTRACTS.get(envelope.type)
    if contract is None:
        raise PoisonMessage(f"unknown message type {envelope.type!r}")
    try:
        loaded: dict[str, Any] = contract.schema().load(envelope.data)
    except ValidationError as exc:
        raise PoisonMessage(f"{envelope.type} data invalid: {exc.messages}") from exc
    return loaded
