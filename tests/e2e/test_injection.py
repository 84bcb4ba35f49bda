"""Hostile input, end to end: never a new mail header, never unescaped markup, never a 500.

CR/LF goes into every field that reaches a mail header (the event's title becomes the Subject,
an organisation's name the To display name); HTML and script into every field that reaches the
HTML part; SQL, path traversal, NUL bytes and over-long values into every field and path of the
APIs. The module has a stack of its own (SQLite, then PostgreSQL), so the BA audience is exactly
the one organisation it registers.
"""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from typing import Any

import pytest
import requests

from support.smtp import RecordingSMTPServer
from support.stack import Stack

CRLF = "Workshop\r\nBcc: victim@evil.example\r\nX-Injected: yes"
SCRIPT = '<script>alert("x")</script><img src=x onerror=alert(1)>'
SQL = "'; DROP TABLE events; --"
TRAVERSAL = "../../../../etc/passwd"
HOSTILE = (CRLF, SCRIPT, SQL, TRAVERSAL, "a\x00b", "\r\n", "x" * 5000)
#: Headers a message of ours has; anything else would have been injected.
EXPECTED_HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "auto-submitted",
    "list-unsubscribe",
    "reply-to",
    "list-unsubscribe-post",
    "x-tacso-event-id",
    "x-tacso-revision",
    "x-tacso-kind",
    "x-tacso-organisation-id",
    "x-tacso-correlation-id",
    "x-correlation-id",
    "precedence",
    "x-auto-response-suppress",
}


def event_body(stack: Stack, **fields: Any) -> dict[str, Any]:
    vesta = stack.organisation("BA", "resource_centre")
    return {
        "title": f"Injection {uuid.uuid4().hex[:8]}",
        "type": "workshop",
        "country": "BA",
        "topics": ["youth"],
        "starts_at": "2026-12-15T09:00:00+00:00",
        "ends_at": "2026-12-15T15:00:00+00:00",
        "venue": {"name": "Hotel", "city": "Sarajevo"},
        "organiser_id": vesta["id"],
        **fields,
    }


class TestNeverAServerError:
    @pytest.mark.parametrize(
        "value", HOSTILE, ids=["crlf", "script", "sql", "path", "nul", "lf", "long"]
    )
    def test_in_every_field_of_an_event(self, stack: Stack, value: str) -> None:
        for fields in (
            {"title": value},
            {"description": value},
            {"venue": {"name": value, "city": "Sarajevo"}},
            {"venue": {"name": "Hotel", "city": value, "address": value}},
            {"organiser_id": value},
            {"online_url": f"https://meet.example.org/{value}", "venue": None},
        ):
            response = stack.post("events", "/api/v1/events", event_body(stack, **fields))
            assert response.status_code in (201, 422), (fields, response.text)
            if response.status_code == 201:
                created = response.json()
                # Stored and returned as sent (trimmed), as data: JSON escapes it.
                assert response.headers["Content-Type"].startswith("application/json")
                assert "X-Injected" not in response.headers
                assert created["id"]

    @pytest.mark.parametrize(
        "value", HOSTILE, ids=["crlf", "script", "sql", "path", "nul", "lf", "long"]
    )
    def test_in_every_field_of_an_organisation(self, stack: Stack, value: str) -> None:
        for fields in (
            {"name": value},
            {"email": f"{value}@example.org"},
            {"language": value},
            {"topics": [value]},
        ):
            body = {
                "name": "CSO",
                "kind": "media",
                "country": "ME",
                "email": f"m-{uuid.uuid4().hex[:8]}@example.org",
                "language": "en",
                "topics": [],
                **fields,
            }
            response = stack.post("registry", "/api/v1/organisations", body)
            assert response.status_code in (201, 422), (fields, response.text)

    @pytest.mark.parametrize("service", ["registry", "events", "notify"])
    def test_in_every_path_and_query(self, stack: Stack, service: str) -> None:
        paths = {
            "registry": ["/api/v1/organisations/{v}", "/api/v1/organisations?country={v}"],
            "events": [
                "/api/v1/events/{v}",
                "/api/v1/events?topic={v}",
                "/api/v1/events/{v}/publish",
            ],
            "notify": [
                "/api/v1/deliveries?event_id={v}",
                "/api/v1/deliveries/summary?event_id={v}",
            ],
        }[service]
        for template in paths:
            for value in (SQL, TRAVERSAL, "%00", "%0d%0aX-Injected:%20yes", SCRIPT, "x" * 3000):
                url = stack.url(service, template.format(v=value))
                method = "POST" if url.endswith("/publish") else "GET"
                response = stack.http.request(method, url, timeout=30)
                assert response.status_code < 500, (url, response.text)
                assert "X-Injected" not in response.headers
                # Echoed values are JSON data, never a page: a browser will not run them.
                assert response.headers["Content-Type"].startswith("application/json")
                assert response.headers["X-Content-Type-Options"] == "nosniff"


def _html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    content: str = part.get_content()
    return content


class TestMail:
    def test_a_hostile_event_and_name_add_no_header_and_no_markup(
        self, stack: Stack, smtp_server: RecordingSMTPServer
    ) -> None:
        tag = uuid.uuid4().hex[:8]
        cso = stack.register(
            name=f"{CRLF} {SCRIPT}",
            kind="cso",
            country="BA",
            email=f"target-{tag}@example.org",
            language="en",
            topics=["youth"],
        )
        created = stack.post(
            "events",
            "/api/v1/events",
            event_body(
                stack,
                title=f"{CRLF} {SCRIPT}",
                description=f"{SCRIPT}\r\n\r\n{CRLF}",
                venue={"name": SCRIPT, "city": f"{SCRIPT} city", "address": CRLF},
            ),
        )
        assert created.status_code == 201, created.text
        event_id = created.json()["id"]

        (mail,) = smtp_server.wait_for(
            1, timeout=60, predicate=lambda m: m.header("X-TACSO-Event-Id") == event_id
        )

        assert mail.rcpt_tos == (cso["email"],)
        message = mail.message
        names = {name.lower() for name in message}
        assert "bcc" not in names and "x-injected" not in names
        assert names <= EXPECTED_HEADERS, names - EXPECTED_HEADERS
        raw_headers = mail.data.split(b"\r\n\r\n", 1)[0].decode("ascii", errors="replace")
        assert "\r\nBcc:" not in raw_headers and "\r\nX-Injected:" not in raw_headers
        html = _html_of(message)
        assert "<script>" not in html and "<img src=x" not in html
        assert "&lt;script&gt;" in html

    def test_the_api_never_answers_html(self, stack: Stack) -> None:
        for service, path in (
            ("registry", "/api/v1/organisations/" + SCRIPT),
            ("events", "/api/v1/events/" + SCRIPT),
            ("notify", "/api/v1/nothing/" + SCRIPT),
        ):
            response = requests.get(stack.url(service, path), timeout=10)
            assert response.headers["Content-Type"].startswith("application/json")
            assert response.headers["X-Content-Type-Options"] == "nosniff"
