"""Bad input gets a clear 4xx naming the field and the reason; never a 500."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from support.stack import Stack


def _event(stack: Stack, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Quality assurance training",
        "type": "training",
        "country": "RS",
        "topics": ["quality-assurance"],
        "starts_at": "2026-12-20T09:00:00+01:00",
        "ends_at": "2026-12-20T17:00:00+01:00",
        "online_url": "https://meet.example.org/qa",
        "organiser_id": stack.organisation("RS", "resource_centre")["id"],
    }
    body.update(over)
    return {k: v for k, v in body.items() if v is not ...}


def _org(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Mladi Srbije",
        "kind": "cso",
        "country": "RS",
        "email": f"mladi-{uuid.uuid4().hex[:8]}@example.org",
        "language": "sr",
        "topics": ["youth"],
    }
    body.update(over)
    return {k: v for k, v in body.items() if v is not ...}


# (case, service, path, body builder, headers, expected status, field named in the errors)
CASES: list[tuple[str, str, str, Any, dict[str, str] | None, int, str | None]] = [
    (
        "org: name missing",
        "registry",
        "/api/v1/organisations",
        lambda s: _org(name=...),
        None,
        422,
        "name",
    ),
    (
        "org: bad country",
        "registry",
        "/api/v1/organisations",
        lambda s: _org(country="FR"),
        None,
        422,
        "country",
    ),
    (
        "org: bad email",
        "registry",
        "/api/v1/organisations",
        lambda s: _org(email="not-an-email"),
        None,
        422,
        "email",
    ),
    (
        "org: unknown topic",
        "registry",
        "/api/v1/organisations",
        lambda s: _org(topics=["astrology"]),
        None,
        422,
        "topics",
    ),
    (
        "org: bad kind",
        "registry",
        "/api/v1/organisations",
        lambda s: _org(kind="company"),
        None,
        422,
        "kind",
    ),
    (
        "org: bad language",
        "registry",
        "/api/v1/organisations",
        lambda s: _org(language="de"),
        None,
        422,
        "language",
    ),
    (
        "org: no key",
        "registry",
        "/api/v1/organisations",
        lambda s: _org(),
        {"Authorization": ""},
        401,
        None,
    ),
    (
        "org: wrong key",
        "registry",
        "/api/v1/organisations",
        lambda s: _org(),
        {"Authorization": "Bearer nope"},
        401,
        None,
    ),
    (
        "event: title missing",
        "events",
        "/api/v1/events",
        lambda s: _event(s, title=...),
        None,
        422,
        "title",
    ),
    (
        "event: bad country",
        "events",
        "/api/v1/events",
        lambda s: _event(s, country="XX"),
        None,
        422,
        "country",
    ),
    (
        "event: bad type",
        "events",
        "/api/v1/events",
        lambda s: _event(s, type="party"),
        None,
        422,
        "type",
    ),
    (
        "event: unknown topic",
        "events",
        "/api/v1/events",
        lambda s: _event(s, topics=["astrology"]),
        None,
        422,
        "topics",
    ),
    (
        "event: ends before starts",
        "events",
        "/api/v1/events",
        lambda s: _event(s, ends_at="2026-12-20T08:00:00+01:00"),
        None,
        422,
        "ends_at",
    ),
    (
        "event: time without offset",
        "events",
        "/api/v1/events",
        lambda s: _event(s, starts_at="2026-12-20T09:00:00"),
        None,
        422,
        "starts_at",
    ),
    (
        "event: no venue nor link",
        "events",
        "/api/v1/events",
        lambda s: _event(s, online_url=...),
        None,
        422,
        "venue",
    ),
    (
        "event: organiser from another country",
        "events",
        "/api/v1/events",
        lambda s: _event(s, organiser_id=s.organisation("BA", "resource_centre")["id"]),
        None,
        422,
        "organiser_id",
    ),
    (
        "event: organiser unknown",
        "events",
        "/api/v1/events",
        lambda s: _event(s, organiser_id=str(uuid.uuid4())),
        None,
        422,
        "organiser_id",
    ),
    (
        "event: organiser is a CSO",
        "events",
        "/api/v1/events",
        lambda s: _event(s, organiser_id=s.register(**_org())["id"]),
        None,
        422,
        "organiser_id",
    ),
    (
        "event: no key",
        "events",
        "/api/v1/events",
        lambda s: _event(s),
        {"Authorization": ""},
        401,
        None,
    ),
    (
        "event: wrong key",
        "events",
        "/api/v1/events",
        lambda s: _event(s),
        {"Authorization": "Bearer x"},
        401,
        None,
    ),
]


@pytest.mark.parametrize(
    ("service", "path", "build", "headers", "status", "field"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_invalid_request_gets_the_documented_4xx(
    stack: Stack,
    service: str,
    path: str,
    build: Any,
    headers: dict[str, str] | None,
    status: int,
    field: str | None,
) -> None:
    response = stack.http.post(
        stack.url(service, path), json=build(stack), headers=headers, timeout=10
    )
    assert response.status_code == status, response.text
    body = response.json()
    if field is not None:
        assert field in body["errors"]["json"], body


@pytest.mark.parametrize(
    "service,path", [("registry", "/api/v1/organisations"), ("events", "/api/v1/events")]
)
def test_malformed_json_is_a_400(stack: Stack, service: str, path: str) -> None:
    response = stack.http.post(
        stack.url(service, path),
        data=b'{"title": ',
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "service,path",
    [
        ("registry", f"/api/v1/organisations/{uuid.uuid4()}"),
        ("events", f"/api/v1/events/{uuid.uuid4()}"),
        ("events", "/api/v1/nothing-here"),
    ],
)
def test_unknown_ids_are_a_404(stack: Stack, service: str, path: str) -> None:
    response = stack.get(service, path)
    assert response.status_code == 404
    assert response.json()["code"] == 404


def test_reading_deliveries_needs_the_key(stack: Stack) -> None:
    assert requests.get(stack.url("notify", "/api/v1/deliveries"), timeout=10).status_code == 401
    assert stack.get("notify", "/api/v1/deliveries", status="bogus").status_code == 422


# ---- the HTTP edge, through the real gunicorn (issue 8: points 5, 6, 8) ----------------------
SERVICES = ("registry", "events", "notify")
NO_KEY = {"Authorization": ""}


def _raw(stack: Stack, method: str, service: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, stack.url(service, path), timeout=30, **kwargs)


@pytest.mark.parametrize("service", SERVICES)
def test_a_deep_body_with_a_nul_is_not_a_500_without_a_key(stack: Stack, service: str) -> None:
    body = "[" * 10_000 + '"\\u0000"' + "]" * 10_000
    response = _raw(
        stack, "POST", service, "/healthz", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 405
    assert response.json()["code"] == 405
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ('{"name": ' + "[" * 10_000 + "]" * 10_000 + "}", 400, None),
        ('{"name": "a\\udfff", "kind": "cso"}', 422, "name"),
        ('{"name": "x", "topics": [' + "1" * 5000 + "]}", 422, None),
        ('{"name": NaN}', 400, None),
    ],
    ids=["deep", "lone-surrogate", "5000-digits", "nan"],
)
def test_bodies_json_cannot_hold_safely_are_refused_with_the_reason(
    stack: Stack, body: str, status: int, field: str | None
) -> None:
    response = stack.http.post(
        stack.url("registry", "/api/v1/organisations"),
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == status, response.text
    assert response.json()["message"]
    if field is not None:
        assert field in response.json()["errors"]["json"]


def test_a_large_body_is_a_413_before_the_key_and_on_a_route_without_a_body(stack: Stack) -> None:
    body = b"x" * (2 * 1024 * 1024)  # twice the default MAX_CONTENT_LENGTH
    for method, service, path in (
        ("GET", "events", "/api/v1/events"),
        ("POST", "registry", "/api/v1/organisations"),
    ):
        response = _raw(stack, method, service, path, data=body, headers=NO_KEY)
        assert response.status_code == 413, (path, response.text)
        assert response.json()["code"] == 413


def test_a_small_body_sent_to_a_route_that_takes_none_is_ignored(stack: Stack) -> None:
    response = _raw(stack, "GET", "events", "/api/v1/events", data=b"[" * 10_000)
    assert response.status_code == 200


@pytest.mark.parametrize("length", [5_000, 8_000])
def test_a_long_url_is_a_json_414_not_gunicorns_html(stack: Stack, length: int) -> None:
    response = _raw(stack, "GET", "events", "/api/v1/events?country=" + "B" * length)
    assert response.status_code == 414
    assert response.json()["code"] == 414


def test_a_long_header_is_a_json_431_not_gunicorns_html(stack: Stack) -> None:
    response = _raw(stack, "GET", "events", "/api/v1/events", headers={"X-Long": "a" * 12_000})
    assert response.status_code == 431
    assert response.json()["code"] == 431


@pytest.mark.parametrize(
    ("service", "path"), [("events", "/api/v1/events"), ("notify", "/api/v1/deliveries")]
)
def test_a_405_names_the_allowed_methods(stack: Stack, service: str, path: str) -> None:
    response = stack.http.delete(stack.url(service, path), timeout=10)
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/plain", '{"name": "x"}'), ("application/x-www-form-urlencoded", "name=x")],
)
def test_a_body_that_is_not_json_is_a_415(stack: Stack, content_type: str, body: str) -> None:
    response = stack.http.post(
        stack.url("registry", "/api/v1/organisations"),
        data=body,
        headers={"Content-Type": content_type},
        timeout=10,
    )
    assert response.status_code == 415
    assert response.json()["code"] == 415


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("events", "/api/v1/events"),
        ("registry", "/api/v1/organisations"),
        ("notify", "/api/v1/deliveries"),
    ],
)
def test_unicode_digits_are_not_page_numbers(stack: Stack, service: str, path: str) -> None:
    response = stack.get(service, path, page="١")
    assert response.status_code == 422
    assert "page" in response.json()["errors"]["query"]
