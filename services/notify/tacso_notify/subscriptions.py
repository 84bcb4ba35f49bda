"""notify's subscriptions: the queue families it consumes, declared by notify itself.

A consuming service owns its queues and bindings (as eShop registers subscriptions in the
consuming service): ``tacso-notify migrate`` (and ``serve --migrate``) declares them beside the
database migrations, and every worker declares its own queues again when it connects. Each kind of
mail is an independent family, with its own workers, retry schedule and dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from tacso_notify.domain import REGISTRATION_KINDS, MessageKind
from tacso_shared.contracts import REGISTRATION_STATUSES
from tacso_shared.messaging import connect
from tacso_shared.topology import DEFAULT_RETRY_DELAYS, QueueFamily, WorkQueue, declare_topology


@dataclass(frozen=True)
class BoundToSeveral(QueueFamily):
    """A family whose country queues take several kinds of message (``<prefix>.<country>`` for
    the main prefix and each of ``also``)."""

    also: tuple[str, ...] = ()

    def queue_for(self, country: str) -> WorkQueue:
        queue = super().queue_for(country)
        extra = tuple(f"{prefix}.{country}" for prefix in self.also)
        return replace(queue, routing_keys=(*queue.routing_keys, *extra))


@dataclass(frozen=True)
class StatusQueueFamily(QueueFamily):
    """A family whose country queue is bound to several ``<prefix>.<status>.<country>`` keys."""

    statuses: tuple[str, ...] = ()

    def queue_for(self, country: str) -> WorkQueue:
        return WorkQueue(
            f"{self.base}.{country}",
            tuple(f"{self.routing_key_prefix}.{status}.{country}" for status in self.statuses),
            dead_letter=self.dead_letter_name,
        )


INVITATIONS = QueueFamily("notify.invitations", "event.published")
PRESS_NOTICES = QueueFamily("notify.press_notices", "event.published")
#: Update and cancellation notices of published events (one family: their order matters less
#: than their independence from invitations; a cancellation supersedes a pending update).
UPDATES = BoundToSeveral("notify.updates", "event.updated", also=("event.cancelled",))
#: Reminders to confirmed registrants (one mail per message: transactional, a small family).
REMINDERS = QueueFamily("notify.reminders", "registration.reminder")
#: Transactional mail to one registrant per status change: small, never behind a fan-out.
#: Not ``registration.reminder.*``: reminders are a family of their own.
REGISTRATIONS = StatusQueueFamily(
    "notify.registrations", "registration", statuses=tuple(REGISTRATION_KINDS)
)
#: What webhook subscribers may be told: an event's life and its registrations (one binding per
#: status, so ``registration.reminder.<country>`` does not arrive here).
WEBHOOKS = BoundToSeveral(
    "notify.webhooks",
    "event.published",
    also=(
        "event.updated",
        "event.cancelled",
        *(f"registration.{status}" for status in REGISTRATION_STATUSES),
    ),
)
#: Account mail (sign-up confirmations, invitations): ``account.signup.XX``, ``account.invited.XX``.
ACCOUNTS = QueueFamily("notify.accounts", "account.*")

#: Every kind of work of notify, by the short name a worker is started with.
QUEUE_FAMILIES: dict[str, QueueFamily] = {
    "invitations": INVITATIONS,
    "press_notices": PRESS_NOTICES,
    "registrations": REGISTRATIONS,
    "updates": UPDATES,
    "reminders": REMINDERS,
    "webhooks": WEBHOOKS,
    "accounts": ACCOUNTS,
}

#: What registry tells notify about organisations: erasures (the ledger is redacted).
REGISTRY_CHANGES = QueueFamily("notify.registry", "organisation.erased")

#: Families of changes (not mail) a worker may take, by the name it is started with.
CHANGE_FAMILIES: dict[str, QueueFamily] = {"registry": REGISTRY_CHANGES}

#: Which kind of mail each fan-out family's workers send (the families an operator's
#: ``resend-failed`` re-drives: invitations and press notices; a registrations worker sends one
#: kind per status: ``REGISTRATION_KINDS``; ``webhooks`` sends no mail).
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
