"""Fixtures of the authorisation tests: the three services in-process (``support.world``).

Test modules use these only as fixtures (never ``from conftest import``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.world import World, add_deliveries, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The three services with seeded organisations, a token per role, deliveries in BA and RS."""
    with build_world(tmp_path_factory.mktemp("authz")) as world:
        add_deliveries(world.notify, "ev-ba", "BA")
        add_deliveries(world.notify, "ev-rs", "RS")
        yield world
