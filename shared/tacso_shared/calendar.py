"""One event, one calendar entry: the iCalendar UID every service gives an event.

notify's invitations and updates and events' public feed must name an event with the same UID
(``event-<id>@<domain>``), so that a calendar that got the invitation by mail and subscribes to
the feed shows the event once and updates it, never twice. The domain is the domain of the
sender address (``MAIL_FROM``), whichever service asks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

DEFAULT_MAIL_FROM = "events@tacso.local"
DEFAULT_UID_DOMAIN = "tacso.local"


def ical_uid(event_id: str, domain: str = DEFAULT_UID_DOMAIN) -> str:
    """The iCalendar UID of an event: stable over revisions so calendars update, not duplicate."""
    return f"event-{event_id}@{domain}"


def uid_domain(mail_from: str) -> str:
    """The UID domain for a sender address: its domain part (``tacso.local`` if it has none)."""
    return mail_from.rpartition("@")[2].strip() or DEFAULT_UID_DOMAIN


def uid_domain_from_env(env: Mapping[str, str] | None = None) -> str:
    """The UID domain configured by ``MAIL_FROM`` in ``env`` (default: the environment)."""
    env = os.environ if env is None else env
    return uid_domain(env.get("MAIL_FROM") or DEFAULT_MAIL_FROM)
