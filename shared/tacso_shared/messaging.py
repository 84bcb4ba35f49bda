"""Connections and a publisher that waits for the broker's confirms, a batch at a time."""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import amqp
from kombu import Connection

log = logging.getLogger(__name__)


class PublishError(ConnectionError):
    """The broker did not take responsibility for a message (nack, unroutable, timeout)."""


def broker_urls(url: str) -> list[str]:
    """The nodes of ``AMQP_URL``: one URL, or several separated by ``;`` (a cluster)."""
    return [part.strip() for part in url.split(";") if part.strip()]


def connect(url: str, heartbeat: int = 30, timeout: float = 5.0) -> Connection:
    """An AMQP connection (not yet opened: the first use opens it).

    ``url`` may list the nodes of a cluster separated by ``;`` (kombu's failover URLs): the
    connection opens on one of them, and :func:`ensure_connected` moves on to the next node
    when one refuses.

    The nodes are tried in an order shuffled per connection, then round-robin: many replicas
    spread their connections over the nodes instead of all crowding the first one listed, and
    each node is tried once before any is tried again (kombu's own "shuffle" strategy draws at
    random each time, and always opens on the first URL of the list anyway).
    """
    nodes = broker_urls(url)
    random.shuffle(nodes)
    return Connection(
        ";".join(nodes),
        heartbeat=heartbeat,
        connect_timeout=timeout,
        failover_strategy="round-robin",
    )


def ensure_connected(connection: Connection, timeout: float | None = None) -> None:
    """Open ``connection``, trying every node of its URL once before giving up.

    kombu moves to the next node of a failover URL on each retry (without sleeping in between),
    so the retries are as many as the nodes: a single node gets one retry, as before.
    """
    nodes = max(1, len(connection.alt))
    connection.ensure_connection(
        max_retries=nodes, interval_start=0, interval_step=0.2, interval_max=1, timeout=timeout
    )


def broker_reachable(url: str, timeout: float = 3.0) -> bool:
    """True if the broker at ``url`` (any node of it, for a cluster) accepts a connection now."""
    conn = connect(url, heartbeat=0, timeout=timeout)
    try:
        ensure_connected(conn, timeout=timeout * max(1, len(broker_urls(url))))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False
    finally:
        conn.release()


@dataclass(frozen=True)
class OutgoingMessage:
    """A message ready to go: JSON body, routing key and the envelope attributes as properties."""

    message_id: str
    message_type: str
    routing_key: str
    body: bytes
    exchange: str = "tacso"
    headers: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None


class ConfirmingPublisher:
    """Publishes persistent, mandatory messages and waits for confirms per batch.

    A synchronous confirm per message costs one round trip each; here a whole batch goes out and
    then all its confirms are awaited together. ``publish_batch`` returns the ids the broker
    confirmed; the caller keeps the rest for a later try.
    """

    def __init__(self, connection: Connection, confirm_timeout: float = 10.0) -> None:
        self._connection = connection
        self._confirm_timeout = confirm_timeout
        self._channel: Any = None
        self._acked: set[int] = set()
        self._nacked: set[int] = set()
        self._returned: set[str] = set()
        self._next_tag = 1
        self._awaited: set[int] = set()

    def _ensure_channel(self) -> Any:
        if self._channel is None:
            ensure_connected(self._connection)
            channel = self._connection.connection.channel()
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            channel.events["basic_return"].add(self._on_return)
            self._channel = channel
            self._next_tag = 1
        return self._channel

    def _settle(self, tag: int, multiple: bool, into: set[int]) -> None:
        if multiple:
            # Only the tags still awaited: earlier batches' tags are long forgotten.
            into.update(t for t in self._awaited if t <= tag)
        else:
            into.add(tag)

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, self._acked)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, self._nacked)

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        message_id = message.properties.get("message_id")
        log.warning("broker returned unroutable message %s (%s): %s", message_id, routing_key, exc)
        if message_id:
            self._returned.add(message_id)

    def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[str]:
        """Publish ``messages``; return the ids of those the broker confirmed and routed."""
        if not messages:
            return []
        channel = self._ensure_channel()
        tags: dict[int, str] = {}
        try:
            for message in messages:
                props: dict[str, Any] = {
                    "content_type": "application/json",
                    "content_encoding": "utf-8",
                    "delivery_mode": 2,
                    "message_id": message.message_id,
                    "type": message.message_type,
                    "timestamp": int(time.time()),
                    "application_headers": message.headers,
                }
                if message.correlation_id:
                    props["correlation_id"] = message.correlation_id
                channel.basic_publish(
                    amqp.Message(message.body, **props),
                    exchange=message.exchange,
                    routing_key=message.routing_key,
                    mandatory=True,
                )
                tags[self._next_tag] = message.message_id
                self._awaited.add(self._next_tag)
                self._next_tag += 1
            self._wait_for(tags)
        except (TimeoutError, OSError, amqp.exceptions.AMQPError) as exc:
            self.close()
            raise PublishError(f"publishing failed: {exc}") from exc
        confirmed = [
            mid
            for tag, mid in tags.items()
            if tag in self._acked and tag not in self._nacked and mid not in self._returned
        ]
        for tag in tags:
            self._acked.discard(tag)
            self._nacked.discard(tag)
            self._awaited.discard(tag)
        self._returned.difference_update(tags.values())
        return confirmed

    def _wait_for(self, tags: dict[int, str]) -> None:
        deadline = time.monotonic() + self._confirm_timeout
        pending = set(tags)
        while True:
            pending -= self._acked | self._nacked
            if not pending:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishError(f"{len(pending)} confirms did not arrive in time")
            self._connection.connection.drain_events(timeout=remaining)

    def close(self) -> None:
        """Drop the channel; the next publish opens a fresh one."""
        if self._channel is not None:
            # Closing a broken channel may fail too; it is dropped either way.
            with contextlib.suppress(Exception):
                self._channel.close()
        self._channel = None
        self._acked.clear()
        self._nacked.clear()
        self._returned.clear()
        self._awaited.clear()


class SyncPublisher:
    """Publishes from one thread, on a connection of its own, and returns once confirmed.

    For a handler that must hand work on before it acts (a fan-out's next page): the consumer's
    own connection belongs to its I/O thread, so the handler thread publishes on this one. It has
    no heartbeats (nobody reads it while idle); a broken connection is replaced and the publish
    tried once more before :class:`PublishError` is raised.
    """

    def __init__(self, url: str, confirm_timeout: float = 10.0) -> None:
        self._url = url
        self._confirm_timeout = confirm_timeout
        self._connection: Connection | None = None
        self._publisher: ConfirmingPublisher | None = None

    def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish ``messages``; raise :class:`PublishError` unless the broker took them all."""
        for attempt in (1, 2):
            try:
                if self._publisher is None:
                    self._connection = connect(self._url, heartbeat=0)
                    self._publisher = ConfirmingPublisher(self._connection, self._confirm_timeout)
                confirmed = self._publisher.publish_batch(messages)
                if len(confirmed) == len(messages):
                    return
                raise PublishError(f"{len(messages) - len(confirmed)} messages not confirmed")
            except Exception as exc:
                self.close()
                if attempt == 2:
                    if isinstance(exc, PublishError):
                        raise
                    raise PublishError(f"publishing failed: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Drop the connection; the next publish opens a new one."""
        if self._publisher is not None:
            self._publisher.close()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.release()
        self._publisher = self._connection = None
