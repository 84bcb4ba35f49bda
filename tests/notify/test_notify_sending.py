"""The sender pool: several connections, a rate limit, and halting on "not now"."""

from __future__ import annotations

import threading

from support.waiting import wait_until
from tacso_notify.mailer import PermanentSendError, TransientSendError
from tacso_notify.sending import (
    FAILED,
    SENT,
    SKIPPED,
    TRANSIENT,
    RateLimiter,
    SenderPool,
    SendJob,
    SendResult,
)


class FakeMailer:
    """Records sends; refuses chosen addresses for good or for now."""

    def __init__(
        self, log: list[str], permanent: set[str], transient: set[str], gate: threading.Event
    ) -> None:
        self.log, self.permanent, self.transient, self.gate = log, permanent, transient, gate
        self.closed = False

    def send(self, mail_from: str, recipient: str, message: bytes, smtputf8: bool = False) -> None:
        self.gate.wait(5)
        if recipient in self.permanent:
            raise PermanentSendError("550 no such user")
        if recipient in self.transient:
            raise TransientSendError("451 try later")
        self.log.append(recipient)

    def close(self) -> None:
        self.closed = True


def collect(pool: SenderPool, n: int) -> dict[int, SendResult]:
    results: dict[int, SendResult] = {}
    while len(results) < n:
        result = pool.poll(timeout=5)
        assert result is not None, f"only {len(results)} of {n} results came back"
        results[result.delivery_id] = result
    return results


class TestSenderPool:
    def test_every_job_is_sent_once_across_the_connections(self) -> None:
        log: list[str] = []
        gate = threading.Event()
        gate.set()
        mailers: list[FakeMailer] = []

        def factory() -> FakeMailer:
            mailers.append(FakeMailer(log, set(), set(), gate))
            return mailers[-1]

        pool = SenderPool(factory, connections=3)
        for i in range(100):
            pool.submit(SendJob(i, "from@x.org", f"r{i}@x.org", b"m"))
        results = collect(pool, 100)
        pool.close()
        assert {r.outcome for r in results.values()} == {SENT}
        assert sorted(log) == sorted(f"r{i}@x.org" for i in range(100))
        assert len(mailers) == 3 and all(m.closed for m in mailers)

    def test_a_permanent_refusal_fails_one_job_and_the_rest_go_on(self) -> None:
        log: list[str] = []
        gate = threading.Event()
        gate.set()
        pool = SenderPool(lambda: FakeMailer(log, {"bad@x.org"}, set(), gate), connections=2)
        for i, address in enumerate(["a@x.org", "bad@x.org", "b@x.org"]):
            pool.submit(SendJob(i, "f@x.org", address, b"m"))
        results = collect(pool, 3)
        pool.close()
        assert results[1].outcome == FAILED and "550" in results[1].reason
        assert results[0].outcome == results[2].outcome == SENT

    def test_a_transient_refusal_halts_the_pool_and_queued_jobs_come_back_skipped(self) -> None:
        log: list[str] = []
        gate = threading.Event()
        pool = SenderPool(lambda: FakeMailer(log, set(), {"busy@x.org"}, gate), connections=1)
        pool.submit(SendJob(0, "f@x.org", "busy@x.org", b"m"))

        def submit_the_rest() -> None:
            # The pool's queue holds one job per connection: the rest wait in submit() until
            # the refusal halts the pool and the queue drains as skipped.
            for i in range(1, 6):
                pool.submit(SendJob(i, "f@x.org", f"r{i}@x.org", b"m"))

        submitter = threading.Thread(target=submit_the_rest)
        submitter.start()
        wait_until(lambda: pool._jobs.full(), timeout=5, message="a job queued behind busy@")
        gate.set()
        results = collect(pool, 6)
        submitter.join(timeout=5)
        assert results[0].outcome == TRANSIENT and "451" in results[0].reason
        assert {results[i].outcome for i in range(1, 6)} == {SKIPPED}
        assert pool.halted and log == []
        pool.resume()
        pool.submit(SendJob(9, "f@x.org", "later@x.org", b"m"))
        assert collect(pool, 1)[9].outcome == SENT
        pool.close()


class TestRateLimiter:
    def test_spaces_acquisitions_by_the_interval(self) -> None:
        now = [100.0]
        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            now[0] += seconds

        limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
        for _ in range(5):
            limiter.acquire()
        assert slept == [0.25, 0.25, 0.25, 0.25]

    def test_zero_means_unlimited(self) -> None:
        limiter = RateLimiter(
            0, clock=lambda: 0.0, sleep=lambda s: (_ for _ in ()).throw(AssertionError)
        )
        for _ in range(10):
            limiter.acquire()
