"""The messaging machinery every service shares: exchanges, retry and dead-letter queues, and
the shape of a consumer's work queues (which queues exist is each consuming service's own
business: it declares its subscriptions at deploy time and whenever it connects).

- ``tacso`` (topic): all integration messages; routing keys are ``<what>.<action>.<country>``.
- ``tacso.unrouted`` (fanout, the alternate exchange of ``tacso``): a message that no queue is
  bound for yet (``organisation.registered`` before anyone subscribes to it) is kept in the bounded
  ``tacso.unrouted`` queue instead of being dropped.
- Work queues come in families (:class:`QueueFamily`), one queue per country
  (``<family>.BA`` bound to ``<what>.<action>.BA``), so a worker can consume all countries or a
  subset; the queues of a family share one dead-letter queue (``<family>.dead``).
- ``tacso.retry.<n>s`` (topic exchange + queue with a TTL of ``n`` seconds): a message whose
  handling failed for a passing reason waits there, then returns to its work queue.
- ``tacso.dlx`` (direct): a message that can never succeed goes to its family's dead-letter
  queue with the reason in its headers.

Work queues are durable quorum queues with a delivery limit, so a message that crashes its
consumer over and over ends in the dead-letter queue instead of looping forever.

Every queue is a quorum queue, the retry and unrouted queues too: on a RabbitMQ cluster each is
replicated on every node (up to five), so with one node stopped every queue still has a leader.
A classic queue lives on one node only; while that node is down it can be neither declared
(every process declares the topology when it connects) nor published to. A classic retry or
unrouted queue left by an earlier version is replaced once it is empty (see
:func:`declare_topology`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from amqp.exceptions import AMQPNotImplementedError, PreconditionFailed
from kombu import Connection, Exchange, Queue, binding

from tacso_shared.messaging import ensure_connected
from tacso_shared.vocabulary import COUNTRIES

log = logging.getLogger(__name__)

#: Messages no queue is bound for (yet) land here instead of being dropped or returned.
UNROUTED_EXCHANGE = Exchange("tacso.unrouted", type="fanout", durable=True)
UNROUTED_QUEUE = Queue(
    "tacso.unrouted",
    exchange=UNROUTED_EXCHANGE,
    durable=True,
    queue_arguments={"x-queue-type": "quorum", "x-max-length": 100_000, "x-overflow": "drop-head"},
)
EXCHANGE = Exchange(
    "tacso",
    type="topic",
    durable=True,
    arguments={"alternate-exchange": UNROUTED_EXCHANGE.name},
)
DEAD_LETTER_EXCHANGE = Exchange("tacso.dlx", type="direct", durable=True)

#: Seconds between attempts of a message whose handling failed for a transient reason.
DEFAULT_RETRY_DELAYS: tuple[int, ...] = (1, 5, 30, 120, 600)
DEFAULT_DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class WorkQueue:
    """A consumer's durable queue, with its bindings and the dead-letter queue it shares."""

    name: str
    routing_keys: tuple[str, ...]
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT
    #: Several work queues of one family (one per country) share a dead-letter queue.
    dead_letter: str | None = None

    @property
    def dead_letter_name(self) -> str:
        return self.dead_letter or f"{self.name}.dead"

    def queue(self) -> Queue:
        """The work queue itself: quorum, durable, dead-lettering to its dead-letter queue."""
        return Queue(
            self.name,
            bindings=[binding(EXCHANGE, routing_key=key) for key in self.routing_keys],
            durable=True,
            queue_arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": self.delivery_limit,
                "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name,
                "x-dead-letter-routing-key": self.dead_letter_name,
            },
        )

    def dead_letter_queue(self) -> Queue:
        return Queue(
            self.dead_letter_name,
            exchange=DEAD_LETTER_EXCHANGE,
            routing_key=self.dead_letter_name,
            durable=True,
            queue_arguments={"x-queue-type": "quorum"},
        )

    def all_queues(self) -> list[Queue]:
        return [self.queue(), self.dead_letter_queue()]


def retry_queue_name(delay: int) -> str:
    """The queue that holds messages ``delay`` seconds before their next attempt."""
    return f"tacso.retry.{delay}s"


