"""Prometheus metrics of every TACSO process: the metric objects, and how they are exposed.

The APIs expose ``/metrics`` on their HTTP port. gunicorn runs several worker processes, so they
use prometheus-client's multiprocess mode: :func:`prepare_multiprocess` gives each API process
group a fresh directory (``PROMETHEUS_MULTIPROC_DIR``) before gunicorn forks, gunicorn's
``child_exit`` marks a dead worker's files, and :func:`exposition` merges the files on a scrape.
Workers and relays are single processes: :func:`start_metrics_server` serves their own registry
on ``METRICS_PORT`` (0, the default, serves nothing).

Conventions: counters end in ``_total``, durations are ``_seconds``, and every label has a small,
known set of values (routes are URL rules, never URLs; queues are queue names; never an event id).
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# ---- HTTP (the three APIs) ----------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "tacso_http_requests_total",
    "HTTP requests answered, by route (URL rule) and status.",
    ["service", "method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "tacso_http_request_duration_seconds",
    "Time to answer an HTTP request, by route (URL rule).",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# ---- messages (every consumer) ------------------------------------------------------------------
MESSAGES_HANDLED = Counter(
    "tacso_messages_handled_total",
    "Messages a consumer handled successfully (acked), by work queue.",
    ["queue"],
)
MESSAGES_RETRIED = Counter(
    "tacso_messages_retried_total",
    "Messages sent to a retry queue after a passing failure, by work queue.",
    ["queue"],
)
MESSAGES_DEAD_LETTERED = Counter(
    "tacso_messages_dead_lettered_total",
    "Messages dead-lettered (poison, or out of retries), by work queue.",
    ["queue"],
)

# ---- mail (notify's workers) --------------------------------------------------------------------
MAILS = Counter(
    "tacso_mails_total",
    "Mails by kind, country and outcome: sent (accepted by SMTP), failed, or suppressed "
    "(address on the suppression list, never attempted).",
    ["kind", "country", "outcome"],
)
FANOUT_DURATION = Histogram(
    "tacso_fanout_duration_seconds",
    "Time a worker spent on one fan-out message (one page of an event's audience), by kind.",
    ["kind"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0),
)
SMTP_CONNECTION_ERRORS = Counter(
    "tacso_smtp_connection_errors_total",
    "Failed attempts to open an SMTP connection (refused, unreachable, TLS or login failed).",
)

# ---- webhooks (notify's webhook workers) --------------------------------------------------------
WEBHOOK_DELIVERIES = Counter(
    "tacso_webhook_deliveries_total",
    "Webhook delivery attempts by outcome: delivered (2xx), retry (failed, another attempt is "
    "scheduled), failed (the last attempt failed), gone (410: subscription disabled), dropped "
    "(its subscription was deleted or disabled meanwhile).",
    ["outcome"],
)
WEBHOOK_SUBSCRIPTIONS_DISABLED = Counter(
    "tacso_webhook_subscriptions_disabled_total",
    "Webhook subscriptions disabled by notify (a 410, or every attempt of a delivery failed).",
)


def prepare_multiprocess(service: str) -> str:
    """Give this API process group a fresh multiprocess directory; return its path.

    Called in gunicorn's master before it forks: the workers inherit the variable, and metric
    values created in them are files there. A fresh directory per start, because files left by a
    previous run would be counted again.
    """
    parent = os.environ.get(MULTIPROC_ENV) or None
    if parent is not None:
        os.makedirs(parent, exist_ok=True)
    path = tempfile.mkdtemp(prefix=f"tacso-{service}-metrics-", dir=parent)
    os.environ[MULTIPROC_ENV] = path
    # prometheus-client chose its value class when it was imported (before this variable was
    # set): choose again, so values created from now on (in the workers) are shared files.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return path


def remove_at_exit(path: str) -> None:
    """Delete the multiprocess directory ``path`` when this process (gunicorn's master) exits.

    Not when a worker exits: gunicorn's workers are forks of the master and run its exit
    handlers too (``sys.exit``), while their siblings still write to the directory.
    """
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)


def mark_worker_dead(pid: int) -> None:
    """gunicorn's ``child_exit``: a dead worker's live gauges no longer count."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def exposition() -> tuple[bytes, str]:
    """The metrics of this process (or of all its gunicorn siblings) and their content type."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def start_metrics_server(port: int, host: str = "0.0.0.0") -> bool:  # noqa: S104
    """Serve this process's metrics on ``port`` (``METRICS_PORT``) in a thread; 0 serves none."""
    if port <= 0:
        return False
    start_http_server(port, addr=host)
    log.info("metrics on :%d/metrics", port)
    return True


class OutboxCollector(Collector):
    """The outbox's pending messages and the age of the oldest, read from the database on a scrape.

    ``stats`` returns (pending count, age of the oldest pending row in seconds or None).
    """

    def __init__(self, service: str, stats: Callable[[], tuple[int, float | None]]) -> None:
        self.service = service
        self.stats = stats

    def collect(self) -> Iterable[Metric]:
        """The two gauges; nothing when the database does not answer (the scrape still works)."""
        try:
            pending, oldest = self.stats()
        except Exception:
            log.warning("outbox metrics: the database does not answer", exc_info=True)
            return
        count = GaugeMetricFamily(
            "tacso_outbox_pending_messages",
            "Messages in the outbox not yet confirmed by the broker.",
            labels=["service"],
        )
        count.add_metric([self.service], pending)
        age = GaugeMetricFamily(
            "tacso_outbox_oldest_pending_age_seconds",
            "Age of the oldest message in the outbox not yet confirmed by the broker (0: none).",
            labels=["service"],
        )
        age.add_metric([self.service], oldest or 0.0)
        yield count
        yield age


def register_outbox(service: str, stats: Callable[[], tuple[int, float | None]]) -> None:
    """Expose the outbox gauges of ``service`` from this process (its relay)."""
    REGISTRY.register(OutboxCollector(service, stats))
