"""notify's subscriptions: the queue families it consumes, declared by notify itself.

A consuming service owns its queues and bindings (as eShop registers subscriptions in the
consuming service): ``tacso-notify migrate`` (and ``serve --migrate``) declares them beside the
database migrations, and every worker declares its own queues again when it connects. Each kind of
mail is an independent family, with its own workers, retry schedule and dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Sequence

from tacso_notify.domain import MessageKind
from tacso_shared.messaging import connect
from tacso_shared.topology import DEFAULT_RETRY_DELAYS, QueueFamily, declare_topology

INVITATIONS = QueueFamily("notify.invitations", "event.published")
PRESS_NOTICES = QueueFamily("notify.press_notices", "event.published")

#: Every kind of work of notify, by the short name a worker is started with.
QUEUE_FAMILIES: dict[str, QueueFamily] = {
    "invitations": INVITATIONS,
    "press_notices": PRESS_NOTICES,
}

#: What registry tells notify about organisations: erasures (the ledger is redacted).
REGISTRY_CHANGES = QueueFamily("notify.registry", "organisation.erased")

#: Families of changes (not mail) a worker may take, by the name it is started with.
CHANGE_FAMILIES: dict[str, QueueFamily] = {"registry": REGISTRY_CHANGES}

#: Which kind of mail each family's workers send.
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
            [
                q
                for family in (*QUEUE_FAMILIES.values(), *CHANGE_FAMILIES.values())
                for q in family.queues()
            ],
        )
