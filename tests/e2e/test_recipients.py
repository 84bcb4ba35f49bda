"""Recipients whose addresses are internationalised, end to end (issue: one bad address must not
stall a country).

The module has a stack of its own (SQLite, then PostgreSQL), so its BA audience is exactly the 600
organisations it registers.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest

from support.smtp import RecordingSMTPServer
from support.stack import Stack
from support.waiting import wait_until
from tacso_devtools.smtp_catcher import ReceivedMail

IDN_DOMAINS = 5
UTF8_LOCAL_PARTS = 3
AUDIENCE = 600


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def register_audience(stack: Stack) -> dict[str, list[str]]:
    """600 BA CSOs on human rights: 5 with IDN domains, 3 with UTF-8 local parts."""
    tag = _tag()
    emails: dict[str, list[str]] = {"plain": [], "idn": [], "utf8": []}
    for i in range(AUDIENCE):
        if i < IDN_DOMAINS:
            email, group = f"info{i}-{tag}@žene{i}.example.ba", "idn"
        elif i < IDN_DOMAINS + UTF8_LOCAL_PARTS:
            email, group = f"žena{i}-{tag}@example.ba", "utf8"
        else:
            email, group = f"cso{i}-{tag}@example.org", "plain"
        stack.register(
            name=f"Udruženje građana {i}",
            kind="cso",
            country="BA",
            email=email,
            language="bs",
            topics=["human-rights"],
        )
        emails[group].append(email)
    return emails


def publish_ba_event(stack: Stack) -> str:
    vesta = stack.organisation("BA", "resource_centre")
    response = stack.post(
        "events",
        "/api/v1/events",
        {
            "title": f"Ljudska prava {_tag()}",
            "type": "workshop",
            "country": "BA",
            "topics": ["human-rights"],
            "starts_at": "2026-12-15T09:00:00+00:00",
            "ends_at": "2026-12-15T15:00:00+00:00",
            "venue": {"name": "Hotel Europe", "city": "Sarajevo"},
            "organiser_id": vesta["id"],
        },
    )
    assert response.status_code == 201, response.text
    event_id: str = response.json()["id"]
    return event_id


def ascii_form(email: str) -> str:
    """The address with its domain in IDNA form (Python's own codec: independent of notify's)."""
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.encode('idna').decode('ascii')}"


def mail_of(smtp: RecordingSMTPServer, event_id: str) -> list[ReceivedMail]:
    return [m for m in smtp.messages if m.header("X-TACSO-Event-Id") == event_id]


def settled(stack: Stack, event_id: str) -> list[dict[str, Any]] | None:
    """The event's invitations once none is pending any more."""
    rows = stack.deliveries(event_id, kind="invitation")
    if len(rows) == AUDIENCE and all(r["status"] != "pending" for r in rows):
        return rows
    return None


def dead_letters(stack: Stack) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(stack.env["AMQP_URL"]))
    try:
        channel = connection.channel()
        return sum(
            channel.queue_declare(queue, passive=True).method.message_count
            for queue in ("notify.invitations.dead", "notify.press_notices.dead")
        )
    finally:
        connection.close()


@pytest.fixture
def smtputf8_server(smtp_server: RecordingSMTPServer) -> Iterator[Any]:
    """Switch the shared SMTP server's SMTPUTF8 offer (same port); restored afterwards."""

    def switch(offered: bool) -> None:
        if smtp_server.smtputf8 != offered:
            smtp_server.smtputf8 = offered
            smtp_server.restart()

    yield switch
    switch(True)


