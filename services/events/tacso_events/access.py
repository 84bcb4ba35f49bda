"""Who may create, see and publish which events: the events service's scope rules.

A country editor works for a Resource Centre or TACSO office: it publishes in its own country
and only as its own organisation. A draft is not public: another country's editor is told it does
not exist (404), not that it may not see it.
"""

from __future__ import annotations

from tacso_events.models import DRAFT, Event
from tacso_shared.identity import COUNTRY_EDITOR, Caller


def may_create(caller: Caller, country: str, organiser_id: str) -> bool:
    """Whether ``caller`` may create an event in ``country`` organised by ``organiser_id``."""
    if caller.is_network_admin:
        return True
    return (
        caller.role == COUNTRY_EDITOR
        and caller.covers(country)
        and caller.organisation_id == organiser_id
    )


def may_see(caller: Caller | None, event: Event) -> bool:
    """Whether ``caller`` (``None``: anyone) may see ``event``: a draft only within scope.

    A cancelled event stays public: its page shows the cancellation and the reason.
    """
    if event.status != DRAFT:
        return True
    if caller is None:
        return False
    return caller.is_network_admin or (
        caller.role == COUNTRY_EDITOR and caller.covers(event.country)
    )


def may_publish(caller: Caller, event: Event) -> bool:
    """Whether ``caller`` may publish ``event`` (its own organisation's, in its country)."""
    return may_create(caller, event.country, event.organiser_id)