def retry_queue(delay: int) -> Queue:
    """Holds a message ``delay`` seconds, then hands it back to the queue its routing key names.

    A worker re-publishes a failed message to the exchange ``tacso.retry.<delay>s`` with the
    work queue's name as routing key. The retry queue has a TTL and dead-letters through the
    default exchange without a routing key of its own, so the message keeps that key and lands
    back in its work queue. One retry queue per delay serves every work queue.

    A quorum queue (message TTL on quorum queues needs RabbitMQ 3.10), dead-lettering
    *at least once*: RabbitMQ keeps a message whose TTL ran out until the work queue confirmed
    it, instead of dropping it if the work queue has no leader at that instant (a node stopping).
    That strategy needs ``reject-publish`` overflow; the queue has no length limit, so it never
    rejects.
    """
    return Queue(
        retry_queue_name(delay),
        exchange=Exchange(retry_queue_name(delay), type="topic", durable=True),
        routing_key="#",
        durable=True,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-message-ttl": delay * 1000,
            "x-dead-letter-exchange": "",
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )


@dataclass(frozen=True)
class QueueFamily:
    """One kind of work, with a queue per country so a worker can take a subset of countries."""

    base: str
    routing_key_prefix: str

    @property
    def dead_letter_name(self) -> str:
        return f"{self.base}.dead"

    def queue_for(self, country: str) -> WorkQueue:
        return WorkQueue(
            f"{self.base}.{country}",
            (f"{self.routing_key_prefix}.{country}",),
            dead_letter=self.dead_letter_name,
        )

    def queues(self, countries: Iterable[str] | None = None) -> list[WorkQueue]:
        """The family's work queues for ``countries`` (all countries if ``None``)."""
        return [self.queue_for(c) for c in (sorted(COUNTRIES) if countries is None else countries)]


def declare_topology(
    connection: Connection,
    retry_delays: Sequence[int] = DEFAULT_RETRY_DELAYS,
    work_queues: Iterable[WorkQueue] = (),
) -> None:
    """Declare the exchanges, the retry queues and ``work_queues`` (idempotent).

    Every process calls it when it connects; a consuming service passes its own work queues
    (and declares them at deploy time too, so a message published before its first worker ever
    started waits in its queue). The connection is opened first on whichever node of a cluster
    answers (kombu's own lazy open tries only one).
    """
    ensure_connected(connection)
    channel = connection.channel()
    try:
        for exchange in (UNROUTED_EXCHANGE, EXCHANGE, DEAD_LETTER_EXCHANGE):
            exchange(channel).declare()
        channel = _declare_replacing_classic(connection, channel, UNROUTED_QUEUE)
        for work_queue in work_queues:
            for queue in work_queue.all_queues():
                queue(channel).declare()
        for delay in retry_delays:
            queue = retry_queue(delay)
            queue.exchange(channel).declare()
            channel = _declare_replacing_classic(connection, channel, queue)
    finally:
        channel.close()


def _declare_replacing_classic(connection: Connection, channel: Any, queue: Queue) -> Any:
    """Declare ``queue``; if an earlier version left it as a classic queue, replace it if empty.

    The retry and unrouted queues were classic queues before they became quorum queues, and
    RabbitMQ refuses to declare a queue with another type (the channel is closed). An empty one
    is deleted and declared again; one that still holds messages is left as it is, with a
    warning, and used as before until it has drained (a retry queue empties within its delay).
    Returns the channel to go on with (a new one if the broker closed the first).
    """
    try:
        queue(channel).declare()
        return channel
    except PreconditionFailed as exc:
        channel = connection.channel()
        try:
            channel.queue_delete(queue.name, if_empty=True)
        except AMQPNotImplementedError:
            # Quorum queues refuse an if-empty delete (and close the connection): the queue is a
            # quorum queue with other arguments, no earlier version's classic queue. A person
            # must decide about it: the original refusal says which argument differs.
            raise exc from None
        except PreconditionFailed:
            log.warning(
                "queue %s exists with other arguments (an earlier version's classic queue?) "
                "and is not empty: kept as it is until it has drained (%s)",
                queue.name,
                exc,
            )
            return connection.channel()
        log.info("queue %s: an earlier version's empty queue replaced (quorum now)", queue.name)
        queue(channel).declare()
        return channel
