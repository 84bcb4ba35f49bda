"""Issue 12's acceptance on the real processes: the one-click unsubscribe URL from a mail's
header stops the next event (RFC 8058), and an erased organisation leaves notify's ledger without
its address while the counts stay."""

from __future__ import annotations

import uuid

import requests

from support.smtp import RecordingSMTPServer
from support.stack import Stack
from support.waiting import wait_until
from tacso_devtools.smtp_catcher import ReceivedMail

COUNTRY = "ME"
TOPIC = "quality-assurance"


def _mail(
    smtp: RecordingSMTPServer, event_id: str, email: str, timeout: float = 60
) -> ReceivedMail:
    [mail] = smtp.wait_for(
        1,
        timeout=timeout,
        predicate=lambda m: m.header("X-TACSO-Event-Id") == event_id and m.rcpt_tos == (email,),
    )
    return mail


def test_one_click_unsubscribe_then_erasure(stack: Stack, smtp_server: RecordingSMTPServer) -> None:
    tag = uuid.uuid4().hex[:8]
    leaving, staying = (
        stack.register(
            name=f"{name} {tag}",
            kind="cso",
            country=COUNTRY,
            email=f"{name}-{tag}@example.org",
            language="cnr",
            topics=[TOPIC],
        )
        for name in ("leaving", "staying")
    )
    first = stack.publish_event(COUNTRY, [TOPIC])
    mail = _mail(smtp_server, first["id"], leaving["email"])
    _mail(smtp_server, first["id"], staying["email"])
    assert mail.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    url = (mail.header("List-Unsubscribe") or "").strip("<>")
    assert url.startswith(stack.url("registry", "/unsubscribe/"))

    # curl -X POST -d List-Unsubscribe=One-Click <the URL from the header>
    answer = requests.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=10)
    assert answer.status_code == 200
    assert "Odjavljeni ste" in answer.text

    second = stack.publish_event(COUNTRY, [TOPIC])
    _mail(smtp_server, second["id"], staying["email"])
    assert leaving["email"] not in {r["recipient"] for r in stack.deliveries(second["id"])}
    assert not [
        m
        for m in smtp_server.messages
        if m.header("X-TACSO-Event-Id") == second["id"] and m.rcpt_tos == (leaving["email"],)
    ]

    before = stack.deliveries(first["id"])
    erased = stack.http.delete(
        stack.url("registry", f"/api/v1/organisations/{staying['id']}"), timeout=10
    )
    assert erased.status_code == 204

    def redacted() -> list[dict[str, object]] | None:
        rows = stack.deliveries(first["id"])
        mine = [r for r in rows if r["organisation_id"] == staying["id"]]
        return rows if mine and mine[0]["recipient"] == "[erased]" else None

    after = wait_until(redacted, timeout=60, interval=0.5, message="ledger not redacted")
    assert after is not None
    assert len(after) == len(before)
    assert [r["status"] for r in after] == [r["status"] for r in before]
    assert staying["email"] not in {r["recipient"] for r in after}
