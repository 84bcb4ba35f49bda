"""Public listings are served from memory for a moment, and never stale after a local write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask.testing import FlaskClient

from tacso_events.bootstrap import Events
from tacso_events.listing_cache import ListingCache
from tacso_events.models import Event

Create = Callable[..., dict[str, Any]]


def test_a_listing_is_served_from_memory_until_this_process_writes(
    client: FlaskClient, create_event: Create, events: Events
) -> None:
    first = create_event(title="First")
    listed = client.get("/api/v1/events?country=BA")
    assert [e["id"] for e in listed.get_json()["items"]] == [first["id"]]
    assert listed.headers["Cache-Control"] in ("public, max-age=1", "max-age=1, public")

    # A change that bypasses this process (another replica) is not seen until the entry expires…
    with events.engine.begin() as conn:
        conn.execute(sa.update(Event).values(title="Renamed elsewhere"))
    assert client.get("/api/v1/events?country=BA").get_json()["items"][0]["title"] == "First"

    # …but a write through this process clears the cache at once.
    second = create_event(
        title="Second", starts_at="2026-12-31T09:00:00+01:00", ends_at="2026-12-31T12:00:00+01:00"
    )
    items = client.get("/api/v1/events?country=BA").get_json()["items"]
    assert [e["id"] for e in items] == [first["id"], second["id"]]
    assert items[0]["title"] == "Renamed elsewhere"


def test_zero_seconds_turns_the_cache_off() -> None:
    cache = ListingCache(0)
    cache.put("/api/v1/events", b"[]")
    assert cache.get("/api/v1/events") is None


def test_entries_are_kept_per_query() -> None:
    cache = ListingCache(60)
    cache.put("/api/v1/events?country=BA", b"ba")
    cache.put("/api/v1/events?country=RS", b"rs")
    assert cache.get("/api/v1/events?country=BA") == b"ba"
    cache.clear()
    assert cache.get("/api/v1/events?country=RS") is None
