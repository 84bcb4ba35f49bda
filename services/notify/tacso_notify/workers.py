"""Wiring of a notify worker: the consumer, its handler, the SMTP pool and the page publisher.

Only ``tacso-notify worker`` imports this module: the API process has no use for any of it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from tacso_notify.account_mail import AccountMailer, make_account_handler
from tacso_notify.audience import RegistryDirectory
from tacso_notify.bootstrap import Notify
from tacso_notify.erasure import make_erasure_handler
from tacso_notify.handlers import Dependencies, make_handler, warm_up
from tacso_notify.lifecycle import make_notice_handler, make_reminder_handler
from tacso_notify.mailer import SmtpMailer
from tacso_notify.mirror import LifecycleStore
from tacso_notify.prefetch import MAX_AGE, PagePrefetcher
from tacso_notify.registration_mail import make_registration_handler, warm_up_registrations
from tacso_notify.rendering import RsvpLinks
from tacso_notify.sending import SenderPool
from tacso_notify.subscriptions import ACCOUNTS, CHANGE_FAMILIES, QUEUE_FAMILIES, QUEUE_KINDS
from tacso_notify.tasks import PageTask, load_message, page_task_message
from tacso_notify.unsubscribe import UnsubscribeLinks
from tacso_notify.webhooks import deliver_due, record_message
from tacso_shared import correlation
from tacso_shared.calendar import uid_domain
from tacso_shared.consumer import Handler, QueueWorker
from tacso_shared.contracts import load_data
from tacso_shared.envelope import Envelope
from tacso_shared.links import LinkSigner
from tacso_shared.messaging import SyncPublisher

log = logging.getLogger(__name__)


def build_worker(
    notify: Notify, queue: str, countries: Sequence[str] | None = None
) -> NotifyWorker | WebhookWorker:
    """A worker for one family (``invitations``, ``press_notices``, ``registrations``,
    ``updates``, ``reminders``, ``accounts``, ``webhooks``) or for registry's changes
    (``registry``), all countries or only ``countries``."""
    if queue == "webhooks":
        return build_webhook_worker(notify, countries)
    if queue == "accounts":
        return build_account_worker(notify, countries)
    if queue in CHANGE_FAMILIES:
        return build_registry_worker(notify, countries)
    settings = notify.settings
    pool = SenderPool(
        lambda: SmtpMailer(settings.smtp),
        connections=settings.smtp_connections,
        rate_per_second=settings.smtp_rate_limit,
    )
    stopping = threading.Event()
    family = QUEUE_FAMILIES[queue]
    publisher = SyncPublisher(settings.common.amqp_url)

    def hand_on(task: PageTask) -> None:
        # Straight to the back of the same country queue: any worker of the family takes it.
        # The next page carries the id of the request that published the event.
        message = page_task_message(
            task, family.queue_for(task.country).name, correlation_id=correlation.current()
        )
        publisher.publish([message])

    directory = RegistryDirectory(settings.registry_url, settings.common.service_credential)
    # Fan-outs of invitations and press notices read their next page while sending this one.
    prefetcher = (
        PagePrefetcher(
            # A read slower than what it may be used for (prefetch.MAX_AGE) is given up.
            RegistryDirectory(
                settings.registry_url, settings.common.service_credential, timeout=(2.0, MAX_AGE)
            )
        )
        if queue in QUEUE_KINDS
        else None
    )
    deps = Dependencies(
        ledger=notify.ledger,
        directory=directory,
        lookup=directory,
        organisations=directory,
        links=RsvpLinks(
            LinkSigner(settings.common.link_signing_keys), settings.common.public_base_url
        ),
        pool=pool,
        sender=settings.sender,
        domain=uid_domain(settings.sender.address),
        lease_seconds=settings.lease_seconds,
        stopping=stopping,
        hand_on=hand_on,
        # Every bulk mail: its recipient's List-Unsubscribe headers and preferences link.
        unsubscribe=UnsubscribeLinks(
            LinkSigner(settings.common.link_signing_keys), settings.common.registry_public_url
        ),
        prefetcher=prefetcher,
    )
    handler: Handler
    warm: Callable[[], None]
    if queue == "updates":
        handler = make_notice_handler(LifecycleStore(notify.sessions), deps)
        warm = lambda: None  # noqa: E731 - notices render per message: nothing to warm
    elif queue == "reminders":
        handler = make_reminder_handler(LifecycleStore(notify.sessions), deps)
        warm = lambda: None  # noqa: E731
    elif queue == "registrations":
        handler = make_registration_handler(deps)
        warm = lambda: warm_up_registrations(deps)  # noqa: E731
    else:
        handler = make_handler(QUEUE_KINDS[queue], deps)
        warm = lambda: warm_up(QUEUE_KINDS[queue], deps)  # noqa: E731
    consumer = QueueWorker(
        settings.common.amqp_url,
        family.queues(countries),
        handler,
        retry_delays=settings.retry_delays,
        prefetch=settings.prefetch,
        stopping=stopping,
        loader=load_message,
    )

    def close() -> None:
        publisher.close()
        if prefetcher is not None:
            prefetcher.close()

    return NotifyWorker(consumer, pool, warm, close)


def build_account_worker(notify: Notify, countries: Sequence[str] | None = None) -> NotifyWorker:
    """A worker of account mail: one SMTP connection, one mail per message."""
    settings = notify.settings
    mailer = SmtpMailer(settings.smtp)
    stopping = threading.Event()
    account_mailer = AccountMailer(
        notify.sessions,
        mailer,
        settings.sender,
        settings.sender.address.rpartition("@")[2] or "tacso.local",
    )
    consumer = QueueWorker(
        settings.common.amqp_url,
        ACCOUNTS.queues(countries),
        make_account_handler(account_mailer),
        retry_delays=settings.retry_delays,
        prefetch=settings.prefetch,
        stopping=stopping,
        loader=load_data,
    )
    return NotifyWorker(consumer, None, lambda: None, mailer.close)


def build_registry_worker(notify: Notify, countries: Sequence[str] | None = None) -> NotifyWorker:
    """The worker of registry's changes: redacts the ledger when an organisation is erased."""
    settings = notify.settings
    consumer = QueueWorker(
        settings.common.amqp_url,
        CHANGE_FAMILIES["registry"].queues(countries),
        make_erasure_handler(notify.sessions),
        retry_delays=settings.retry_delays,
        prefetch=settings.prefetch,
    )
    # It sends no mail: an SMTP pool that is never used opens no connection.
    pool = SenderPool(lambda: SmtpMailer(settings.smtp), connections=1)
    return NotifyWorker(consumer, pool, lambda: None, lambda: None)


