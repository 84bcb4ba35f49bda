"""Request and response schemas of the registry API (validation and OpenAPI from one source)."""

from __future__ import annotations

from typing import Any

from marshmallow import (
    INCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates,
    validates_schema,
)

from tacso_registry.change_schemas import ConsentGivenSchema, ContactSchema
from tacso_registry.preferences import MAIL_KINDS
from tacso_shared.addresses import EmailAddressField, ascii_form
from tacso_shared.identity import ALL_AUDIENCES, ROLES
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
        metadata={
            "description": "Whether the organisation may be mailed. Kept for existing clients: "
            "prefer `consent`. False records no basis (the organisation gets no mail)."
        },
    )
    consent = fields.Nested(
        ConsentGivenSchema,
        load_default=None,
        metadata={
            "description": "The basis the organisation is mailed on, recorded with the time and "
            "the caller. Without it (and without `mailing_consent: false`) registry records "
            "`legitimate_interest`, source `api`, with the caller's identity, so clients of "
            "the first version of this API keep working and the record is still honest."
        },
    )
    contacts = fields.List(
        fields.Nested(ContactSchema),
        load_default=list,
        validate=validate.Length(max=20),
        metadata={"description": "Contact people: `name`, optional `email`, `phone`, `role`."},
    )

    @validates_schema
    def _consent_or_not(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("consent") is not None and data.get("mailing_consent") is False:
            raise ValidationError(
                {"consent": ["Contradicts mailing_consent: false; give one or the other."]}
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
    mailing_consent = fields.Boolean(
        required=True,
        metadata={"description": "Derived: whether it has an unwithdrawn consent record."},
    )
    active = fields.Boolean(
        metadata={"description": "False: deactivated (or erased); it gets no mail."}
    )
    erased = fields.Function(
        lambda org: org.erased_at is not None,
        metadata={"description": "True: a tombstone, its personal data erased."},
    )
    contacts = fields.List(fields.Dict(), metadata={"description": "Contact people."})
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
    mail_kind = fields.String(
        validate=validate.OneOf(MAIL_KINDS),
        metadata={
            "description": "An audience query for this kind of mail: only active organisations "
            "with an unwithdrawn consent record that have not opted out of everything, of this "
            "kind, or (with `event_topic`) of all the event's topics; `topic` then matches only "
            "topics not opted out of."
        },
    )
    event_topic = fields.List(
        fields.String(validate=validate.OneOf(sorted(TOPICS))),
        metadata={"description": "The event's topics (repeat), with `mail_kind`."},
    )
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


# ---- credentials ----------------------------------------------------------------------------
def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


def _role() -> fields.String:
    return fields.String(required=True, validate=validate.OneOf(ROLES))


class TokenRequestSchema(Schema):
    """An OAuth 2.0 token request: the password grant (people) or client credentials (keys)."""

    grant_type = fields.String(
        required=True, validate=validate.OneOf(["password", "client_credentials"])
    )
    username = fields.String(
        validate=validate.Length(min=1, max=254),
        metadata={"description": "The account's email (password grant)."},
    )
    password = fields.String(validate=validate.Length(min=1, max=1024))
    client_id = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "The API key's id (client credentials)."},
    )
    client_secret = fields.String(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "The API key's secret (client credentials)."},
    )
    audience = fields.String(
        validate=validate.OneOf(ALL_AUDIENCES),
        metadata={"description": "Limit the token to one service (default: all three)."},
    )

    @validates_schema
    def _grant_fields(self, data: dict[str, Any], **_: Any) -> None:
        needed = (
            ("username", "password")
            if data.get("grant_type") == "password"
            else ("client_id", "client_secret")
        )
        missing = {name: ["Required by this grant_type."] for name in needed if name not in data}
        if missing:
            raise ValidationError(missing)


class TokenSchema(Schema):
    """An access token (RFC 6749, section 5.1)."""

    access_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"description": "Always `Bearer`."})
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds."})


class OAuthErrorSchema(Schema):
    """A refused token request: an OAuth error (RFC 6749, section 5.2), or, for a body that
    cannot be read at all, the API's usual error (``code``, ``message``, ``errors``)."""

    error = fields.String(metadata={"description": "`invalid_grant`, `invalid_client`, ..."})
    error_description = fields.String()
    code = fields.Integer()
    status = fields.String()
    message = fields.String()
    errors = fields.Dict()


class JwkSchema(Schema):
    """One public key of the JWK set (Ed25519)."""

    class Meta:
        unknown = INCLUDE

    kty = fields.String(required=True)
    kid = fields.String(required=True)
    alg = fields.String(required=True)
    use = fields.String(required=True)
    crv = fields.String(required=True)
    x = fields.String(required=True)


class JwksSchema(Schema):
    """The public keys that verify registry's tokens."""

    keys = fields.List(fields.Nested(JwkSchema), required=True)


class ApiKeyCreateSchema(Schema):
    """What a network admin sends to create an API key."""

    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), _not_blank])
    role = _role()
    organisation_id = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=1, max=64)
    )


