"""429 and 503 are retried with backoff, after the server's Retry-After; what remains is raised.

A tiny real HTTP server in the test (http.server in a thread) answers as a busy service would.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tacso_client import ApiKey, RateLimited, ServiceUnavailable, TacsoClient

pytestmark = pytest.mark.unit

EVENT = {"id": "ev-1", "title": "Workshop", "status": "published"}


class Busy:
    """Answers the first ``refusals`` requests with ``status`` and ``Retry-After``, then 200."""

    def __init__(self, status: int, refusals: int, retry_after: str | None) -> None:
        self.status, self.refusals, self.retry_after = status, refusals, retry_after
        self.seen: list[tuple[float, str, str]] = []  # (time, method, Authorization)
        busy = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                busy.seen.append(
                    (time.monotonic(), self.command, self.headers.get("Authorization", ""))
                )
                refuse = len(busy.seen) <= busy.refusals
                body = json.dumps(
                    {"code": busy.status, "status": "Busy", "message": "Slow down."}
                    if refuse
                    else EVENT
                ).encode()
                self.send_response(busy.status if refuse else 200)
                if refuse and busy.retry_after is not None:
                    self.send_header("Retry-After", busy.retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def waits(self) -> list[float]:
        times = [t for t, _, _ in self.seen]
        return [b - a for a, b in itertools.pairwise(times)]


@pytest.fixture
def serve() -> Iterator[list[Busy]]:
    servers: list[Busy] = []
    yield servers
    for busy in servers:
        busy.server.shutdown()
        busy.server.server_close()


def _busy(servers: list[Busy], status: int, refusals: int, retry_after: str | None) -> Busy:
    busy = Busy(status, refusals, retry_after)
    threading.Thread(target=busy.server.serve_forever, args=(0.05,), daemon=True).start()
    servers.append(busy)
    return busy


def _client(busy: Busy, retries: int = 3) -> TacsoClient:
    return TacsoClient(
        registry_url=busy.url,
        events_url=busy.url,
        notify_url=busy.url,
        auth=ApiKey("k"),
        retries=retries,
        backoff=0.05,
        timeout=5,
    )


@pytest.mark.parametrize("status", [503, 429])
def test_a_refusal_with_retry_after_is_retried_after_that_many_seconds(
    serve: list[Busy], status: int
) -> None:
    busy = _busy(serve, status, refusals=1, retry_after="1")

    event = _client(busy).events.event("ev-1")

    assert event["id"] == "ev-1"
    assert len(busy.seen) == 2
    assert busy.waits()[0] >= 0.95, "Retry-After: 1 was not honoured"
    assert busy.seen[1][2] == "Bearer k", "the retry carries the credential too"


def test_a_post_refused_with_503_is_sent_again(serve: list[Busy]) -> None:
    busy = _busy(serve, 503, refusals=2, retry_after="0")

    _client(busy).events.publish_event("ev-1")

    assert [m for _, m, _ in busy.seen] == ["POST", "POST", "POST"]


def test_without_retry_after_the_waits_grow_exponentially(serve: list[Busy]) -> None:
    busy = _busy(serve, 503, refusals=3, retry_after=None)

    _client(busy, retries=3).events.event("ev-1")

    waits = busy.waits()
    assert len(waits) == 3
    # backoff 0.05: urllib3 retries the first at once, then waits 0.05 * 2**(n - 1): 0.1, 0.2
    assert waits[1] >= 0.09 and waits[2] >= 0.18 and waits[2] > waits[1] * 1.5, waits


def test_a_refusal_that_outlasts_the_retries_is_raised_with_its_retry_after(
    serve: list[Busy],
) -> None:
    busy = _busy(serve, 429, refusals=100, retry_after="0")

    with pytest.raises(RateLimited) as raised:
        _client(busy, retries=2).events.event("ev-1")

    assert len(busy.seen) == 3
    assert raised.value.status == 429
    assert raised.value.message == "Slow down."
    assert raised.value.retry_after == 0


def test_a_503_that_outlasts_the_retries_is_service_unavailable(serve: list[Busy]) -> None:
    busy = _busy(serve, 503, refusals=100, retry_after="0")

    with pytest.raises(ServiceUnavailable):
        _client(busy, retries=1).notify.delivery_summary("ev-1")
