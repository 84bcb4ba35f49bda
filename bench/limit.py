"""The limit: smtplib sending pre-rendered invitations, over one connection and over K."""

from __future__ import annotations

import smtplib
import threading
import time
from typing import Any

from bench.common import MAIL_FROM, cso_email, cso_name, event_data
from bench.procs import SystemMeter
from bench.sink import SmtpSink
from tacso_notify.domain import MessageKind, Recipient, Sender
from tacso_notify.rendering import prepare_message
from tacso_shared.contracts import EVENT_PUBLISHED_V1

#: Distinct messages rendered before timing; a run of N cycles through them.
DISTINCT = 1000


def prerender(count: int = DISTINCT) -> list[tuple[str, bytes]]:
    """(recipient, message) pairs rendered with our own code: real invitations, real sizes."""
    event = EVENT_PUBLISHED_V1.load(event_data())
    prepared = prepare_message(event, MessageKind.INVITATION, Sender(MAIL_FROM))
    out = []
    for i in range(count):
        recipient = Recipient(
            organisation_id=f"00000000-0000-4000-8000-{i:012d}",
            name=cso_name(i),
            email=cso_email("limit", i),
            language="cnr",
        )
        out.append((recipient.email, prepared.for_recipient(recipient)))
    return out


def _send(host: str, port: int, messages: list[tuple[str, bytes]], start: int, n: int) -> None:
    smtp = smtplib.SMTP(host, port, timeout=30)
    try:
        for i in range(start, start + n):
            to, body = messages[i % len(messages)]
            smtp.sendmail(MAIL_FROM, [to], body, mail_options=["BODY=8BITMIME"])
    finally:
        smtp.quit()


def run_limit(sink: SmtpSink, n: int, connections: int) -> dict[str, Any]:
    """Send ``n`` messages over ``connections`` connections (threads); timed by the sink."""
    messages = prerender(min(n, DISTINCT))
    base = sink.mark()
    shares = [n // connections + (1 if k < n % connections else 0) for k in range(connections)]
    threads = []
    start = 0
    system = SystemMeter()
    system.start()
    t0 = time.monotonic()
    for share in shares:
        thread = threading.Thread(target=_send, args=(sink.host, sink.port, messages, start, share))
        start += share
        threads.append(thread)
        thread.start()
    done = sink.wait_for(base + n, stall_timeout=30)
    for thread in threads:
        thread.join()
    machine_load = system.stop()
    first = sink.first_after(base)
    seconds = done - t0
    return {
        "n": n,
        "connections": connections,
        "seconds": round(seconds, 3),
        "emails_per_s": round(n / seconds, 1),
        "first_accepted_s": round(first - t0, 4) if first else None,
        "message_bytes": len(messages[1][1]),
        "machine": machine_load,
    }
