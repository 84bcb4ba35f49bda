"""Whose deliveries a caller may read: notify's scope rules.

A country editor reads the deliveries of its country's events; another country's event is
answered as if it had none (404), so that its existence does not leak.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tacso_notify.models import Delivery
from tacso_shared.identity import Caller


def listed_countries(caller: Caller) -> tuple[str, ...]:
    """The countries a delivery list is limited to for ``caller``; empty for no limit."""
    return () if caller.is_network_admin else caller.countries


def event_countries(sessions: sessionmaker[Session], event_id: str) -> set[str]:
    """The countries of an event's deliveries (one, in practice; none before its fan-out)."""
    with sessions() as session:
        query = sa.select(Delivery.country).where(Delivery.event_id == event_id).distinct()
        return set(session.scalars(query))


def may_read_event(caller: Caller, countries: set[str]) -> bool:
    """Whether ``caller`` may read the deliveries of an event sent in ``countries``."""
    return all(caller.covers(country) for country in countries)
