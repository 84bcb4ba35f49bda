"""Double opt-in end to end: a self-registered CSO gets invitations only after it confirms.

The real processes (registry, its relay, notify's accounts and invitations workers), the real
broker and SMTP: the confirmation mail comes from notify, its link is opened on registry's page.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import requests

from support.smtp import RecordingSMTPServer
from support.stack import Stack
from tacso_devtools.smtp_catcher import ReceivedMail

COUNTRY = "AL"  # this module's own stack: no other test's events are in it


def _event(stack: Stack, tag: str) -> dict[str, Any]:
    organiser = stack.organisation(COUNTRY, "tacso_office")
    response = stack.post(
        "events",
        "/api/v1/events",
        {
            "title": f"Youth forum {tag}",
            "type": "conference",
            "country": COUNTRY,
            "topics": ["youth"],
            "starts_at": "2026-12-15T09:00:00+00:00",
            "ends_at": "2026-12-15T15:30:00+00:00",
            "online_url": "https://meet.example.org/youth",
            "organiser_id": organiser["id"],
        },
    )
    assert response.status_code == 201, response.text
    event: dict[str, Any] = response.json()
    return event


def _invitations(smtp: RecordingSMTPServer, event_id: str, count: int) -> list[ReceivedMail]:
    return smtp.wait_for(
        count,
        timeout=60,
        predicate=lambda m: (
            m.header("X-TACSO-Event-Id") == event_id and m.header("X-TACSO-Kind") == "invitation"
        ),
    )


def _text(mail: ReceivedMail) -> str:
    body = mail.message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def test_a_signed_up_cso_is_invited_only_after_it_confirms(
    stack: Stack, smtp_server: RecordingSMTPServer
) -> None:
    tag = uuid.uuid4().hex[:8]
    address = f"signup-{tag}@example.org"
    known = stack.register(
        name=f"Known {tag}",
        kind="cso",
        country=COUNTRY,
        email=f"known-{tag}@example.org",
        language="sq",
        topics=["youth"],
    )
    answer = requests.post(
        stack.url("registry", "/api/v1/signups"),
        json={
            "name": f"Shoqata Rinia {tag}",
            "kind": "cso",
            "country": COUNTRY,
            "topics": ["youth"],
            "language": "sq",
            "email": address,
            "consent_text_version": "signup-2026-11",
            "consent": True,
        },
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    (confirmation,) = smtp_server.wait_for(1, timeout=60, predicate=lambda m: address in m.rcpt_tos)
    assert confirmation.header("X-TACSO-Kind") == "signup_confirmation"
    assert confirmation.header("Subject") == "Konfirmoni regjistrimin në rrjetin TACSO"
    found = re.search(r"(http://\S+/signup/confirm/\S+)", _text(confirmation))
    assert found is not None
    link = found.group(1)

    before = _event(stack, f"before-{tag}")
    invited = _invitations(smtp_server, before["id"], 1)
    assert [m.rcpt_tos[0] for m in invited] == [known["email"]]

    page = requests.get(link, timeout=10)
    assert page.status_code == 200
    assert '<html lang="sq">' in page.text
    assert requests.post(link, timeout=10).status_code == 200

    after = _event(stack, f"after-{tag}")
    invited = _invitations(smtp_server, after["id"], 2)
    assert sorted(m.rcpt_tos[0] for m in invited) == sorted([known["email"], address])
    assert not [
        m
        for m in smtp_server.messages
        if m.header("X-TACSO-Event-Id") == before["id"] and address in m.rcpt_tos
    ]
