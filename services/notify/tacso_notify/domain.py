"""notify's own vocabulary: which mail, to whom, from whom (no I/O, no framework)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class MessageKind(enum.StrEnum):
    """Which message is sent about an event (also the ``X-TACSO-Kind`` header value)."""

    INVITATION = "invitation"
    PRESS_NOTICE = "press_notice"


#: Kinds of account mail in the ledger (one mail per registry message, see ``account_mail``).
SIGNUP_CONFIRMATION = "signup_confirmation"
SIGNUP_KNOWN_ADDRESS = "signup_known_address"
USER_INVITATION = "user_invitation"
ACCOUNT_KINDS = (SIGNUP_CONFIRMATION, SIGNUP_KNOWN_ADDRESS, USER_INVITATION)


@dataclass(frozen=True)
class Recipient:
    """An organisation a message is addressed to."""

    organisation_id: str
    name: str
    email: str
    language: str = "en"


@dataclass(frozen=True)
class Sender:
    """The mailbox messages come from (``From`` header and SMTP envelope sender)."""

    address: str
    name: str = "TACSO Events"
