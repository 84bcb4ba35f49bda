"""Email addresses: which ones the network accepts, and their normal form (one rule for all).

The registry validates addresses with it on input and the message contracts with it on
consumption, so an address that got in can always be sent to, and an address the mailer would refuse
never gets in. Validation is email-validator's, not a regular expression of ours:

- internationalised addresses are valid: IDN domains (``info@žene.example.ba``) and UTF-8 local
  parts (``žena@example.ba``, sent with SMTPUTF8);
- quoted local parts (``"a b"@example.org``) and domain literals (``a@[127.0.0.1]``) are refused:
  nobody in the network needs them and mail servers handle them badly;
- domains that cannot receive mail from the internet (``.local``, ``.test``, ``localhost``...)
  are refused; nothing is looked up in DNS.

The normal form is email-validator's: surrounding white space stripped, Unicode NFC, the domain
lower-cased (in its Unicode form). The local part keeps its case unless the field is asked to fold
it (the registry does, as API v1 always did).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email
from marshmallow import ValidationError, fields

#: The longest address SMTP can carry (RFC 5321 forward-path limit, less the angle brackets).
MAX_EMAIL_LENGTH = 254


@dataclass(frozen=True)
class EmailAddress:
    """A valid address in its normal form, and the form to send it in."""

    #: The address as stored and shown: stripped, NFC, domain lower-cased (Unicode).
    normalised: str
    #: The all-ASCII form (IDNA/punycode domain) for plain SMTP; None when the local part is not
    #: ASCII, so sending needs a server that speaks SMTPUTF8.
    ascii: str | None


class InvalidEmailAddress(ValueError):
    """An address the network does not accept; the message says why."""


def parse_email_address(value: str) -> EmailAddress:
    """Validate and normalise ``value``; raise :class:`InvalidEmailAddress` with the reason."""
    candidate = value.strip()
    if len(candidate) > MAX_EMAIL_LENGTH * 4:  # cheap guard before any parsing
        raise InvalidEmailAddress(f"Longer than {MAX_EMAIL_LENGTH} characters.")
    try:
        info = validate_email(
            candidate,
            check_deliverability=False,
            allow_smtputf8=True,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            allow_empty_local=False,
            globally_deliverable=True,
        )
    except EmailNotValidError as exc:
        raise InvalidEmailAddress(f"Not a valid email address: {exc}") from None
    return EmailAddress(normalised=info.normalized, ascii=info.ascii_email)


def ascii_form(address: str) -> str | None:
    """The all-ASCII form of an address that was accepted before (None: needs SMTPUTF8).

    An all-ASCII address is its own ASCII form (its domain lower-cased, as validation leaves it):
    no need to validate it again. Serialising a page of 500 organisations spent about half its
    time in the validator (docs/performance.md).
    """
    if address.isascii():
        local, at, domain = address.rpartition("@")
        return f"{local}@{domain.lower()}" if local and at and domain else None
    try:
        return parse_email_address(address).ascii
    except InvalidEmailAddress:
        return None


class EmailAddressField(fields.String):
    """A marshmallow field that accepts what :func:`parse_email_address` accepts, normalised.

    ``lower_case`` also folds the local part to lower case (the registry's v1 rule: two
    addresses that differ only in case are one organisation).
    """

    def __init__(self, *, lower_case: bool = False, **kwargs: Any) -> None:
        metadata = kwargs.pop("metadata", {})
        metadata.setdefault("format", "email")
        super().__init__(metadata=metadata, **kwargs)
        self.lower_case = lower_case

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parse_email_address(text.lower() if self.lower_case else text).normalised
        except InvalidEmailAddress as exc:
            raise ValidationError(str(exc)) from None
