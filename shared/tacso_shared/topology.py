"""Every exchange, queue, binding, retry and dead-letter queue, declared in one place.

- ``tacso`` (topic): all integration messages; routing keys are ``<what>.<action>.<country>``.
- ``tacso.retry`` (direct): a failed message is re-published here with routing key
  ``<queue>.retry.<delay>s``; the matching retry queue holds it for ``delay`` seconds and then
  dead-letters it back to ``<queue>`` through the default exchange.
- ``tacso.unrouted`` (fanout, the alternate exchange of ``tacso``): a message that no queue is
  bound for yet (``organisation.registered`` before anyone subscribes to it) is kept in the bounded
  ``tacso.unrouted`` queue instead of being dropped.
- ``tacso.dlx`` (direct): a message that can never succeed goes to ``<queue>.dead``, routing key
  ``<queue>``, with the reason in its headers.

Work queues are durable quorum queues with a delivery limit, so a message that crashes its consumer
over and over ends in the dead-letter queue instead of looping forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kombu import Connection, Exchange, Queue, binding

#: Messages no queue is bound for (yet) land here instead of being dropped or returned.
UNROUTED_EXCHANGE = Exchange("tacso.unrouted", type="fanout", durable=True)
UNROUTED_QUEUE = Queue(
    "tacso.unrouted",
    exchange=UNROUTED_EXCHANGE,
    durable=True,
    queue_arguments={"x-max-length": 100_000, "x-overflow": "drop-head"},
)
EXCHANGE = Exchange(
    "tacso",
    type="topic",
    durable=True,
    arguments={"alternate-exchange": UNROUTED_EXCHANGE.name},
)
RETRY_EXCHANGE = Exchange("tacso.retry", type="direct", durable=True)
DEAD_LETTER_EXCHANGE = Exchange("tacso.dlx", type="direct", durable=True)

#: Seconds between attempts of a message whose handling failed for a transient reason.
DEFAULT_RETRY_DELAYS: tuple[int, ...] = (1, 5, 30, 120, 600)
DEFAULT_DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class WorkQueue:
    """A consumer's durable queue, with its bindings, retry queues and dead-letter queue."""

    name: str
    routing_keys: tuple[str, ...]
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT

    @property
    def dead_letter_name(self) -> str:
        return f"{self.name}.dead"

    def retry_name(self, delay: int) -> str:
        return f"{self.name}.retry.{delay}s"

    def queue(self) -> Queue:
        """The work queue itself: quorum, durable, dead-lettering to ``<name>.dead``."""
        return Queue(
            self.name,
            bindings=[binding(EXCHANGE, routing_key=key) for key in self.routing_keys],
            durable=True,
            queue_arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": self.delivery_limit,
                "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name,
                "x-dead-letter-routing-key": self.name,
            },
        )

    def dead_letter_queue(self) -> Queue:
        return Queue(
            self.dead_letter_name,
            exchange=DEAD_LETTER_EXCHANGE,
            routing_key=self.name,
            durable=True,
            queue_arguments={"x-queue-type": "quorum"},
        )

    def retry_queue(self, delay: int) -> Queue:
        """Holds a message ``delay`` seconds, then hands it back to the work queue."""
        return Queue(
            self.retry_name(delay),
            exchange=RETRY_EXCHANGE,
            routing_key=self.retry_name(delay),
            durable=True,
            queue_arguments={
                "x-message-ttl": delay * 1000,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": self.name,
            },
        )

    def all_queues(self, retry_delays: Iterable[int]) -> list[Queue]:
        return [
            self.queue(),
            self.dead_letter_queue(),
            *(self.retry_queue(d) for d in retry_delays),
        ]


INVITATIONS = WorkQueue("notify.invitations", ("event.published.*",))
PRESS_NOTICES = WorkQueue("notify.press_notices", ("event.published.*",))

#: Every work queue of the system, by the short name a worker is started with.
WORK_QUEUES: dict[str, WorkQueue] = {"invitations": INVITATIONS, "press_notices": PRESS_NOTICES}


def declare_topology(
    connection: Connection,
    retry_delays: Sequence[int] = DEFAULT_RETRY_DELAYS,
    work_queues: Iterable[WorkQueue] | None = None,
) -> None:
    """Declare exchanges and queues (idempotent). Every process calls it when it connects.

    Publishers declare the consumers' queues too, so a message published before any consumer
    has ever started is kept rather than dropped as unroutable.
    """
    channel = connection.channel()
    try:
        for exchange in (UNROUTED_EXCHANGE, EXCHANGE, RETRY_EXCHANGE, DEAD_LETTER_EXCHANGE):
            exchange(channel).declare()
        UNROUTED_QUEUE(channel).declare()
        for work_queue in WORK_QUEUES.values() if work_queues is None else work_queues:
            for queue in work_queue.all_queues(retry_delays):
                queue(channel).declare()
    finally:
        channel.close()
