"""Request and response schemas of notify's API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate

from tacso_notify.domain import ACCOUNT_KINDS, MessageKind
from tacso_notify.ledger import DeliveryFilter
from tacso_notify.models import STATUSES
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
    country = fields.String(required=True)
    status = fields.String(required=True)
    attempts = fields.Integer(required=True)
    last_error = fields.String(allow_none=True)
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)
    sent_at = fields.AwareDateTime(allow_none=True)


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
