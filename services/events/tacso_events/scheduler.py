"""The durable scheduler: runs the due ``scheduled_jobs`` rows (``tacso-events scheduler``).

A job is a row, so it survives restarts. Several schedulers may run (replicas); a job is run by
one of them, once:

1. *claim* (a short transaction): due, unclaimed jobs get ``locked_until = now + lease``. On
   PostgreSQL the candidates are read with ``FOR UPDATE SKIP LOCKED`` (two schedulers take
   different rows and never wait for each other); on SQLite each row is claimed by an atomic
   ``UPDATE ... WHERE locked_until IS NULL OR locked_until < now`` and only the scheduler whose
   update changed the row owns it.
2. *run* (one transaction per job): the job's event is locked first (the same order as the HTTP
   paths: event, then jobs, so no deadlock), then the job row is read again and run only if it
   still carries our claim; the job's effects and the row's deletion commit together. A job
   replaced or dropped meanwhile (an offer claimed, a registration cancelled) is skipped.

A scheduler that dies between 1 and 2 leaves its claim, which lapses after the lease: another
scheduler runs the job then. A job that fails is retried with a growing delay
(``locked_until`` is the time of the next attempt).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from tacso_events.models import ScheduledJob
from tacso_events.registrations import JOB_HANDLERS, JobHandler, Policy, lock_event
from tacso_shared.db import transaction

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(seconds=60)
MAX_RETRY_DELAY = timedelta(minutes=30)


class Scheduler:
    """Claims due jobs and runs them until :attr:`stopping` is set."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        policy: Policy,
        *,
        handlers: Mapping[str, JobHandler] | None = None,
        batch_size: int = 50,
        poll_interval: float = 1.0,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        self.sessions = sessions
        self.policy = policy
        self.handlers = JOB_HANDLERS if handlers is None else handlers
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.lease = lease
        self.stopping = threading.Event()
        self.runs = 0
        self.failures = 0

    def claim(self, now: datetime | None = None) -> list[tuple[str, datetime]]:
        """Claim up to ``batch_size`` due jobs; their ids and the claim each carries."""
        now = now or datetime.now(UTC)
        until = now + self.lease
        due = sa.and_(
            ScheduledJob.due_at <= now,
            sa.or_(ScheduledJob.locked_until.is_(None), ScheduledJob.locked_until < now),
        )
        with transaction(self.sessions) as session:
            query = (sa.select(ScheduledJob.id).where(due).order_by(ScheduledJob.due_at)).limit(
                self.batch_size
            )
            if session.get_bind().dialect.name == "postgresql":
                ids = list(session.scalars(query.with_for_update(skip_locked=True)))
                if ids:
                    session.execute(
                        sa.update(ScheduledJob)
                        .where(ScheduledJob.id.in_(ids))
                        .values(locked_until=until, attempts=ScheduledJob.attempts + 1)
                    )
                return [(job_id, until) for job_id in ids]
            claimed: list[tuple[str, datetime]] = []
            for job_id in list(session.scalars(query)):
                result = session.execute(
                    sa.update(ScheduledJob)
                    .where(ScheduledJob.id == job_id, due)
                    .values(locked_until=until, attempts=ScheduledJob.attempts + 1)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append((job_id, until))
            return claimed

    def run_job(self, job_id: str, claim: datetime, now: datetime | None = None) -> bool:
        """Run one claimed job; True if it ran (False: gone, or claimed by another meanwhile)."""
        try:
            with transaction(self.sessions) as session:
                peek = session.get(ScheduledJob, job_id)
                if peek is None:
                    return False
                event_id = str(peek.payload.get("event_id", ""))
                if event_id:
                    lock_event(session, event_id)
                job = session.get(
                    ScheduledJob, job_id, with_for_update=True, populate_existing=True
                )
                if job is None or job.locked_until != claim:
                    return False
                handler = self.handlers.get(job.kind)
                if handler is None:
                    raise LookupError(f"no handler for jobs of kind {job.kind!r}")
                payload = dict(job.payload)
                handler(session, payload, self.policy, now or datetime.now(UTC))
                # The handler may have dropped the row itself (an expired offer drops its job).
                session.execute(sa.delete(ScheduledJob).where(ScheduledJob.id == job_id))
            self.runs += 1
            return True
        except Exception as exc:
            self.failures += 1
            log.exception("scheduled job %s failed", job_id)
            self._retry_later(job_id, claim, exc)
            return False

    def _retry_later(self, job_id: str, claim: datetime, exc: Exception) -> None:
        try:
            with transaction(self.sessions) as session:
                job = session.get(ScheduledJob, job_id, with_for_update=True)
                if job is None or job.locked_until != claim:
                    return
                delay = min(timedelta(seconds=5 * 2 ** min(job.attempts, 12)), MAX_RETRY_DELAY)
                job.locked_until = datetime.now(UTC) + delay
                job.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        except Exception:
            log.exception("could not record the failure of job %s", job_id)

    def run_once(self, now: datetime | None = None) -> int:
        """Claim and run the jobs due now; how many ran."""
        ran = 0
        for job_id, claim in self.claim(now):
            if self.stopping.is_set():
                break
            ran += self.run_job(job_id, claim, now)
        return ran

    def pending(self) -> tuple[int, float | None]:
        """How many jobs are due and not yet run, and how overdue (seconds) the oldest is."""
        now = datetime.now(UTC)
        with self.sessions() as session:
            count, oldest = session.execute(
                sa.select(sa.func.count(), sa.func.min(ScheduledJob.due_at)).where(
                    ScheduledJob.due_at <= now
                )
            ).one()
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return int(count), (now - oldest).total_seconds() if oldest is not None else None

    def run_forever(self) -> None:
        """Run due jobs until stopped; back off while the database does not answer."""
        backoff = self.poll_interval
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                ran = self.run_once()
                backoff = self.poll_interval
            except Exception:
                log.exception("scheduler pass failed; retrying in %.1fs", backoff)
                ran = 0
                backoff = min(backoff * 2, 30.0)
            if ran < self.batch_size:
                self.stopping.wait(max(backoff - (time.monotonic() - started), 0.0))


class SchedulerCollector(Collector):
    """The due jobs not yet run and how overdue the oldest is, read on a scrape."""

    def __init__(self, pending: Callable[[], tuple[int, float | None]]) -> None:
        self.pending = pending

    def collect(self) -> Iterable[Metric]:
        """Two gauges; nothing when the database does not answer (the scrape still works)."""
        try:
            count, oldest = self.pending()
        except Exception:
            log.warning("scheduler metrics: the database does not answer", exc_info=True)
            return
        due = GaugeMetricFamily(
            "tacso_scheduler_due_jobs",
            "Scheduled jobs that are due and not yet run.",
            labels=["service"],
        )
        due.add_metric(["events"], count)
        age = GaugeMetricFamily(
            "tacso_scheduler_oldest_due_age_seconds",
            "How overdue the oldest due job is (0: none).",
            labels=["service"],
        )
        age.add_metric(["events"], oldest or 0.0)
        yield due
        yield age
