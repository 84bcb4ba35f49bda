"""An event moves, is touched up and is cancelled, end to end on real processes (issue 11).

A BA event invites 5 CSOs and its 2 media get a press notice. Three CSOs answer "I will attend"
through their invitation's link, one declines, one never answers. Then:

1. the start moves by one day (``PATCH``): the 4 CSOs that did not decline and the 2 media get
   exactly one update notice each (the media in a press notice's wording); every CSO's ``.ics``
   keeps its invitation's UID with ``SEQUENCE:1``;
2. the description is edited: nothing is sent, the revision stays;
3. the confirmed registrants' reminders follow the start: they arrive at the new times, and the
   one the old start made due never comes;
4. the event is cancelled: one cancellation each (``METHOD:CANCEL``), and a reminder that would
   have been due after it never comes.

How the reminders are made observable: ``REMINDER_OFFSETS`` is in seconds and the event starts
:data:`LEAD` after it is created (at ``t0``). Offsets are chosen so that

- ``OLD_OFFSET`` is due ``OLD_DUE`` s after ``t0`` at the *original* start (and a day later once
  moved): if the move did not reschedule, this reminder would arrive first;
- ``MOVED_OFFSET`` and ``LATE_OFFSET`` are more than the lead before the original start (so the
  original schedule has none of them), and ``MOVED_DUE`` / ``LATE_DUE`` s after ``t0`` at the
  moved start: the first must arrive at its time, the second is due after the cancellation.
"""

from __future__ import annotations

import collections
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest
import requests

from support.smtp import RecordingSMTPServer
from support.stack import Stack, running_stack
from support.waiting import wait_until
from tacso_devtools.smtp_catcher import ReceivedMail

DAY = 86400
#: Seconds from creating the event to its original start.
LEAD = 3600
#: Seconds after creation at which reminders are (or would be) due; see the module docstring.
OLD_DUE, MOVED_DUE, LATE_DUE = 60, 75, 100
OLD_OFFSET = LEAD - OLD_DUE
MOVED_OFFSET = LEAD + DAY - MOVED_DUE
LATE_OFFSET = LEAD + DAY - LATE_DUE
#: Time the pipeline (scheduler poll, outbox relay, broker, reminders worker, SMTP) is given to
#: bring a reminder that is due: the absence checks watch this long past a due time.
PIPELINE_SECONDS = 5.0
RSVP_LINK = re.compile(r"(https?://[^\s\"<>]+/rsvp/[A-Za-z0-9._\-]+)")


class TimedSMTPServer(RecordingSMTPServer):
    """A RecordingSMTPServer that also notes when (wall clock) each message arrived."""

    def __init__(self) -> None:
        super().__init__()
        self._arrived_at: dict[int, float] = {}

    def _record(self, mail: ReceivedMail) -> None:
        with self._cond:
            self._arrived_at[id(mail)] = time.time()
            super()._record(mail)

    def arrived_at(self, mail: ReceivedMail) -> float:
        with self._cond:
            return self._arrived_at[id(mail)]


@pytest.fixture(scope="module")
def timed_smtp() -> Iterator[TimedSMTPServer]:
    with TimedSMTPServer() as server:
        yield server


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    timed_smtp: TimedSMTPServer,
) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp(f"lifecycle-{request.param}")
    env = {
        "REMINDER_OFFSETS": f"{OLD_OFFSET}s,{MOVED_OFFSET}s,{LATE_OFFSET}s",
        "SCHEDULER_POLL_INTERVAL": "0.2",
    }
    with running_stack(
        workdir, request.param, timed_smtp.host, timed_smtp.port, extra_env=env
    ) as stack:
        yield stack


def _mails(smtp: TimedSMTPServer, event_id: str, kind: str) -> list[ReceivedMail]:
    return [
        m
        for m in smtp.messages
        if m.header("X-TACSO-Event-Id") == event_id and m.header("X-TACSO-Kind") == kind
    ]


def _wait_mails(
    smtp: TimedSMTPServer, event_id: str, kind: str, count: int, timeout: float = 60
) -> list[ReceivedMail]:
    found = wait_until(
        lambda: len(m := _mails(smtp, event_id, kind)) >= count and m,
        timeout=timeout,
        message=f"{count} {kind} mails for {event_id}",
    )
    assert found
    return found


