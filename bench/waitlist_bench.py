"""The waitlist row: from a cancellation through the API to the offer mail accepted by SMTP.

Per sample, an event with one seat: organisation A registers (``confirmed``), B registers
(``waitlisted``, place 1), and once both of their mails have arrived (nothing is in flight), A's
registration is cancelled with ``DELETE /api/v1/events/<id>/registrations/<id>``. The clock runs
from just before that request to the moment the SMTP server accepts the offer mail
(``X-TACSO-Kind: registration_offered``) to B: events' transaction, its outbox relay, RabbitMQ,
notify's registrations worker (the recipient looked up in registry, the mail rendered) and SMTP.

The scheduler is not started: the offer must come from the cancellation itself, not from a
polled due time. The SMTP server is the tests' recording server with a clock (smtp-sink cannot
say whom a message was for); a message counts as accepted when its ``250`` after DATA is due.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import fresh, log
from bench.ours import STACK_ENV
from support.smtp import RecordingSMTPServer
from support.stack import Stack
from tacso_devtools.smtp_catcher import ReceivedMail

#: The issue's target for the time from a cancellation to the offer mail.
TARGET_S = 2.0
#: The processes the path needs, and no scheduler.
PROCESSES = ("registry", "events", "events-relay", "notify-registrations")
COUNTRY = "BA"
TOPIC = "youth"


class ClockedSMTPServer(RecordingSMTPServer):
    """The tests' SMTP server, noting when (``time.monotonic()``) each message was accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted: list[tuple[float, ReceivedMail]] = []
        self._arrived = threading.Condition()

    def _record(self, mail: ReceivedMail) -> None:
        now = time.monotonic()
        with self._arrived:
            self.accepted.append((now, mail))
            self._arrived.notify_all()
        super()._record(mail)

    def wait_mail(self, event_id: str, kind: str, email: str, timeout: float = 60.0) -> float:
        """When the first ``kind`` mail about ``event_id`` to ``email`` was accepted."""

        def found() -> float | None:
            for when, mail in self.accepted:
                if (
                    mail.header("X-TACSO-Event-Id") == event_id
                    and mail.header("X-TACSO-Kind") == kind
                    and email in mail.rcpt_tos
                ):
                    return when
            return None

        deadline = time.monotonic() + timeout
        with self._arrived:
            while (when := found()) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {kind} mail to {email} within {timeout:g} s")
                self._arrived.wait(left)
        return when


def _register(stack: Stack, event_id: str, organisation_id: str) -> dict[str, Any]:
    response = stack.http.post(
        stack.url("events", f"/api/v1/events/{event_id}/registrations"),
        json={"organisation_id": organisation_id, "seats": 1},
        timeout=10,
    )
    if response.status_code != 201:
        raise RuntimeError(f"registration refused: {response.status_code} {response.text[:200]}")
    body: dict[str, Any] = response.json()
    return body


def _sample(
    stack: Stack, smtp: ClockedSMTPServer, first: dict[str, Any], second: dict[str, Any]
) -> float:
    """One cancellation; seconds from the DELETE to the offer mail accepted."""
    starts = datetime.now(UTC) + timedelta(days=30)
    event = stack.publish_event(
        COUNTRY,
        [TOPIC],
        capacity=1,
        starts_at=starts.isoformat(),
        ends_at=(starts + timedelta(hours=6)).isoformat(),
    )
    confirmed = _register(stack, event["id"], first["id"])
    waiting = _register(stack, event["id"], second["id"])
    if (confirmed["status"], waiting["status"]) != ("confirmed", "waitlisted"):
        raise RuntimeError(f"expected confirmed and waitlisted, got {confirmed}, {waiting}")
    smtp.wait_mail(event["id"], "registration_confirmed", first["email"])
    smtp.wait_mail(event["id"], "registration_waitlisted", second["email"])
    url = stack.url("events", f"/api/v1/events/{event['id']}/registrations/{confirmed['id']}")
    started = time.monotonic()
    response = stack.http.delete(url, timeout=10)
    if response.status_code != 204:
        raise RuntimeError(f"cancellation refused: {response.status_code} {response.text[:200]}")
    offered = smtp.wait_mail(event["id"], "registration_offered", second["email"])
    return offered - started


def run_offer_latency(workdir: Path, samples: int) -> dict[str, Any]:
    """``samples`` cancellations, one after another, each on an event of its own."""
    smtp = ClockedSMTPServer()
    smtp.start()
    try:
        with fresh(workdir) as (amqp_url, urls), ExitStack() as resources:
            stack = Stack(workdir, amqp_url, urls, smtp.host, smtp.port, extra_env=STACK_ENV)
            stack.migrate()
            stack.start(*PROCESSES)
            resources.callback(stack.stop)
            tag = f"bench-waitlist-{uuid.uuid4().hex[:6]}"
            organisations = stack.register_many(2 * samples, "cso", COUNTRY, [TOPIC], tag)
            seconds = []
            for i in range(samples):
                taken = _sample(stack, smtp, organisations[2 * i], organisations[2 * i + 1])
                seconds.append(taken)
                log(f"waitlist offer {i + 1}/{samples}: {taken * 1000:.0f} ms")
    finally:
        smtp.stop()
    ordered = sorted(seconds)
    return {
        "samples": samples,
        "processes": list(PROCESSES),
        "database": "sqlite" if urls["events"].startswith("sqlite") else "postgresql",
        "seconds": [round(s, 4) for s in seconds],
        "min_s": round(ordered[0], 4),
        "median_s": round(statistics.median(ordered), 4),
        "max_s": round(ordered[-1], 4),
        "target_s": TARGET_S,
        "within_target": sum(1 for s in seconds if s <= TARGET_S),
    }
