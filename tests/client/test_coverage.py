"""The client covers every operation of the three OpenAPI documents, and nothing else.

The client declares what it covers (``tacso_client.operations()``: method name -> service, HTTP
method, path template); the documents come from the three services built in-process from their
composition roots. A failure names the operations, so adding one is: write its method.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.world import World, build_world
from tacso_client import operations

pytestmark = pytest.mark.integration

Operation = tuple[str, str, str]


@pytest.fixture(scope="module")
def documented(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[Operation]]:
    """Every (service, METHOD, path) of the three live OpenAPI documents."""
    workdir: Path = tmp_path_factory.mktemp("client-openapi")
    world: World
    with build_world(workdir) as world:
        found: set[Operation] = set()
        for service, client in world.clients.items():
            paths = client.get("/openapi.json").get_json()["paths"]
            for path, item in paths.items():
                found |= {(service, m.upper(), path) for m in item if m != "parameters"}
        yield found


def _lines(operations: set[Operation]) -> str:
    return "\n".join(f"  {s} {m} {p}" for s, m, p in sorted(operations))


def test_every_documented_operation_has_a_client_method(documented: set[Operation]) -> None:
    covered = set(operations().values())

    missing = documented - covered

    assert not missing, f"operations the client lacks ({len(missing)}):\n{_lines(missing)}"


def test_every_client_method_is_a_documented_operation(documented: set[Operation]) -> None:
    stale = {name: op for name, op in operations().items() if op not in documented}

    assert not stale, "client methods for operations that do not exist:\n" + "\n".join(
        f"  {name}: {' '.join(op)}" for name, op in sorted(stale.items())
    )
