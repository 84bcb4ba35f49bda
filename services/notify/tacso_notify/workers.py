"""Wiring of a notify worker: the consumer, its handler, the SMTP pool and the page publisher.

Only ``tacso-notify worker`` imports this module: the API process has no use for any of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tacso_notify.audience import RegistryDirectory
from tacso_notify.bootstrap import Notify
from tacso_notify.erasure import make_erasure_handler
from tacso_notify.handlers import Dependencies, make_handler, warm_up
from tacso_notify.mailer import SmtpMailer
from tacso_notify.sending import SenderPool
from tacso_notify.subscriptions import CHANGE_FAMILIES, QUEUE_FAMILIES, QUEUE_KINDS
from tacso_notify.tasks import PageTask, load_message, page_task_message
from tacso_notify.unsubscribe import UnsubscribeLinks
from tacso_shared import correlation
from tacso_shared.consumer import QueueWorker
from tacso_shared.links import LinkSigner
from tacso_shared.messaging import SyncPublisher


def build_worker(
    notify: Notify, queue: str, countries: Sequence[str] | None = None
) -> NotifyWorker:
    """A worker for one kind of mail (``invitations`` or ``press_notices``), or for registry's
    changes (``registry``), all countries or only ``countries``."""
    settings = notify.settings
    if queue in CHANGE_FAMILIES:
        return build_registry_worker(notify, countries)
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

    deps = Dependencies(
        ledger=notify.ledger,
        directory=RegistryDirectory(settings.registry_url, settings.common.service_credential),
        pool=pool,
        sender=settings.sender,
        domain=settings.sender.address.rpartition("@")[2] or "tacso.local",
        lease_seconds=settings.lease_seconds,
        stopping=stopping,
        hand_on=hand_on,
        links=UnsubscribeLinks(
            LinkSigner(settings.common.link_signing_keys), settings.common.registry_public_url
        ),
    )
    consumer = QueueWorker(
        settings.common.amqp_url,
        family.queues(countries),
        make_handler(QUEUE_KINDS[queue], deps),
        retry_delays=settings.retry_delays,
        prefetch=settings.prefetch,
        stopping=stopping,
        loader=load_message,
    )
    return NotifyWorker(consumer, pool, lambda: warm_up(QUEUE_KINDS[queue], deps), publisher.close)


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
    pool: SenderPool
    warm_up: Callable[[], None]
    close_publisher: Callable[[], None]

    def run(self) -> None:
        """Consume until stopped, then close the SMTP connections."""
        self.warm_up()
        try:
            self.consumer.run()
        finally:
            self.pool.close()
            self.close_publisher()

    def stop(self) -> None:
        """Ask the worker to finish (safe from a signal handler)."""
        self.consumer.stop()
