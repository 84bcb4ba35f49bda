"""Invitations people answer, end to end on real processes (issue 10's scenario).

A BA event with 3 seats invites 5 CSOs. Four answer "I will attend" through the personal link of
their invitation (a POST from the RSVP page, as the page's form sends it): 3 are confirmed, one
waits at place 1, each gets the mail of its status. A confirmed one cancels through the API: the
waiting one is offered the seat, claims it through its link and is confirmed. An offer left
unclaimed (the claim window is seconds long here) expires and passes to the next in line. The
ledger shows every mail once. Then a real browser (Debian's Chromium, Playwright) opens an
invitation's link and answers on the page.
"""

from __future__ import annotations

import collections
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from support.browser import CHROMIUM, chromium_context
from support.smtp import RecordingSMTPServer
from support.stack import Stack, running_stack
from support.waiting import wait_until
from tacso_devtools.smtp_catcher import ReceivedMail

#: A freed seat is held this long (hours): long enough to claim it by link, short enough that
#: an unclaimed one expires within the test.
CLAIM_HOURS = "0.004"  # 14.4 s
RSVP_LINK = re.compile(r"(https?://[^\s\"<>]+/rsvp/[A-Za-z0-9._\-]+)")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    smtp_server: RecordingSMTPServer,
) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp(f"rsvp-{request.param}")
    env = {"WAITLIST_CLAIM_HOURS": CLAIM_HOURS, "SCHEDULER_POLL_INTERVAL": "0.2"}
    with running_stack(
        workdir, request.param, smtp_server.host, smtp_server.port, extra_env=env
    ) as stack:
        yield stack


def _csos(stack: Stack, n: int, topic: str) -> list[dict[str, Any]]:
    tag = f"rsvp-{uuid.uuid4().hex[:6]}"
    return stack.register_many(n, "cso", "BA", [topic], tag)


def _mail(smtp: RecordingSMTPServer, event_id: str, kind: str, email: str) -> list[ReceivedMail]:
    return [
        m
        for m in smtp.messages
        if m.header("X-TACSO-Event-Id") == event_id
        and m.header("X-TACSO-Kind") == kind
        and email in m.rcpt_tos
    ]


def _wait_mail(
    smtp: RecordingSMTPServer, event_id: str, kind: str, email: str, timeout: float = 60
) -> ReceivedMail:
    found = wait_until(
        lambda: _mail(smtp, event_id, kind, email),
        timeout=timeout,
        message=f"{kind} mail to {email} for {event_id}",
    )
    assert found
    return found[0]


def _link(mail: ReceivedMail) -> str:
    found = RSVP_LINK.search(mail.body_text())
    assert found, mail.body_text()
    return found.group(1)


def _answer(link: str, **form: str) -> requests.Response:
    """What the RSVP page's form sends: a POST to the page's own URL (no redirect followed)."""
    return requests.post(link, data=form, timeout=10, allow_redirects=False)


def _registrations(stack: Stack, event_id: str) -> dict[str, dict[str, Any]]:
    response = stack.get("events", f"/api/v1/events/{event_id}/registrations", page_size=100)
    assert response.status_code == 200, response.text
    return {r["organisation_id"]: r for r in response.json()["items"]}


