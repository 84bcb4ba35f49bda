"""Request and response schemas of notify's API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate

from tacso_notify.domain import ACCOUNT_KINDS, MessageKind
from tacso_notify.ledger import DeliveryFilter
from tacso_notify.models import STATUSES
from tacso_notify.webhooks import EVENT_TYPES
from tacso_shared.vocabulary import COUNTRIES
from tacso_shared.web import AsciiInteger


class DeliveryQuerySchema(Schema):
    """Filters and paging for the delivery list."""

    event_id = fields.String()
    organisation_id = fields.String()
    kind = fields.String(
        validate=validate.OneOf([k.value for k in MessageKind] + list(ACCOUNT_KINDS))
    )
    status = fields.String(validate=validate.OneOf(STATUSES))
    page = AsciiInteger(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = AsciiInteger(load_default=100, validate=validate.Range(min=1, max=1000))

    @post_load
    def _query(self, data: dict[str, Any], **_: Any) -> DeliveryQuery:
        page, page_size = data.pop("page"), data.pop("page_size")
        return DeliveryQuery(DeliveryFilter(**data), page, page_size)


@dataclass(frozen=True)
class DeliveryQuery:
    """A client's question to the ledger: which deliveries, which page."""

    filter: DeliveryFilter
    page: int
    page_size: int


class DeliverySchema(Schema):
    """One row of the delivery ledger."""

    id = fields.Integer(required=True)
    event_id = fields.String(required=True)
    revision = fields.Integer(required=True)
    organisation_id = fields.String(required=True)
    recipient = fields.String(required=True)
    kind = fields.String(required=True)
    reminder_offset = fields.String(
        metadata={"description": "A reminder's offset before the start (`7d`); empty otherwise."}
    )
    country = fields.String(required=True)
    status = fields.String(
        required=True,
        metadata={
            "description": "`pending`, `sent`, `failed`; `superseded` (a newer revision of the "
            "event came first) or `skipped` (a reminder whose moment had passed), with the "
            "reason in `last_error`."
        },
    )
    attempts = fields.Integer(required=True)
    last_error = fields.String(allow_none=True)
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)
    sent_at = fields.AwareDateTime(allow_none=True)
    registration_id = fields.Function(
        lambda d: d.registration_id or None,
        allow_none=True,
        metadata={"description": "The registration a registration mail is about (else null)."},
    )
    sequence = fields.Function(
        lambda d: d.sequence or None,
        allow_none=True,
        metadata={"description": "Which status change of that registration (else null)."},
    )


class DeliveryPageSchema(Schema):
    """One page of deliveries."""

    items = fields.List(fields.Nested(DeliverySchema), required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(required=True)


class DeliverySummaryQuerySchema(Schema):
    """Which event's delivery counts to show."""

    event_id = fields.String(required=True)


class DeliverySummarySchema(Schema):
    """Counts of one event's deliveries by kind and status."""

    event_id = fields.String(required=True)
    counts = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(keys=fields.String(), values=fields.Integer()),
        required=True,
    )


class SuppressionSchema(Schema):
    """An address that gets no more bulk mail, and why."""

    email = fields.String(required=True)
    reason = fields.String(required=True)
    created_at = fields.AwareDateTime(required=True)


