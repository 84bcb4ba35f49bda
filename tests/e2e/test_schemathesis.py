"""Property-based HTTP tests from the services' own OpenAPI documents: no input is a 500, and
no response contradicts the document.

schemathesis generates requests that fit each operation's schema (positive) and requests that
break it (negative), without a credential, with the admin key and with tokens from registry (a
network admin's and a BA country editor's), against the real gunicorn processes of the e2e
stack. Every response is checked: not a server error, a body that fits the schema of its
documented status, the documented content type. The budget is small on purpose (examples per
operation below); a failure is printed by hypothesis as the smallest request that still fails,
and the counts of each run are printed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode

from support.fixtures import SUMMARY_LINES
from support.stack import ADMIN_KEY, Stack

SERVICES = ("registry", "events", "notify")
#: Examples per operation and mode: 20 operations x 2 modes x this, per database.
EXAMPLES = 40
METHODS = ("get", "post", "put", "patch", "delete")


@schemathesis.serializer("message/rfc822")
def _raw_message(_ctx: Any, value: Any) -> bytes:
    """Bounces are uploaded as raw email messages: send whatever was generated as bytes."""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", errors="surrogatepass")


def _operations(stack: Stack, service: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(stack.url(service, "/openapi.json"))
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # an operation schemathesis cannot read is a bug
        operations.append(result.ok())
    return operations


CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def _credentials(stack: Stack) -> dict[str, str | None]:
    editor_org = stack.organisation("BA", "resource_centre")["id"]
    return {
        "none": None,
        "admin-key": ADMIN_KEY,
        "admin-token": stack.token(),
        "editor-token": stack.token("country_editor", editor_org),
    }


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("service", SERVICES)
def test_no_generated_request_is_a_server_error_or_contradicts_the_schema(
    stack: Stack, service: str, mode: GenerationMode, request: pytest.FixtureRequest
) -> None:
    base_url = stack.url(service, "")
    session = requests.Session()
    credentials = _credentials(stack)
    statuses: Counter[int] = Counter()
    for operation in _operations(stack, service):

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            case=operation.as_strategy(generation_mode=mode),
            credential=st.sampled_from(sorted(credentials)),
        )
        def check(case: Any, credential: str) -> None:
            secret = credentials[credential]
            headers = {"Authorization": f"Bearer {secret}"} if secret else {}
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
            statuses[response.status_code] += 1
            assert response.status_code < 500, (case.as_curl_command(), response.text)
            case.validate_response(response, checks=CHECKS, headers=headers)

        try:
            check()
        except Unsatisfiable:
            # An operation with nothing to break (GET /topics) has no negative examples.
            assert mode is GenerationMode.NEGATIVE, operation.label
    server_errors = sum(n for code, n in statuses.items() if code >= 500)
    # Reaching this line means every response passed CHECKS: no schema violation.
    request.config.stash.setdefault(SUMMARY_LINES, []).append(
        f"schemathesis {request.node.callspec.id}: {sum(statuses.values())} requests, "
        f"{server_errors} server errors, 0 schema violations, "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    assert server_errors == 0


def _openapi_routes(stack: Stack, service: str) -> list[tuple[str, str]]:
    document = requests.get(stack.url(service, "/openapi.json"), timeout=10).json()
    routes = [("get", "/healthz")]
    for path, item in document["paths"].items():
        concrete = path.replace("{", "").replace("}", "")  # {event_id} -> event_id: some id
        routes += [(method, concrete) for method in item if method in METHODS]
    return routes


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("depth", [100, 10_000])
@pytest.mark.parametrize("with_key", [False, True], ids=["no-key", "key"])
def test_bodies_nested_deeper_than_the_limit_are_never_a_server_error(
    stack: Stack, service: str, depth: int, with_key: bool
) -> None:
    headers = {"Content-Type": "application/json"}
    if with_key:
        headers["Authorization"] = f"Bearer {ADMIN_KEY}"
    nested = "[" * depth + '"\\u0000"' + "]" * depth
    for body in (nested, '{"name": ' + nested + "}"):
        for method, path in _openapi_routes(stack, service):
            response = requests.request(
                method, stack.url(service, path), data=body, headers=headers, timeout=30
            )
            assert response.status_code < 500, (method, path, response.text)
            if response.status_code >= 400 or method != "get":
                # A refusal is JSON; a GET may be a page or a feed (the listing, the .ics)
                # that ignores a body.
                assert response.headers["Content-Type"].startswith("application/json"), (
                    method,
                    path,
                    response.headers["Content-Type"],
                )
