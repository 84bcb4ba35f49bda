"""What the APIs return and take, as TypedDicts (the JSON as the OpenAPI documents describe it).

Plain dicts at run time: a field the API adds later is there too, only not typed yet.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

# ---- registry --------------------------------------------------------------------------------


class OrganisationCreate(TypedDict):
    name: str
    kind: str
    country: str
    email: str
    language: str
    topics: NotRequired[list[str]]
    mailing_consent: NotRequired[bool]


class Organisation(TypedDict):
    id: str
    name: str
    kind: str
    country: str
    email: str
    email_ascii: str | None
    language: str
    topics: list[str]
    mailing_consent: bool
    created_at: str
    updated_at: str


class Topic(TypedDict):
    slug: str
    label: str


class Token(TypedDict):
    access_token: str
    token_type: str
    expires_in: int


class Caller(TypedDict):
    subject: str
    role: str
    organisation_id: str | None
    countries: list[str]
    via: str


class ApiKey(TypedDict):
    id: str
    name: str
    prefix: str
    role: str
    organisation_id: str | None
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class ApiKeyCreated(ApiKey):
    secret: str


class InvitedUser(TypedDict):
    id: str
    email: str
    name: str
    role: str
    organisation_id: str | None
    created_at: str
    password_set_at: str | None
    invitation_token: str


class Jwks(TypedDict):
    keys: list[dict[str, str]]


class AuditEntry(TypedDict):
    id: int
    at: str
    actor: str
    role: str | None
    organisation_id: str | None
    via: str | None
    action: str
    resource_type: str
    resource_id: str | None
    before: Any
    after: Any
    address: str | None
    correlation_id: str | None


class OrganisationPatch(TypedDict, total=False):
    """A JSON merge patch of an organisation: only the keys given change (null clears
    ``topics``/``contacts``)."""

    name: str
    email: str
    language: str
    topics: list[str] | None
    contacts: list[dict[str, Any]] | None


class Consent(TypedDict):
    basis: str
    source: str
    recorded_at: str
    text_version: str | None
    actor: str | None
    withdrawn_at: str | None


class Preferences(TypedDict):
    all: bool
    kinds: NotRequired[dict[str, bool]]
    topics_opted_out: NotRequired[list[str]]


class SignupCreate(TypedDict):
    name: str
    kind: str
    country: str
    email: str
    language: str
    consent_text_version: str
    consent: bool
    topics: NotRequired[list[str]]


class SignupAccepted(TypedDict):
    status: str
    message: str


class ImportRow(TypedDict):
    line: int
    outcome: str
    email: str | None
    reason: str | None
    organisation_id: str | None


class ImportReport(TypedDict):
    dry_run: bool
    encoding: str
    columns: dict[str, str]
    created: int
    updated: int
    skipped: int
    rows: list[ImportRow]


# ---- events ----------------------------------------------------------------------------------


class Venue(TypedDict):
    name: str
    city: str
    address: NotRequired[str | None]


class EventCreate(TypedDict):
    title: str
    type: str
    country: str
    topics: list[str]
    starts_at: str
    ends_at: str
    organiser_id: str
    description: NotRequired[str]
    venue: NotRequired[Venue | None]
    online_url: NotRequired[str | None]
    capacity: NotRequired[int | None]
    status: NotRequired[str]
    language: NotRequired[str]
    translations: NotRequired[dict[str, dict[str, str]]]


class Event(TypedDict):
    id: str
    title: str
    description: str | None
    type: str
    country: str
    topics: list[str]
    starts_at: str
    ends_at: str
    venue: Venue | None
    online_url: str | None
    capacity: int | None
    organiser_id: str
    organiser_name: str | None
    status: str
    revision: int
    language: str
    translations: dict[str, dict[str, str]]
    url: str
    created_at: str
    updated_at: str
    published_at: str | None


class Registration(TypedDict):
    id: str
    event_id: str
    organisation_id: str
    status: str
    seats: int
    note: str | None
    position: NotRequired[int | None]
    offer_expires_at: str | None
    sequence: int
    created_at: str
    updated_at: str


# ---- notify ----------------------------------------------------------------------------------


class Delivery(TypedDict):
    id: int
    event_id: str
    revision: int
    organisation_id: str
    recipient: str
    kind: str
    country: str
    status: str
    attempts: int
    last_error: NotRequired[str | None]
    created_at: str
    updated_at: str
    sent_at: NotRequired[str | None]


class DeliverySummary(TypedDict):
    event_id: str
    counts: dict[str, dict[str, int]]


class Suppression(TypedDict):
    email: str
    reason: str
    created_at: str


class BounceReport(TypedDict):
    permanent: list[str]
    temporary: list[str]
    suppressed: int


class ReportRow(TypedDict):
    kind: str
    status: str
    reason: str | None
    count: int


class TimelinePoint(TypedDict):
    at: str
    kind: str
    sent: int


class EventReport(TypedDict):
    event_id: str
    total: int
    counts: dict[str, dict[str, int]]
    rows: list[ReportRow]
    timeline: list[TimelinePoint]
    suppressed_recipients: int
    first_sent_at: str | None
    last_sent_at: str | None


class Webhook(TypedDict):
    id: str
    url: str
    event_types: list[str]
    countries: list[str] | None
    description: NotRequired[str | None]
    enabled: bool
    disabled_reason: NotRequired[str | None]
    disabled_at: NotRequired[str | None]
    created_by: str
    created_at: str


class WebhookCreated(Webhook):
    secret: str


class WebhookDelivery(TypedDict):
    id: int
    message_id: str
    event_type: str
    country: str
    status: str
    attempts: int
    last_status_code: NotRequired[int | None]
    last_error: NotRequired[str | None]
    next_attempt_at: NotRequired[str | None]
    created_at: str
    delivered_at: NotRequired[str | None]


class AudiencePreview(TypedDict):
    """Who would get each kind of mail if the event were published now (``invitation`` and
    ``press_notice``: recipients, by_language, by_topic, excluded, ...)."""

    event_id: str
    status: str
    country: str
    topics: list[str]
    invitation: dict[str, Any]
    press_notice: dict[str, Any]
