"""Looking at dead-lettered messages and sending them back once the cause is fixed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kombu import Connection

from tacso_shared.consumer import ATTEMPT_HEADER, REASON_HEADER
from tacso_shared.messaging import ConfirmingPublisher, OutgoingMessage, connect, ensure_connected


@dataclass(frozen=True)
class DeadLetter:
    """One message in a dead-letter queue, with why and from where it got there."""

    message_id: str
    message_type: str
    queue: str
    reason: str
    dead_lettered_at: str
    body: bytes
    headers: dict[str, Any]


def _describe(message: Any) -> DeadLetter:
    props = message.properties
    headers = dict(props.get("application_headers") or {})
    deaths = headers.get("x-death") or []
    first_death = deaths[0] if deaths else {}
    queue = str(headers.get("x-tacso-queue") or first_death.get("queue") or "")
    reason = str(headers.get(REASON_HEADER) or first_death.get("reason") or "")
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    return DeadLetter(
        message_id=str(props.get("message_id") or ""),
        message_type=str(props.get("type") or ""),
        queue=queue,
        reason=reason,
        dead_lettered_at=str(headers.get("x-tacso-dead-lettered-at") or ""),
        body=body,
        headers=headers,
    )


@contextlib.contextmanager
def _browse(connection: Connection, queue: str) -> Iterator[tuple[Any, list[Any]]]:
    """Take every message of ``queue`` without acking; the ones not acked go back on close."""
    channel = connection.connection.channel()
    messages: list[Any] = []
    try:
        while (message := channel.basic_get(queue, no_ack=False)) is not None:
            messages.append(message)
        yield channel, messages
    finally:
        with contextlib.suppress(Exception):
            channel.close()


def list_dead_letters(amqp_url: str, queue: str) -> list[DeadLetter]:
    """What ``queue`` holds, oldest first; nothing is removed."""
    with connect(amqp_url, heartbeat=0) as connection:
        ensure_connected(connection)
        with _browse(connection, queue) as (_, messages):
            return [_describe(m) for m in messages]


def replay_dead_letters(
    amqp_url: str, queue: str, select: Callable[[DeadLetter], bool] = lambda _: True
) -> list[DeadLetter]:
    """Send the selected messages back to the work queue they died in, as a first attempt.

    A message is removed from the dead-letter queue only after the broker confirmed its copy.
    """
    replayed: list[DeadLetter] = []
    with connect(amqp_url, heartbeat=0) as connection:
        ensure_connected(connection)
        publisher = ConfirmingPublisher(connection)
        with _browse(connection, queue) as (channel, messages):
            for message in messages:
                dead = _describe(message)
                if not dead.queue or not select(dead):
                    continue
                headers = {
                    k: v
                    for k, v in dead.headers.items()
                    if not k.startswith("x-death") and k not in (REASON_HEADER, ATTEMPT_HEADER)
                }
                headers["x-tacso-replayed-from"] = queue
                copy = OutgoingMessage(
                    message_id=dead.message_id,
                    message_type=dead.message_type,
                    routing_key=dead.queue,
                    body=dead.body,
                    exchange="",
                    headers=headers,
                    correlation_id=message.properties.get("correlation_id"),
                )
                if publisher.publish_batch([copy]):
                    channel.basic_ack(message.delivery_tag)
                    replayed.append(dead)
        publisher.close()
    return replayed


__all__ = ["DeadLetter", "list_dead_letters", "replay_dead_letters"]
