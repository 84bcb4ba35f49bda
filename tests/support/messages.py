"""Messages for tests, built through their contracts: a contract change breaks their tests."""

from __future__ import annotations

from typing import Any

from tacso_shared.contracts import EVENT_PUBLISHED_V1, EventPublished, Venue


def event_published(*, check: bool = True, **fields: Any) -> EventPublished:
    """An ``EventPublished`` from plain field values (a venue may be given as a dict).

    The message is checked against its contract (``check=False`` for a test that needs a message
    the contract would refuse); a field the contract does not have is a TypeError.
    """
    venue = fields.get("venue")
    if isinstance(venue, dict):
        fields["venue"] = Venue(**venue)
    fields["topics"] = tuple(fields.get("topics", ()))
    message = EventPublished(**fields)
    if check:
        EVENT_PUBLISHED_V1.dump(message)
    return message
