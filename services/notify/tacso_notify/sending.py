"""Several SMTP connections working through one queue of messages, at a bounded rate."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tacso_notify.mailer import Mailer, PermanentSendError, TransientSendError

log = logging.getLogger(__name__)

SENT, FAILED, TRANSIENT, SKIPPED = "sent", "failed", "transient", "skipped"


@dataclass(frozen=True)
class SendJob:
    """One flattened message for one recipient, tied to its ledger row."""

    delivery_id: int
    mail_from: str
    recipient: str
    message: bytes
    #: The recipient's mailbox (and the To header) is UTF-8: needs the SMTPUTF8 extension.
    smtputf8: bool = False


@dataclass(frozen=True)
class SendResult:
    """What became of a job: sent, failed for good, failed for now, or skipped (pool halted).

    ``suppress`` (with ``failed``): the server refused the address itself, so bulk mail to it
    stops; a failure of one message (its content, an extension the server lacks) does not.
    """

    delivery_id: int
    outcome: str
    reason: str = ""
    suppress: bool = False


class RateLimiter:
    """At most ``rate`` acquisitions per second across threads (0 or less: unlimited)."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next = clock()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Wait for the next slot. Delayed, never dropped."""
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            slot = max(self._next, now)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


class SenderPool:
    """``connections`` threads, each with its own SMTP connection, draining one job queue.

    The first transient failure (a 4xx, the server gone) halts the pool: jobs still queued come
    back as ``skipped`` so the caller can record them as still owed, instead of hammering a
    server that just said "not now". :meth:`resume` lets the pool work again.
    """

    def __init__(
        self,
        mailer_factory: Callable[[], Mailer],
        connections: int = 4,
        rate_per_second: float = 0.0,
    ) -> None:
        self.connections = max(1, connections)
        # Small on purpose: what is queued here may be sent while the ledger write of earlier
        # mail is under way, which widens the crash window (docs/reliability.md).
        self._jobs: queue.Queue[SendJob | None] = queue.Queue(maxsize=self.connections)
        self._results: queue.Queue[SendResult] = queue.Queue()
        self._halted = threading.Event()
        self._limiter = RateLimiter(rate_per_second)
        self._threads = [
            threading.Thread(
                target=self._run, args=(mailer_factory(),), name=f"smtp-{i}", daemon=True
            )
            for i in range(self.connections)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def halted(self) -> bool:
        return self._halted.is_set()

    def halt(self) -> None:
        """Stop sending: queued jobs come back as skipped."""
        self._halted.set()

    def resume(self) -> None:
        """Work again after :meth:`halt`, forgetting results nobody collected."""
        while self.poll() is not None:
            pass
        self._halted.clear()

    def _run(self, mailer: Mailer) -> None:
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                self._results.put(self._send(mailer, job))
        finally:
            mailer.close()

    def _send(self, mailer: Mailer, job: SendJob) -> SendResult:
        if self._halted.is_set():
            return SendResult(job.delivery_id, SKIPPED)
        self._limiter.acquire()
        if self._halted.is_set():
            return SendResult(job.delivery_id, SKIPPED)
        for attempt in (1, 2):
            try:
                mailer.send(job.mail_from, job.recipient, job.message, job.smtputf8)
            except PermanentSendError as exc:
                return SendResult(job.delivery_id, FAILED, str(exc), suppress=exc.suppress)
            except TransientSendError as exc:
                self._halted.set()
                return SendResult(job.delivery_id, TRANSIENT, str(exc))
            except Exception as exc:
                # Neither the server's answer nor a network error: something about this message
                # that the mail library could not handle. Once more on a fresh connection, in
                # case the connection was at fault; a second time it is this delivery's own
                # failure, never a reason to stop everyone else's mail.
                log.warning("unexpected error sending to %r", job.recipient, exc_info=True)
                mailer.close()
                if attempt == 2:
                    reason = f"could not be sent: {type(exc).__name__}: {exc}"
                    return SendResult(job.delivery_id, FAILED, reason[:500])
            else:
                return SendResult(job.delivery_id, SENT)
        raise AssertionError("unreachable")  # pragma: no cover

    def submit(self, job: SendJob) -> None:
        """Queue a job (waits while the queue is full: the senders set the pace)."""
        self._jobs.put(job)

    def poll(self, timeout: float | None = None) -> SendResult | None:
        """The next result, waiting up to ``timeout`` seconds (``None`` if none came)."""
        try:
            if timeout is None or timeout <= 0:
                return self._results.get_nowait()
            return self._results.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        """Finish queued jobs, close the connections and stop the threads."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout=30)