class SuppressionCreateSchema(Schema):
    """An operator suppresses an address by hand."""

    email = fields.String(required=True, validate=validate.Length(min=3, max=254))
    reason = fields.String(
        load_default="suppressed by an operator", validate=validate.Length(min=1, max=2000)
    )

    @post_load
    def _normalise(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        email = data["email"].strip().lower()
        if "@" not in email:
            raise ValidationError("Not an email address.", field_name="email")
        return {**data, "email": email}


class SuppressionQuerySchema(Schema):
    """Filters and paging for the suppression list."""

    email = fields.String(
        validate=validate.Length(min=1, max=254),
        metadata={"description": "Only addresses containing this text."},
    )
    page = AsciiInteger(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = AsciiInteger(load_default=100, validate=validate.Range(min=1, max=1000))


class SuppressionPageSchema(Schema):
    """One page of the suppression list."""

    items = fields.List(fields.Nested(SuppressionSchema), required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(required=True)


class BounceReportSchema(Schema):
    """What a bounce reported: addresses that failed for good (now suppressed) or for now."""

    permanent = fields.List(fields.String(), required=True)
    temporary = fields.List(fields.String(), required=True)
    suppressed = fields.Integer(required=True)


class ReportQuerySchema(Schema):
    """How the report is wanted (else the Accept header decides; JSON by default)."""

    format = fields.String(validate=validate.OneOf(["json", "csv", "html"]))


class ReportRowSchema(Schema):
    """How many deliveries of one kind ended in one status (failures: for one reason)."""

    kind = fields.String(required=True)
    status = fields.String(required=True)
    reason = fields.String(required=True)
    count = fields.Integer(required=True)


class TimelinePointSchema(Schema):
    """Mail accepted by the SMTP server in one minute."""

    at = fields.AwareDateTime(required=True)
    kind = fields.String(required=True)
    sent = fields.Integer(required=True)


class EventReportSchema(Schema):
    """What became of every mail about one event."""

    event_id = fields.String(required=True)
    total = fields.Integer(required=True)
    funnel = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={
            "description": "The RSVP funnel: invited (invitations accepted by the SMTP server), "
            "then organisations by the current status of their registration"
        },
    )
    counts = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(keys=fields.String(), values=fields.Integer()),
        required=True,
    )
    rows = fields.List(fields.Nested(ReportRowSchema), required=True)
    timeline = fields.List(fields.Nested(TimelinePointSchema), required=True)
    suppressed_recipients = fields.Integer(required=True)
    first_sent_at = fields.AwareDateTime(required=True, allow_none=True)
    last_sent_at = fields.AwareDateTime(required=True, allow_none=True)


# ---- webhooks -----------------------------------------------------------------------------
class WebhookCreateSchema(Schema):
    """A web client subscribes: where to POST, which event types, which countries."""

    url = fields.Url(
        required=True,
        schemes={"http", "https"},
        require_tld=False,
        validate=validate.Length(max=2048),
        metadata={
            "description": "Where to POST (https; http only where WEBHOOKS_ALLOW_HTTP is on). "
            "It must resolve to public addresses only."
        },
    )
    event_types = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)),
        required=True,
        validate=validate.Length(min=1, max=len(EVENT_TYPES)),
        metadata={"description": f"Any of {', '.join(EVENT_TYPES)}."},
    )
    countries = fields.List(
        fields.String(validate=validate.OneOf(sorted(COUNTRIES))),
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=len(COUNTRIES)),
        metadata={
            "description": "Only these countries' messages; omitted: every country (network "
            "admins only; a country editor must name countries of its own)."
        },
    )
    description = fields.String(load_default=None, validate=validate.Length(max=500))


class WebhookSchema(Schema):
    """A webhook subscription (its secret is shown once, when it is created)."""

    id = fields.String(required=True)
    url = fields.String(required=True)
    event_types = fields.List(fields.String(), required=True)
    countries = fields.List(fields.String(), required=True, allow_none=True)
    description = fields.String(allow_none=True)
    enabled = fields.Boolean(required=True)
    disabled_reason = fields.String(allow_none=True)
    disabled_at = fields.AwareDateTime(allow_none=True)
    created_by = fields.String(required=True)
    created_at = fields.AwareDateTime(required=True)


class CreatedWebhookSchema(WebhookSchema):
    """A new subscription with its signing secret: store it now, it is never shown again."""

    secret = fields.String(
        required=True,
        metadata={"description": "whsec_ + base64 of the HMAC-SHA256 key (Standard Webhooks)."},
    )


class WebhookListSchema(Schema):
    """The subscriptions the caller may see."""

    items = fields.List(fields.Nested(WebhookSchema), required=True)


class WebhookDeliverySchema(Schema):
    """One message owed to a subscriber, and how its attempts went."""

    id = fields.Integer(required=True)
    message_id = fields.String(
        required=True, metadata={"description": "The webhook-id header (the envelope's id)."}
    )
    event_type = fields.String(required=True)
    country = fields.String(required=True)
    status = fields.String(
        required=True, metadata={"description": "pending, delivered, failed or abandoned."}
    )
    attempts = fields.Integer(required=True)
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    next_attempt_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime(required=True)
    delivered_at = fields.AwareDateTime(allow_none=True)


class WebhookDeliveryPageSchema(Schema):
    """One page of a subscription's delivery log, newest first."""

    items = fields.List(fields.Nested(WebhookDeliverySchema), required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(required=True)


class PageQuerySchema(Schema):
    """Paging of a list."""

    page = AsciiInteger(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = AsciiInteger(load_default=100, validate=validate.Range(min=1, max=1000))


# ---- the audience preview ---------------------------------------------------------------------
class KindPreviewSchema(Schema):
    """Who would get one kind of mail about the event, and who would not, and why."""

    kind = fields.String(required=True)
    organisation_kind = fields.String(required=True)
    recipients = fields.Integer(required=True)
    by_language = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    by_topic = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        required=True,
        metadata={"description": "Recipients working on each of the event's topics."},
    )
    excluded = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        required=True,
        metadata={
            "description": "Left out, each once, by the first reason that applies: "
            "no_consent, opted_out (0 until registry exposes opt-outs), suppressed."
        },
    )
    excluded_total = fields.Integer(required=True)


class AudiencePreviewSchema(Schema):
    """An event's audience as it would be if the event were published now."""

    event_id = fields.String(required=True)
    status = fields.String(required=True)
    country = fields.String(required=True)
    topics = fields.List(fields.String(), required=True)
    invitation = fields.Nested(KindPreviewSchema, required=True)
    press_notice = fields.Nested(KindPreviewSchema, required=True)
