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
    #: Mail to one registrant about their registration, one kind per status it reached.
    REGISTRATION_CONFIRMED = "registration_confirmed"
    REGISTRATION_WAITLISTED = "registration_waitlisted"
    REGISTRATION_OFFERED = "registration_offered"
    REGISTRATION_EXPIRED = "registration_expired"
    REGISTRATION_CANCELLED = "registration_cancelled"
    REGISTRATION_DECLINED = "registration_declined"


#: The kinds sent when an event is published (rendered by ``prepare_message``); the others are
#: rendered from their own message (``prepare_notice``, registration mail).
PUBLICATION_KINDS = (MessageKind.INVITATION, MessageKind.PRESS_NOTICE)

#: The registration mail sent when a registration reaches each status.
REGISTRATION_KINDS: dict[str, MessageKind] = {
    "confirmed": MessageKind.REGISTRATION_CONFIRMED,
    "waitlisted": MessageKind.REGISTRATION_WAITLISTED,
    "offered": MessageKind.REGISTRATION_OFFERED,
    "expired": MessageKind.REGISTRATION_EXPIRED,
    "cancelled": MessageKind.REGISTRATION_CANCELLED,
    "declined": MessageKind.REGISTRATION_DECLINED,
}


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
    #: The organisation's country, where known (its local time in transactional mail).
    country: str | None = None


@dataclass(frozen=True)
class Sender:
    """The mailbox messages come from (``From`` header and SMTP envelope sender)."""

    address: str
    name: str = "TACSO Events"