@dataclass
class NotifyWorker:
    """A queue consumer and the SMTP connections it sends through."""

    consumer: QueueWorker
    #: The fan-out's SMTP connections (account mail sends on one connection of its own).
    pool: SenderPool | None
    warm_up: Callable[[], None]
    close_publisher: Callable[[], None]

    def run(self) -> None:
        """Consume until stopped, then close the SMTP connections."""
        self.warm_up()
        try:
            self.consumer.run()
        finally:
            if self.pool is not None:
                self.pool.close()
            self.close_publisher()

    def stop(self) -> None:
        """Ask the worker to finish (safe from a signal handler)."""
        self.consumer.stop()


def build_webhook_worker(notify: Notify, countries: Sequence[str] | None = None) -> WebhookWorker:
    """A webhook worker: consumes ``notify.webhooks.<country>`` and sends what is due."""
    settings = notify.settings
    http = requests.Session()
    stopping = threading.Event()

    def handle(envelope: Envelope, message: Any) -> None:
        # Rows first (durable, idempotent per subscription and message), then the first attempt;
        # a failed attempt is scheduled in the database, never a reason to retry the message.
        written = record_message(notify.sessions, envelope, str(message.country))
        if written:
            deliver_due(notify.sessions, settings.webhooks, http, ids=written)

    consumer = QueueWorker(
        settings.common.amqp_url,
        QUEUE_FAMILIES["webhooks"].queues(countries),
        handle,
        retry_delays=settings.retry_delays,
        prefetch=settings.prefetch,
        stopping=stopping,
    )
    return WebhookWorker(
        consumer,
        lambda: deliver_due(notify.sessions, settings.webhooks, http),
        stopping,
        settings.webhooks.poll_interval,
        http,
    )


@dataclass
class WebhookWorker:
    """A queue consumer that writes webhook deliveries, and a loop that sends the due ones
    (retries are rows with a ``next_attempt_at``, so any webhook worker may send them)."""

    consumer: QueueWorker
    deliver: Callable[[], object]
    stopping: threading.Event
    poll_interval: float
    http: requests.Session

    def _loop(self) -> None:
        while not self.stopping.wait(self.poll_interval):
            try:
                self.deliver()
            except Exception:  # the loop must outlive a database hiccup; it tries again
                log.exception("webhook delivery loop failed; trying again")

    def run(self) -> None:
        """Consume and send until stopped."""
        loop = threading.Thread(target=self._loop, name="webhook-retries", daemon=True)
        loop.start()
        try:
            self.consumer.run()
        finally:
            self.stopping.set()
            loop.join(timeout=self.poll_interval + 15)
            self.http.close()

    def stop(self) -> None:
        """Ask the worker to finish (safe from a signal handler)."""
        self.stopping.set()
        self.consumer.stop()
