"""Request and response schemas of the registry API (validation and OpenAPI from one source)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates

from tacso_shared.addresses import EmailAddressField, ascii_form
from tacso_shared.vocabulary import COUNTRIES, LANGUAGES, ORGANISATION_KINDS, TOPICS
from tacso_shared.web import AsciiInteger

MAX_PAGE_SIZE = 1000


class OrganisationCreateSchema(Schema):
    """What a client sends to register an organisation."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    kind = fields.String(required=True, validate=validate.OneOf(ORGANISATION_KINDS))
    country = fields.String(required=True, validate=validate.OneOf(sorted(COUNTRIES)))
    email = EmailAddressField(
        required=True,
        lower_case=True,
        metadata={
            "description": "Stored normalised: white space stripped, Unicode NFC, lower case. "
            "Internationalised addresses are welcome; quoted local parts and domain literals "
            "are not."
        },
    )
    language = fields.String(required=True, validate=validate.OneOf(sorted(LANGUAGES)))
    topics = fields.List(fields.String(validate=validate.OneOf(sorted(TOPICS))), load_default=list)
    mailing_consent = fields.Boolean(
        load_default=True,
        metadata={"description": "Whether the organisation agreed to receive invitations."},
    )

    @validates("name")
    def _name_not_blank(self, value: str, **_: Any) -> None:
        if not value.strip():
            raise ValidationError("Must not be blank.")

    @post_load
    def _normalise(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["name"] = data["name"].strip()
        data["topics"] = sorted(set(data["topics"]))
        return data


class OrganisationSchema(Schema):
    """An organisation as the API returns it."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True)
    country = fields.String(required=True)
    email = fields.String(required=True)
    email_ascii = fields.Function(
        lambda org: ascii_form(org.email),
        allow_none=True,
        metadata={
            "description": "The address to send to over plain SMTP (the domain in IDNA form); "
            "null when the local part is not ASCII and sending needs SMTPUTF8."
        },
    )
    language = fields.String(required=True)
    topics = fields.List(fields.String(), required=True)
    mailing_consent = fields.Boolean(required=True)
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)


class OrganisationQuerySchema(Schema):
    """Filters and paging for the organisation list."""

    country = fields.String(validate=validate.OneOf(sorted(COUNTRIES)))
    kind = fields.String(validate=validate.OneOf(ORGANISATION_KINDS))
    topic = fields.List(
        fields.String(validate=validate.OneOf(sorted(TOPICS))),
        metadata={"description": "Repeat to match any of several topics."},
    )
    mailing_consent = fields.Boolean()
    page = AsciiInteger(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = AsciiInteger(load_default=50, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))
    after = fields.String(
        metadata={
            "description": "Keyset paging: only organisations whose id sorts after this one "
            "(use `next_after` of the previous page; `page` is then ignored)."
        },
    )


class OrganisationPageSchema(Schema):
    """One page of organisations."""

    items = fields.List(fields.Nested(OrganisationSchema), required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "Matching organisations in all; null on keyset (`after`) pages."},
    )
    next_after = fields.String(allow_none=True, required=True)


class TopicSchema(Schema):
    """A topic of the controlled vocabulary."""

    slug = fields.String(required=True)
    label = fields.String(required=True)
