"""notify's own vocabulary: which mail, to whom, from whom (no I/O, no framework)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class MessageKind(enum.StrEnum):
    """Which message is sent about an event (also the ``X-TACSO-Kind`` header value)."""

    INVITATION = "invitation"
    PRESS_NOTICE = "press_notice"


@dataclass(frozen=True)
class Audience:
    """Which organisations a kind of mail goes to."""

    organisation_kind: str
    match_topics: bool


AUDIENCES: dict[MessageKind, Audience] = {
    # CSOs working on any of the event's topics (all CSOs when the event has none).
    MessageKind.INVITATION: Audience("cso", match_topics=True),
    # Every media outlet of the country, whatever the topics.
    MessageKind.PRESS_NOTICE: Audience("media", match_topics=False),
}


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
