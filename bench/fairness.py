"""Fairness: a big event in Turkey, and one second later a 3-recipient event in Kosovo.

Measured on the real stack with its default single invitations worker:
- the big event alone (its total time, POST to last mail accepted by the sink);
- the big event again and, one second after its POST, a small event in XK: the time from the XK
  POST to its first and last invitation, and the big event's total time against the alone run.

smtp-sink only counts messages, so the small event's times come from notify's ledger: each
delivery's ``sent_at`` is written when the sending page ends, a few milliseconds after the server
accepted the message (three messages make one page, recorded as soon as it is done).
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import event_body, log
from bench.ours import STACK_ENV, _wait_consumer
from bench.seed import seed_csos
from bench.sink import SmtpSink
from support.stack import Stack

BIG_COUNTRY = "TR"
SMALL_COUNTRY = "XK"
SMALL = 3


def _small_audience(stack: Stack, run: str) -> None:
    for i in range(SMALL):
        stack.register(
            name=f"Kosovo CSO {i}",
            kind="cso",
            country=SMALL_COUNTRY,
            email=f"xk-{run}-{i}@bench.example.org",
            language="sq",
            topics=["human-rights"],
        )


def _post(stack: Stack, body: dict[str, Any]) -> tuple[str, float]:
    t = time.monotonic()
    response = stack.post("events", "/api/v1/events", body)
    if response.status_code != 201:
        raise RuntimeError(f"POST /api/v1/events: {response.status_code} {response.text}")
    event_id: str = response.json()["id"]
    return event_id, t


def _sent_times(stack: Stack, event_id: str, count: int, timeout: float) -> list[datetime]:
    deadline = time.monotonic() + timeout
    while True:
        rows = stack.deliveries(event_id, status="sent")
        if len(rows) >= count:
            return sorted(datetime.fromisoformat(r["sent_at"]) for r in rows)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(rows)} of {count} sent after {timeout}s")
        time.sleep(0.05)


def run_fairness(
    sink: SmtpSink, amqp_url: str, urls: dict[str, str], n: int, workdir: Path
) -> dict[str, Any]:
    """The fairness row: big event of ``n`` in TR alone, then with a small XK event 1 s later."""
    workdir.mkdir(parents=True, exist_ok=True)
    run = uuid.uuid4().hex[:8]
    stack = Stack(workdir, amqp_url, urls, sink.host, sink.port, extra_env=STACK_ENV)
    stack.migrate()
    seed_csos(urls["registry"], n, run, country=BIG_COUNTRY)
    stack.start()
    try:
        _wait_consumer(amqp_url, "notify.invitations")
        _small_audience(stack, run)
        organiser = stack.organisation(BIG_COUNTRY, "resource_centre")
        small_organiser = stack.organisation(SMALL_COUNTRY, "resource_centre")
        big_body = {
            **event_body(organiser["id"]),
            "country": BIG_COUNTRY,
            "venue": {"name": "STGM", "city": "Ankara"},
        }

        base = sink.mark()
        _, t0 = _post(stack, big_body)
        alone = sink.wait_for(base + n, stall_timeout=60) - t0
        log(f"fairness N={n}: the big event alone took {alone:.2f} s")

        base = sink.mark()
        _, t0 = _post(stack, {**big_body, "title": "The same workshop, again"})
        time.sleep(1.0)  # the scenario: the small event is published one second later
        small_body = {
            **event_body(small_organiser["id"]),
            "country": SMALL_COUNTRY,
            "venue": {"name": "EU Info Centre", "city": "Prishtina"},
        }
        small_id, t_small = _post(stack, small_body)
        wall_small = time.time() - (time.monotonic() - t_small)
        together = sink.wait_for(base + n + SMALL, stall_timeout=60) - t0
        times = _sent_times(stack, small_id, SMALL, timeout=30)
        first = times[0].timestamp() - wall_small
        last = times[-1].timestamp() - wall_small
        result = {
            "n": n,
            "big_alone_s": round(alone, 3),
            "big_with_small_s": round(together, 3),
            "big_ratio": round(together / alone, 3),
            "small_first_after_post_s": round(first, 3),
            "small_last_after_post_s": round(last, 3),
        }
        log(
            f"fairness N={n}: XK first after {first:.3f} s, last after {last:.3f} s; big event "
            f"{together:.2f} s vs {alone:.2f} s alone ({together / alone:.2f}x)"
        )
        return result
    finally:
        stack.stop()