def _by_recipient(mails: list[ReceivedMail]) -> dict[str, list[ReceivedMail]]:
    out: dict[str, list[ReceivedMail]] = collections.defaultdict(list)
    for mail in mails:
        for rcpt in mail.rcpt_tos:
            out[rcpt].append(mail)
    return dict(out)


@dataclass(frozen=True)
class Calendar:
    """What matters of one ``.ics`` attachment."""

    method: str
    uid: str
    sequence: int
    starts_at: datetime
    status: str


def _calendar(mail: ReceivedMail) -> Calendar | None:
    for part in mail.message.walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            parsed = icalendar.Calendar.from_ical(payload)
            [vevent] = parsed.walk("VEVENT")
            return Calendar(
                method=str(parsed["METHOD"]),
                uid=str(vevent["UID"]),
                sequence=int(str(vevent["SEQUENCE"])),
                starts_at=vevent.decoded("DTSTART"),
                status=str(vevent.get("STATUS", "")),
            )
    return None


def _link(mail: ReceivedMail) -> str:
    found = RSVP_LINK.search(mail.body_text())
    assert found, mail.body_text()
    return found.group(1)


def _patch(stack: Stack, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = stack.http.patch(
        stack.url("events", f"/api/v1/events/{event_id}"), json=body, timeout=10
    )
    assert response.status_code == 200, response.text
    event: dict[str, Any] = response.json()
    return event


def test_a_moved_then_cancelled_event_tells_everyone_once_and_moves_the_reminders(
    stack: Stack, timed_smtp: TimedSMTPServer
) -> None:
    smtp = timed_smtp
    topic = "environment"
    tag = f"life-{uuid.uuid4().hex[:6]}"
    csos = stack.register_many(5, "cso", "BA", [topic], tag)
    media = stack.register_many(2, "media", "BA", [], f"{tag}-media")
    attending, declining, silent = csos[:3], csos[3], csos[4]

    t0 = time.time()
    starts = datetime.fromtimestamp(t0, UTC).replace(microsecond=0) + timedelta(seconds=LEAD)
    t0 = starts.timestamp() - LEAD  # the whole second the offsets count from
    event = stack.publish_event(
        "BA",
        [topic],
        starts_at=starts.isoformat(),
        ends_at=(starts + timedelta(hours=3)).isoformat(),
    )
    eid = event["id"]
    invitations = _by_recipient(_wait_mails(smtp, eid, "invitation", 5))
    _wait_mails(smtp, eid, "press_notice", 2)
    original: dict[str, Calendar] = {}
    for org in csos:
        [invitation] = invitations[org["email"]]
        calendar = _calendar(invitation)
        assert calendar is not None and calendar.sequence == 0
        original[org["email"]] = calendar

    # Three attend, one declines, through their invitations' links; the fifth never answers.
    for org, answer in [*((o, "attend") for o in attending), (declining, "decline")]:
        link = _link(invitations[org["email"]][0])
        form = {"answer": answer, **({"seats": "1"} if answer == "attend" else {})}
        response = requests.post(link, data=form, timeout=10, allow_redirects=False)
        assert response.status_code == 303, response.text
    # Their registration mail is out: notify knows who declined before anything moves.
    _wait_mails(smtp, eid, "registration_confirmed", 3)
    _wait_mails(smtp, eid, "registration_declined", 1)

    # 1. The start moves by one day.
    assert time.time() < t0 + OLD_DUE - PIPELINE_SECONDS, (
        f"setting up took {time.time() - t0:.0f} s: the original reminder is (nearly) due "
        f"already ({OLD_DUE} s), the test cannot tell whether it was moved"
    )
    assert not _mails(smtp, eid, "reminder")
    moved = starts + timedelta(days=1)
    patched = _patch(
        stack,
        eid,
        {"starts_at": moved.isoformat(), "ends_at": (moved + timedelta(hours=3)).isoformat()},
    )
    assert patched["revision"] == 2

    told = [*attending, silent]
    expected = sorted(o["email"] for o in [*told, *media])
    updates = _wait_mails(smtp, eid, "update", len(expected))
    by_recipient = _by_recipient(updates)
    for org in told:
        [update] = by_recipient[org["email"]]
        assert update.header("X-TACSO-Revision") == "2"
        calendar = _calendar(update)
        assert calendar is not None
        assert calendar.method == "REQUEST"
        assert calendar.uid == original[org["email"]].uid
        assert calendar.sequence == 1
        assert calendar.starts_at == moved
    for org in media:
        [update] = by_recipient[org["email"]]
        assert (update.subject or "").startswith("Press notice, change:"), update.subject
        assert "FOR IMMEDIATE RELEASE" in update.body_text()

    # 2. A new description is not material: no revision, no mail (checked at the end, once
    # everything else has had time to arrive).
    touched = _patch(stack, eid, {"description": "Now with a coffee break at 11."})
    assert touched["revision"] == 2

    # 3. The reminders follow the start: the moved one arrives, at its time; none came earlier.
    moved_due = (moved - timedelta(seconds=MOVED_OFFSET)).timestamp()
    old_due = (starts - timedelta(seconds=OLD_OFFSET)).timestamp()
    assert old_due + PIPELINE_SECONDS < moved_due
    reminders = _wait_mails(smtp, eid, "reminder", len(attending), timeout=MOVED_DUE + 60)
    assert sorted(r for m in reminders for r in m.rcpt_tos) == sorted(o["email"] for o in attending)
    early = [smtp.arrived_at(m) - t0 for m in reminders if smtp.arrived_at(m) < moved_due]
    assert not early, (
        f"reminders arrived {early} s after creation, before the moved one was due "
        f"({MOVED_DUE} s); the original start's was due at {OLD_DUE} s"
    )
    rows = stack.wait_all_sent(eid, "reminder", len(attending), timeout=30)
    assert {(r["revision"], r["reminder_offset"]) for r in rows} == {(2, f"{MOVED_OFFSET}s")}

    # 4. Cancelled before the last reminder is due: one cancellation each, no reminder after.
    late_due = (moved - timedelta(seconds=LATE_OFFSET)).timestamp()
    assert time.time() < late_due - PIPELINE_SECONDS, "too late to cancel before the reminder"
    response = stack.post("events", f"/api/v1/events/{eid}/cancel", {"reason": "The hall flooded."})
    assert response.status_code == 200, response.text
    assert response.json()["revision"] == 3
    cancellations = _by_recipient(_wait_mails(smtp, eid, "cancellation", len(expected)))
    for org in told:
        [cancellation] = cancellations[org["email"]]
        calendar = _calendar(cancellation)
        assert calendar is not None
        assert (calendar.method, calendar.status) == ("CANCEL", "CANCELLED")
        assert calendar.uid == original[org["email"]].uid
        # 2, not 3: the description edit bumped nothing.
        assert calendar.sequence == 2
    for org in media:
        [cancellation] = cancellations[org["email"]]
        assert (cancellation.subject or "").startswith("Press notice, cancellation:")

    # Absence can only be watched for a while: until the cancelled reminder's due time plus the
    # pipeline's time (a bounded wait, about 20 s), then nothing more may have come.
    time.sleep(max(0.0, late_due + PIPELINE_SECONDS - time.time()))
    final = [m for m in smtp.messages if m.header("X-TACSO-Event-Id") == eid]
    counts = collections.Counter((m.header("X-TACSO-Kind"), r) for m in final for r in m.rcpt_tos)
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]
    assert sorted(r for kind, r in counts if kind == "update") == expected
    assert sorted(r for kind, r in counts if kind == "cancellation") == expected
    assert len([1 for kind, _ in counts if kind == "reminder"]) == len(attending)
    assert declining["email"] not in {r for kind, r in counts if kind in ("update", "cancellation")}
    ledger = collections.Counter(
        (r["kind"], r["status"])
        for r in stack.deliveries(eid)
        if r["kind"] in ("update", "cancellation", "reminder")
    )
    assert ledger == {
        ("update", "sent"): len(expected),
        ("cancellation", "sent"): len(expected),
        ("reminder", "sent"): len(attending),
    }
