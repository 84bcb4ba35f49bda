"""notify's subscriptions: the queue families it consumes, declared by notify itself.

A consuming service owns its queues and bindings (as eShop registers subscriptions in the
consuming service): ``tacso-notify migrate`` (and ``serve --migrate``) declares them beside the
database migrations, and every worker declares its own queues again when it connects. Each kind of
mail is an independent family, with its own workers, retry schedule and dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tacso_notify.domain import MessageKind
from tacso_shared.contracts import REGISTRATION_STATUSES
from tacso_shared.messaging import connect
from tacso_shared.topology import DEFAULT_RETRY_DELAYS, QueueFamily, WorkQueue, declare_topology


@dataclass(frozen=True)
class MultiKeyFamily(QueueFamily):
    """A family whose country queues are bound to several routing key prefixes."""

    more_prefixes: tuple[str, ...] = ()

    def queue_for(self, country: str) -> WorkQueue:
        prefixes = (self.routing_key_prefix, *self.more_prefixes)
        return WorkQueue(
            f"{self.base}.{country}",
            tuple(f"{prefix}.{country}" for prefix in prefixes),
            dead_letter=self.dead_letter_name,
        )


INVITATIONS = QueueFamily("notify.invitations", "event.published")
PRESS_NOTICES = QueueFamily("notify.press_notices", "event.published")
#: What webhook subscribers may be told: an event's life and its registrations (one binding per
#: status, so ``registration.reminder.<country>`` does not arrive here).
WEBHOOKS = MultiKeyFamily(
    "notify.webhooks",
    "event.published",
    (
        "event.updated",
        "event.cancelled",
        *(f"registration.{status}" for status in REGISTRATION_STATUSES),
    ),
)

#: Every kind of work of notify, by the short name a worker is started with.
QUEUE_FAMILIES: dict[str, QueueFamily] = {
    "invitations": INVITATIONS,
    "press_notices": PRESS_NOTICES,
    "webhooks": WEBHOOKS,
}

#: Which kind of mail each mail family's workers send (``webhooks`` sends no mail).
QUEUE_KINDS: dict[str, MessageKind] = {
    "invitations": MessageKind.INVITATION,
    "press_notices": MessageKind.PRESS_NOTICE,
}


def declare_subscriptions(
    amqp_url: str, retry_delays: Sequence[int] = DEFAULT_RETRY_DELAYS
) -> None:
    """Declare every queue notify consumes, with its bindings and dead-letter queue."""
    with connect(amqp_url) as connection:
        connection.ensure_connection(max_retries=3)
        declare_topology(
            connection,
            retry_delays,
            [q for family in QUEUE_FAMILIES.values() for q in family.queues()],
        )