class TestInternationalisedAddresses:
    def test_a_country_with_idn_and_utf8_addresses_is_served_in_one_pass(
        self, stack: Stack, smtp_server: RecordingSMTPServer, smtputf8_server: Any
    ) -> None:
        emails = register_audience(stack)

        # A server without SMTPUTF8: the 3 UTF-8 local parts fail alone, everyone else is sent.
        smtputf8_server(False)
        first = publish_ba_event(stack)
        rows = wait_until(functools.partial(settled, stack, first), timeout=120, message=first)
        assert rows is not None

        by_status = {r["recipient"]: r for r in rows}
        failed = sorted(e for e, r in by_status.items() if r["status"] == "failed")
        assert failed == sorted(emails["utf8"])
        assert all(by_status[e]["last_error"] == "server does not support SMTPUTF8" for e in failed)
        sent = [r for r in rows if r["status"] == "sent"]
        assert len(sent) == AUDIENCE - UTF8_LOCAL_PARTS
        assert all(r["attempts"] == 1 for r in rows), "everything settled in the first pass"
        delivered = sorted(m.rcpt_tos[0] for m in mail_of(smtp_server, first))
        assert delivered == sorted(emails["plain"] + [ascii_form(e) for e in emails["idn"]])
        assert dead_letters(stack) == 0

        # With SMTPUTF8 offered, all 600 are sent.
        smtputf8_server(True)
        second = publish_ba_event(stack)
        rows = wait_until(functools.partial(settled, stack, second), timeout=120, message=second)
        assert rows is not None
        assert [r for r in rows if r["status"] != "sent"] == []
        delivered = sorted(m.rcpt_tos[0] for m in mail_of(smtp_server, second))
        assert delivered == sorted(
            emails["plain"] + emails["utf8"] + [ascii_form(e) for e in emails["idn"]]
        )
        assert dead_letters(stack) == 0


#: language -> (the subject's first word, the date as Babel writes it in that language)
IN_THEIR_LANGUAGE = {
    "en": ("Invitation:", "Tuesday, December 15, 2026"),
    "sq": ("Ftesë:", "e martë, 15 dhjetor 2026"),
    "bs": ("Pozivnica:", "utorak, 15. decembar 2026."),
    "hr": ("Poziv:", "utorak, 15. prosinca 2026."),
    "sr": ("Позив:", "уторак, 15. децембар 2026."),
    "sr-Latn": ("Poziv:", "utorak, 15. decembar 2026."),
    "mk": ("Покана:", "вторник, 15 декември 2026\u202fг."),
    "tr": ("Davet:", "15 Aralık 2026 Salı"),
    "cnr": ("Poziv:", "utorak, 15. decembar 2026."),
}


class TestEveryRecipientInTheirLanguage:
    def test_an_invitation_reaches_each_organisation_in_its_own_language(
        self, stack: Stack, smtp_server: RecordingSMTPServer
    ) -> None:
        tag = _tag()
        emails = {}
        for language in IN_THEIR_LANGUAGE:
            emails[language] = f"{language.lower()}-{tag}@example.org"
            stack.register(
                name=f"Organizacija {language}",
                kind="cso",
                country="MK",
                email=emails[language],
                language=language,
                topics=["youth"],
            )
        mcic = stack.organisation("MK", "resource_centre")
        response = stack.post(
            "events",
            "/api/v1/events",
            {
                "title": f"Youth forum {tag}",
                "type": "conference",
                "country": "MK",
                "topics": ["youth"],
                "starts_at": "2026-12-15T09:00:00+00:00",
                "ends_at": "2026-12-15T15:00:00+00:00",
                "venue": {"name": "MCIC", "city": "Skopje"},
                "organiser_id": mcic["id"],
            },
        )
        assert response.status_code == 201, response.text
        event_id = response.json()["id"]

        mails = smtp_server.wait_for(
            len(emails), timeout=60, predicate=lambda m: m.header("X-TACSO-Event-Id") == event_id
        )
        by_address = {m.rcpt_tos[0]: m for m in mails}
        for language, (subject, date) in IN_THEIR_LANGUAGE.items():
            mail = by_address[emails[language]]
            assert (mail.subject or "").startswith(subject), (language, mail.subject)
            assert date in mail.body_text(), (language, mail.body_text()[:400])
            assert "10:00" in mail.body_text(), "Skopje's local time"