def test_the_waitlist_moves_by_itself_and_every_mail_goes_once(
    stack: Stack, smtp_server: RecordingSMTPServer
) -> None:
    c1, c2, c3, c4, c5 = _csos(stack, 5, "youth")
    event = stack.publish_event("BA", ["youth"], capacity=3)
    eid = event["id"]
    stack.wait_all_sent(eid, "invitation", 5)
    links = {
        org["id"]: _link(_wait_mail(smtp_server, eid, "invitation", org["email"]))
        for org in (c1, c2, c3, c4, c5)
    }
    # A GET (a mail scanner, a link preview) changes nothing.
    page = requests.get(links[c1["id"]] + "?answer=attend", timeout=10)
    assert page.status_code == 200 and "<form" in page.text
    assert _registrations(stack, eid) == {}

    # Four answer "I will attend": three seats, one waits.
    for org in (c1, c2, c3, c4):
        response = _answer(links[org["id"]], answer="attend", seats="1")
        assert response.status_code == 303, response.text
    for org in (c1, c2, c3):
        _wait_mail(smtp_server, eid, "registration_confirmed", org["email"])
    waiting = _wait_mail(smtp_server, eid, "registration_waitlisted", c4["email"])
    assert " 1" in waiting.body_text()  # place 1
    state = _registrations(stack, eid)
    assert [state[o["id"]]["status"] for o in (c1, c2, c3, c4)] == [
        "confirmed",
        "confirmed",
        "confirmed",
        "waitlisted",
    ]
    assert state[c4["id"]]["position"] == 1
    # Answering twice changes nothing and sends nothing more.
    assert _answer(links[c1["id"]], answer="attend", seats="1").status_code == 303

    # c1 cancels through the API: c4 is offered the seat and claims it through its link.
    cancelled = stack.http.delete(
        stack.url("events", f"/api/v1/events/{eid}/registrations/{state[c1['id']]['id']}"),
        timeout=10,
    )
    assert cancelled.status_code == 204, cancelled.text
    offer = _wait_mail(smtp_server, eid, "registration_offered", c4["email"])
    assert _answer(_link(offer), answer="claim").status_code == 303
    _wait_mail(smtp_server, eid, "registration_confirmed", c4["email"])
    assert _registrations(stack, eid)[c4["id"]]["status"] == "confirmed"

    # c5 waits (place 1), then c1 again (place 2); c2 declines: c5 is offered the seat, lets the
    # window pass; the offer expires and passes to c1.
    assert _answer(links[c5["id"]], answer="attend", seats="1").status_code == 303
    _wait_mail(smtp_server, eid, "registration_waitlisted", c5["email"])
    assert _answer(links[c1["id"]], answer="attend", seats="1").status_code == 303
    wait_until(
        lambda: _registrations(stack, eid)[c1["id"]]["status"] == "waitlisted",
        timeout=30,
        message="c1 waitlisted again",
    )
    assert _answer(links[c2["id"]], answer="decline").status_code == 303
    _wait_mail(smtp_server, eid, "registration_offered", c5["email"])
    _wait_mail(smtp_server, eid, "registration_expired", c5["email"], timeout=90)
    _wait_mail(smtp_server, eid, "registration_offered", c1["email"], timeout=60)
    final = _registrations(stack, eid)
    assert final[c5["id"]]["status"] == "expired"
    assert final[c1["id"]]["status"] == "offered"
    assert final[c2["id"]]["status"] == "declined"

    # The ledger: every mail once (organisation, kind and status change unique), all sent.
    rows = [r for r in stack.deliveries(eid) if r["kind"].startswith("registration_")]
    assert rows and all(r["status"] == "sent" for r in rows)
    keys = collections.Counter((r["organisation_id"], r["kind"], r.get("sequence")) for r in rows)
    assert max(keys.values()) == 1
    received = [
        m
        for m in smtp_server.messages
        if m.header("X-TACSO-Event-Id") == eid
        and (m.header("X-TACSO-Kind") or "").startswith("registration_")
    ]
    assert len(received) == len(rows)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make install does)")
def test_a_person_answers_in_a_real_browser(
    stack: Stack,
    smtp_server: RecordingSMTPServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    (cso,) = _csos(stack, 1, "migration")
    event = stack.publish_event("BA", ["migration"], capacity=10)
    invitation = _wait_mail(smtp_server, event["id"], "invitation", cso["email"])
    link = _link(invitation)

    with chromium_context(tmp_path / "profile") as browser:
        page = browser.new_page()
        page.goto(link + "?answer=attend")
        assert page.title()
        assert page.locator("h1").first.inner_text().strip() == event["title"]
        page.get_by_label("I will attend").check()
        with page.expect_navigation():
            page.get_by_role("button", name="Send my answer").click()
        shots = Path(request.config.rootpath) / "var" / "test-artefacts"
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "rsvp-answered.png"), full_page=True)
        assert "Thank you: your answer has been saved." in page.content(), page.content()

    _wait_mail(smtp_server, event["id"], "registration_confirmed", cso["email"])
    assert _registrations(stack, event["id"])[cso["id"]]["status"] == "confirmed"