class ApiKeySchema(Schema):
    """An API key as listed (never its secret)."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    prefix = fields.String(required=True, metadata={"description": "Starts the secret."})
    role = fields.String(required=True)
    organisation_id = fields.String(required=True, allow_none=True)
    created_at = fields.AwareDateTime(required=True)
    last_used_at = fields.AwareDateTime(required=True, allow_none=True)
    revoked_at = fields.AwareDateTime(required=True, allow_none=True)


class ApiKeyCreatedSchema(ApiKeySchema):
    """A new API key with its secret, shown this once."""

    secret = fields.String(required=True)


class UserCreateSchema(Schema):
    """What a network admin sends to invite a person."""

    email = EmailAddressField(required=True, lower_case=True)
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), _not_blank])
    role = _role()
    organisation_id = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=1, max=64)
    )


class UserSchema(Schema):
    """An account as the API returns it (never its password)."""

    id = fields.String(required=True)
    email = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.String(required=True)
    organisation_id = fields.String(required=True, allow_none=True)
    created_at = fields.AwareDateTime(required=True)
    password_set_at = fields.AwareDateTime(required=True, allow_none=True)


class InvitedUserSchema(UserSchema):
    """A new account and the token of its invitation (valid 7 days, once)."""

    invitation_token = fields.String(
        required=True,
        metadata={"description": "Sent to `POST /api/v1/users/password` with a password."},
    )


class SetPasswordSchema(Schema):
    """An invitation used: its token and the password chosen."""

    token = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    password = fields.String(required=True, validate=validate.Length(min=12, max=1024))


class CallerSchema(Schema):
    """Who the credential of the request stands for."""

    subject = fields.String(required=True)
    role = fields.String(required=True)
    organisation_id = fields.String(required=True, allow_none=True)
    countries = fields.List(fields.String(), required=True)
    via = fields.String(required=True)


# ---- self-registration and import ----------------------------------------------------------
class SignupCreateSchema(Schema):
    """A self-registration: a CSO or media outlet asks to join (double opt-in)."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    kind = fields.String(required=True, validate=validate.OneOf(["cso", "media"]))
    country = fields.String(required=True, validate=validate.OneOf(sorted(COUNTRIES)))
    email = EmailAddressField(required=True, lower_case=True)
    language = fields.String(required=True, validate=validate.OneOf(sorted(LANGUAGES)))
    topics = fields.List(fields.String(validate=validate.OneOf(sorted(TOPICS))), load_default=list)
    consent_text_version = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "The version of the consent text the person was shown."},
    )
    consent = fields.Boolean(
        required=True,
        metadata={"description": "Must be true: the person agrees to receive the network's mail."},
    )

    @validates("name")
    def _name_not_blank(self, value: str, **_: Any) -> None:
        if not value.strip():
            raise ValidationError("Must not be blank.")

    @validates("name", "consent_text_version")
    def _no_control_characters(self, value: str, **_: Any) -> None:
        # The form posts outside the JSON reader, which refuses these for the API already.
        if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in value):
            raise ValidationError("Must not contain control characters.")

    @validates("consent")
    def _consent_given(self, value: bool, **_: Any) -> None:
        if value is not True:
            raise ValidationError("Consent is required to sign up.")

    @post_load
    def _normalise(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["name"] = data["name"].strip()
        data["topics"] = sorted(set(data["topics"]))
        return data


class SignupAcceptedSchema(Schema):
    """The answer to every well-formed sign-up (the same whether the address is known or not)."""

    status = fields.String(required=True, metadata={"description": "Always `accepted`."})
    message = fields.String(required=True)


class ImportQuerySchema(Schema):
    """Options of an import."""

    dry_run = fields.Boolean(
        load_default=False, metadata={"description": "Report what would happen; write nothing."}
    )
    existing = fields.String(
        load_default="skip",
        validate=validate.OneOf(["skip", "update"]),
        metadata={
            "description": "What to do with a row whose address an organisation has already: "
            "`skip` it (default) or `update` that organisation's name, language and topics."
        },
    )


class ImportRowSchema(Schema):
    """What happened to one row of an import."""

    line = fields.Integer(required=True, metadata={"description": "Line in the file (1: header)."})
    outcome = fields.String(
        required=True, metadata={"description": "`created`, `updated` or `skipped`."}
    )
    email = fields.String(allow_none=True, required=True)
    reason = fields.String(allow_none=True, required=True)
    organisation_id = fields.String(allow_none=True, required=True)


class ImportReportSchema(Schema):
    """The report of an import: counts and every row."""

    dry_run = fields.Boolean(required=True)
    encoding = fields.String(required=True)
    columns = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "Which header of the file each field was read from."},
    )
    created = fields.Integer(required=True)
    updated = fields.Integer(required=True)
    skipped = fields.Integer(required=True)
    rows = fields.List(fields.Nested(ImportRowSchema), required=True)
