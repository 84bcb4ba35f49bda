"""Reading the next audience page while this one is sent (the fan-out's pipeline).

A page task hands the next page's task on before it sends (so any worker may take it). The worker
that did so most often takes it itself; asking registry for that page while this one's mail goes
out means the next page starts sending at once instead of after a registry round trip. When
another worker takes the task, the page read ahead is dropped: a wasted registry read, never a
wrong one.

What registry said is used only if it was asked at most :data:`MAX_AGE` seconds before the page is
sent, so the guarantee of docs/architecture.md ("whoever opted out before their page was read is
not written to") moves by a few hundred milliseconds, not more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from tacso_notify.audience import Directory
from tacso_notify.domain import Recipient

log = logging.getLogger(__name__)

#: A page read longer ago than this (seconds) is read again: a slow page (an SMTP rate limit, a
#: server that paused) must not send to an audience read minutes before.
MAX_AGE = 5.0

#: (fan-out chain, keyset cursor): which page of which fan-out.
PageKey = tuple[str, str]
Page = tuple[list[Recipient], str | None]


class PagePrefetcher:
    """Holds at most one page read ahead, in one background thread of its own.

    ``directory`` is its own (its own HTTP connection: the worker's is busy meanwhile).
    """

    def __init__(
        self,
        directory: Directory,
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.max_age = max_age
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="page-prefetch")
        self._lock = threading.Lock()
        self._ahead: tuple[PageKey, float, Future[Page]] | None = None

    def start(self, key: PageKey, read: Callable[[Directory], Page]) -> None:
        """Read the page ``key`` in the background (dropping any page read ahead before)."""
        started = self._clock()
        future = self._executor.submit(read, self.directory)
        with self._lock:
            previous, self._ahead = self._ahead, (key, started, future)
        if previous is not None:
            previous[2].cancel()

    def take(self, key: PageKey) -> Page | None:
        """The page ``key`` if it was read ahead recently enough, waiting for a read under way;
        None otherwise (not read ahead, too old, or the read failed): the caller reads it."""
        with self._lock:
            ahead = self._ahead
            if ahead is None or ahead[0] != key:
                return None
            self._ahead = None
        _, started, future = ahead
        try:
            page = future.result(timeout=self.max_age)
        except FutureTimeout:
            future.cancel()
            return None
        except Exception:  # the caller asks registry itself, and handles the failure
            log.info("page read ahead failed; reading it again", exc_info=True)
            return None
        if self._clock() - started > self.max_age:
            return None
        return page

    def close(self) -> None:
        """Drop what was read ahead and stop the thread."""
        with self._lock:
            self._ahead = None
        self._executor.shutdown(wait=True, cancel_futures=True)
