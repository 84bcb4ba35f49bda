"""Turning a stored email address into what SMTP needs: RFC 6530/6531/6532 addresses included.

Registry accepts internationalised addresses (and rightly so: ``info@žene.example.ba`` is a real
address). What goes on the wire depends on which part is not ASCII:

- a non-ASCII *domain* is sent in its IDNA form (``info@xn--ene-...``): every server takes that;
- a non-ASCII *local part* can only be sent with the ``SMTPUTF8`` extension; a server without it
  can never take the message, and that is that recipient's failure alone.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import idna

# What may stand in an unquoted local part (RFC 5322 dot-atom text), plus any non-ASCII
# character (RFC 6532). Quoted local parts and domain literals are refused: registry does too.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010FFFF]"
_LOCAL_PART = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_MAX_LOCAL_PART = 64
_MAX_ADDRESS = 254


class UnsendableAddress(ValueError):
    """The address can never be handed to an SMTP server: a fault of this recipient alone."""


@dataclass(frozen=True)
class SmtpAddress:
    """An address as it goes out: the mailbox for headers and RCPT, and whether SMTPUTF8 is needed.

    ``mailbox`` has the domain in its IDNA (ASCII) form; with ``smtputf8`` its local part is UTF-8.
    """

    mailbox: str
    smtputf8: bool


def smtp_address(email: str) -> SmtpAddress:
    """The SMTP form of ``email``; raise :class:`UnsendableAddress` saying why there is none."""
    address = unicodedata.normalize("NFC", email.strip())
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise UnsendableAddress(f"not an email address: {email!r}")
    if len(local) > _MAX_LOCAL_PART:
        raise UnsendableAddress(f"local part longer than {_MAX_LOCAL_PART} characters")
    if _LOCAL_PART.fullmatch(local) is None:
        raise UnsendableAddress(f"local part {local!r} cannot be sent unquoted")
    if not local.isprintable():
        raise UnsendableAddress(f"local part {local!r} holds control characters")
    if domain.isascii():
        ascii_domain = domain.lower()
        labels = ascii_domain.split(".")
        if not all(labels) or not all(
            re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", label) for label in labels
        ):
            raise UnsendableAddress(f"domain {domain!r} is not a host name")
    else:
        try:
            ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise UnsendableAddress(f"domain {domain!r} has no IDNA form: {exc}") from exc
    mailbox = f"{local}@{ascii_domain}"
    if len(mailbox.encode("utf-8")) > _MAX_ADDRESS:
        raise UnsendableAddress(f"address longer than {_MAX_ADDRESS} octets")
    return SmtpAddress(mailbox=mailbox, smtputf8=not local.isascii())
