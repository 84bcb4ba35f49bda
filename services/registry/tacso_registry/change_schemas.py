"""Schemas of the organisation changes: merge patch, consent, preferences (OpenAPI from them)."""

from __future__ import annotations

from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

from tacso_registry.consent import BASES
from tacso_registry.preferences import MAIL_KINDS, Preferences
from tacso_shared.addresses import EmailAddressField
from tacso_shared.vocabulary import LANGUAGES, TOPICS

MAX_CONTACTS = 20


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


class ContactSchema(Schema):
    """A contact person of an organisation."""

    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), _not_blank])
    email = EmailAddressField(load_default=None, allow_none=True, lower_case=True)
    phone = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^\+?[0-9 ()./-]{3,40}$", error="Not a phone number."),
    )
    role = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))

    @post_load
    def _compact(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["name"] = data["name"].strip()
        return {key: value for key, value in data.items() if value is not None}


def contacts_field(**kwargs: Any) -> fields.List[Any]:
    """A list of contact people (at most :data:`MAX_CONTACTS`)."""
    return fields.List(
        fields.Nested(ContactSchema),
        validate=validate.Length(max=MAX_CONTACTS),
        metadata={"description": "Contact people: `name`, optional `email`, `phone`, `role`."},
        **kwargs,
    )


class ConsentGivenSchema(Schema):
    """The basis an organisation is registered on, as the client recorded it."""

    class Meta:
        unknown = RAISE

    basis = fields.String(
        required=True,
        validate=validate.OneOf(BASES),
        metadata={"description": "`consent` (the organisation agreed) or `legitimate_interest`."},
    )
    text_version = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "The version of the consent text shown; required for `consent`."},
    )
    source = fields.String(
        load_default="api",
        validate=validate.OneOf(["admin", "api"]),
        metadata={"description": "`admin` (a person entered it) or `api` (default)."},
    )

    @validates_schema
    def _text_for_consent(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("basis") == "consent" and not data.get("text_version"):
            raise ValidationError(
                {"text_version": ["Required when the basis is consent: which text was shown."]}
            )


class ConsentSchema(Schema):
    """One consent record of an organisation."""

    basis = fields.String(required=True)
    source = fields.String(required=True)
    recorded_at = fields.AwareDateTime(required=True)
    text_version = fields.String(required=True, allow_none=True)
    actor = fields.String(required=True, allow_none=True)
    withdrawn_at = fields.AwareDateTime(required=True, allow_none=True)


class OrganisationPatchSchema(Schema):
    """A JSON merge patch (RFC 7396) of an organisation: only the fields given change.

    ``topics`` or ``contacts`` set to null clear them; ``kind`` and ``country`` cannot change
    (register a new organisation instead).
    """

    class Meta:
        unknown = RAISE

    name = fields.String(validate=[validate.Length(min=1, max=200), _not_blank])
    email = EmailAddressField(lower_case=True)
    language = fields.String(validate=validate.OneOf(sorted(LANGUAGES)))
    topics = fields.List(fields.String(validate=validate.OneOf(sorted(TOPICS))), allow_none=True)
    contacts = contacts_field(allow_none=True)
    kind = fields.Raw(metadata={"description": "Refused (422): the kind cannot change."})
    country = fields.Raw(metadata={"description": "Refused (422): the country cannot change."})

    @validates_schema
    def _fixed(self, data: dict[str, Any], **_: Any) -> None:
        errors = {
            name: ["Cannot be changed: register a new organisation instead."]
            for name in ("kind", "country")
            if name in data
        }
        if errors:
            raise ValidationError(errors)

    @post_load
    def _normalise(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if "name" in data:
            data["name"] = data["name"].strip()
        if "topics" in data:
            data["topics"] = sorted(set(data["topics"] or []))
        if "contacts" in data:
            data["contacts"] = data["contacts"] or []
        return data


class PreferencesSchema(Schema):
    """An organisation's mailing preferences (transactional mail it asked for always goes).

    ``all`` false: no invitation, press notice, reminder or update at all. ``kinds``: each
    kind wanted (true) or not (false); kinds left out are wanted. ``topics_opted_out``: no mail
    about events whose topics are all among these (an invitation matches only topics not
    opted out of).
    """

    class Meta:
        unknown = RAISE

    all = fields.Boolean(required=True)
    kinds = fields.Dict(keys=fields.String(), values=fields.Boolean(), load_default=dict)
    topics_opted_out = fields.List(
        fields.String(validate=validate.OneOf(sorted(TOPICS))), load_default=list
    )

    @pre_load
    def _known_kinds(self, data: Any, **_: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("kinds"), dict):
            unknown = sorted(str(k) for k in data["kinds"] if k not in MAIL_KINDS)
            if unknown:
                raise ValidationError(
                    {
                        "kinds": [
                            f"Unknown kind(s): {', '.join(unknown)}; "
                            f"known: {', '.join(MAIL_KINDS)}."
                        ]
                    }
                )
        return data

    @post_load
    def _preferences(self, data: dict[str, Any], **_: Any) -> Preferences:
        kinds = {kind: bool(data["kinds"].get(kind, True)) for kind in MAIL_KINDS}
        return Preferences(data["all"], kinds, sorted(set(data["topics_opted_out"])))
