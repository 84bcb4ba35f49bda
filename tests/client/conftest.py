"""Fixtures of the client's tests: the real stack (SQLite) and a client of it with the admin key."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from requests.auth import AuthBase

from support.smtp import RecordingSMTPServer
from support.stack import ADMIN_KEY, Stack, running_stack
from tacso_client import ApiKey, TacsoClient


# Package scope (tests/client is a package): the stack stops after the client's tests instead of
# idling through the rest of the session.
@pytest.fixture(scope="package")
def stack(
    tmp_path_factory: pytest.TempPathFactory, smtp_server: RecordingSMTPServer
) -> Iterator[Stack]:
    """The real processes, once for the client's tests (they tell their data apart)."""
    workdir = tmp_path_factory.mktemp("client-stack")
    with running_stack(workdir, "sqlite", smtp_server.host, smtp_server.port) as stack:
        yield stack


ClientOf = Callable[[AuthBase | None], TacsoClient]


@pytest.fixture
def client_of(stack: Stack) -> Iterator[ClientOf]:
    """Make clients of ``stack``'s three APIs with a given credential; closed after the test."""
    made: list[TacsoClient] = []

    def make(auth: AuthBase | None) -> TacsoClient:
        client = TacsoClient(
            registry_url=stack.url("registry", ""),
            events_url=stack.url("events", ""),
            notify_url=stack.url("notify", ""),
            auth=auth,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def tacso(client_of: ClientOf) -> TacsoClient:
    """A client with the admin key (a network admin)."""
    return client_of(ApiKey(ADMIN_KEY))
