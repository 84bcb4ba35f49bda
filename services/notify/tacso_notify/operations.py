"""What an operator does with notify, as plain functions (the CLI only parses and prints)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from tacso_notify.bootstrap import Notify
from tacso_notify.subscriptions import QUEUE_FAMILIES, QUEUE_KINDS
from tacso_notify.tasks import PageTask, page_task_message
from tacso_shared.envelope import parse_envelope
from tacso_shared.messaging import ConfirmingPublisher, OutgoingMessage, connect


class NeverReceived(Exception):
    """notify has no snapshot of this event: it never received it."""


class NotConfirmed(Exception):
    """The broker did not confirm the re-send; running the command again is safe."""


@dataclass(frozen=True)
class Resent:
    """What :func:`resend_failed` did: how many deliveries it reopened, of which revision."""

    reopened: int
    revision: int


def resend_failed(notify: Notify, event_id: str, queues: Sequence[str]) -> Resent:
    """Reopen an event's failed deliveries of these queue families (lifting their suppression)
    and start a fan-out of them through the workers.

    Whatever is pending gets a page task, so running it again after a failed publish still drives
    the deliveries reopened the first time. Raises :class:`NeverReceived`, :class:`NotConfirmed`.
    """
    snapshot = notify.ledger.latest_snapshot(event_id)
    if snapshot is None:
        raise NeverReceived(event_id)
    published = parse_envelope(snapshot.envelope)
    country = str(published.data["country"])
    reopened = 0
    messages: list[OutgoingMessage] = []
    for queue in queues:
        mail_kind = QUEUE_KINDS[queue].value
        emails = notify.ledger.reopen_failed(event_id, snapshot.revision, mail_kind)
        notify.ledger.unsuppress(emails)
        reopened += len(emails)
        if notify.ledger.counts(event_id).get(mail_kind, {}).get("pending"):
            # A fan-out chain of its own: the first one's pages have all been handed on already.
            task = PageTask(
                event_id=event_id,
                revision=snapshot.revision,
                kind=mail_kind,
                country=country,
                chain=f"resend-{uuid.uuid4()}:{mail_kind}",
            )
            # Under the event's correlation id: one grep still finds every mail about it.
            queue_name = QUEUE_FAMILIES[queue].queue_for(country).name
            messages.append(page_task_message(task, queue_name, published.correlationid))
    if messages:
        with connect(notify.settings.common.amqp_url) as connection:
            confirmed = ConfirmingPublisher(connection).publish_batch(messages)
        if len(confirmed) != len(messages):
            raise NotConfirmed(event_id)
    return Resent(reopened, snapshot.revision)
