"""notify's own vocabulary: which mail, to whom, from whom (no I/O, no framework)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class MessageKind(enum.StrEnum):
    """Which message is sent about an event (also the ``X-TACSO-Kind`` header value)."""

    INVITATION = "invitation"
    PRESS_NOTICE = "press_notice"
    #: A published event changed materially (date, time, venue, online link).
    UPDATE = "update"
    #: A published event was cancelled.
    CANCELLATION = "cancellation"
    #: A confirmed registrant is reminded some time before the start.
    REMINDER = "reminder"


#: The kinds sent when an event is published (rendered by ``prepare_message``); the others are
#: rendered from their own message by ``prepare_notice``.
PUBLICATION_KINDS = (MessageKind.INVITATION, MessageKind.PRESS_NOTICE)


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
