"""Asynchronous bounces: delivery status notifications (RFC 3464) turned into suppressions.

A 5xx at RCPT time is caught while sending; a mailbox that fails later (the receiving server
accepted the message, then could not deliver it) is reported by a bounce sent back to
``MAIL_FROM``. An operator feeds those messages in (``POST /api/v1/bounces`` or
``tacso-notify bounces ingest FILE...``); the parsing is flufl.bounce's, which knows the formats
of the common mail servers besides RFC 3464. Permanent failures stop bulk mail to the address;
temporary ones (a full mailbox, a delay notice) are reported and otherwise ignored.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message

import idna
from flufl.bounce import all_failures

from tacso_notify.ledger import DeliveryLedger

#: Why an address is suppressed after a bounce (shown by the suppression list).
BOUNCE_REASON = "bounced: the receiving server reported a permanent failure (RFC 3464)"


class NotAMessage(ValueError):
    """The upload is not an email message at all."""


@dataclass(frozen=True)
class BounceReport:
    """What one bounce said: addresses that failed for good, and those only delayed."""

    permanent: tuple[str, ...]
    temporary: tuple[str, ...]

    @property
    def suppressed(self) -> int:
        return len(self.permanent)


def parse_bounce(raw: bytes) -> BounceReport:
    """The failures a bounce message reports (none if it is not a bounce)."""
    if not raw.strip():
        raise NotAMessage("the body is empty")
    message: Message = email.message_from_bytes(raw, policy=email.policy.compat32)
    if not message.keys():
        raise NotAMessage("no email headers found")
    try:
        temporary, permanent = all_failures(message)
    except Exception as exc:  # a detector choking on a malformed upload: the sender's problem
        raise NotAMessage(f"could not be read as a bounce ({type(exc).__name__})") from exc
    return BounceReport(
        permanent=tuple(sorted(_address(a) for a in permanent)),
        temporary=tuple(sorted(_address(a) for a in temporary - permanent)),
    )


def ingest_bounce(ledger: DeliveryLedger, raw: bytes) -> BounceReport:
    """Parse a bounce and suppress its permanently failed addresses."""
    report = parse_bounce(raw)
    ledger.suppress((address, BOUNCE_REASON) for address in _forms(report.permanent))
    return report


def _address(value: bytes) -> str:
    return value.decode("utf-8", errors="replace").strip().strip("<>").lower()


def _forms(addresses: Iterable[str]) -> list[str]:
    """Each address as it may be stored: as reported, and with its IDNA domain in Unicode.

    notify sends to the IDNA form of a domain (``xn--...``); registry stores the Unicode form.
    """
    forms: list[str] = []
    for address in addresses:
        forms.append(address)
        local, _, domain = address.rpartition("@")
        if "xn--" in domain:
            with contextlib.suppress(idna.IDNAError):
                forms.append(f"{local}@{idna.decode(domain)}")
    return forms
