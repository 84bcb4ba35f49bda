"""The consumer base: validate, hand to a plain function, ack only after it succeeded.

The connection's I/O (deliveries, acks, heartbeats) stays on the main thread; the handler runs on a
worker thread, so a long fan-out never starves the heartbeat (pika #636, #1104 describe the trap).

Outcomes:
- the handler returned: ack;
- :class:`TransientError` (or any unexpected exception): re-published to the retry queue for the
  next delay of the schedule, then acked; after the last delay, dead-lettered;
- :class:`PoisonMessage` (bad JSON, envelope, type or schema): dead-lettered at once with the reason
  in the ``x-tacso-reason`` header, and the consumer goes on with the next message.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kombu import Connection, Consumer
from kombu.exceptions import OperationalError
from kombu.message import Message

from tacso_shared import correlation, metrics
from tacso_shared.contracts import load_data
from tacso_shared.envelope import Envelope, PoisonMessage, parse_envelope
from tacso_shared.messaging import (
    ConfirmingPublisher,
    OutgoingMessage,
    connect,
    ensure_connected,
)
from tacso_shared.topology import (
    DEAD_LETTER_EXCHANGE,
    DEFAULT_RETRY_DELAYS,
    WorkQueue,
    declare_topology,
    retry_queue_name,
)

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-tacso-attempt"
REASON_HEADER = "x-tacso-reason"

Handler = Callable[[Envelope, Any], None]
#: Validates an envelope's ``data`` by its type; raises :class:`PoisonMessage` if it cannot.
Loader = Callable[[Envelope], Any]


class TransientError(Exception):
    """Handling failed for a reason that may pass (a service or server down): try again later.

    ``progress=True`` says the handler got some of its work done first; the retry schedule then
    starts again from its first delay instead of moving towards dead-lettering.
    """

    def __init__(self, reason: str, progress: bool = False) -> None:
        super().__init__(reason)
        self.progress = progress


class Requeue(Exception):
    """The handler stopped early (shutdown), its work safe: hand the message back, no penalty."""


@dataclass(frozen=True)
class _Delivery:
    message: Message
    work_queue: WorkQueue
    #: Which connection it came on: an outcome for an earlier, lost connection is dropped (the
    #: broker has already given that message back to the queue).
    generation: int = 0


@dataclass(frozen=True)
class _Outcome:
    delivery: _Delivery
    action: str  # "ack", "retry", "requeue" or "dead"
    reason: str = ""
    progress: bool = False


class QueueWorker:
    """Consumes work queues with a plain handler function, until :meth:`stop` is called."""

    def __init__(
        self,
        amqp_url: str,
        work_queues: WorkQueue | Sequence[WorkQueue],
        handler: Handler,
        retry_delays: Sequence[int] = DEFAULT_RETRY_DELAYS,
        prefetch: int = 10,
        heartbeat: int = 30,
        shutdown_timeout: float = 8.0,
        stopping: threading.Event | None = None,
        loader: Loader = load_data,
    ) -> None:
        self.amqp_url = amqp_url
        self.work_queues = (
            [work_queues] if isinstance(work_queues, WorkQueue) else list(work_queues)
        )
        self.label = ",".join(q.name for q in self.work_queues)
        self.handler = handler
        #: The integration contracts by default; a service adds its own internal message types.
        self.loader = loader
        self.retry_delays = tuple(retry_delays)
        self.prefetch = prefetch
        self.heartbeat = heartbeat
        self.shutdown_timeout = shutdown_timeout
        #: Set by :meth:`stop`; handlers may watch it to finish early and :class:`Requeue`.
        self.stopping = stopping or threading.Event()
        self._inbox: queue.Queue[_Delivery | None] = queue.Queue()
        self._outcomes: queue.Queue[_Outcome] = queue.Queue()
        self._busy = threading.Event()
        self._generation = 0
        self._thread = threading.Thread(target=self._work, name="handler", daemon=True)

    # ---- handler thread -------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            delivery = self._inbox.get()
            if delivery is None:
                return
            self._busy.set()
            try:
                outcome = self._handle(delivery)
            except BaseException as exc:  # the handler thread must survive whatever happened
                log.exception("%s: handling failed outside the handler", self.label)
                outcome = _Outcome(delivery, "retry", f"{type(exc).__name__}: {exc}")
            finally:
                self._busy.clear()
            self._outcomes.put(outcome)

    def _handle(self, delivery: _Delivery) -> _Outcome:
        # Every line logged while this message is handled carries its correlation id.
        with correlation.bound(delivery.message.properties.get("correlation_id")):
            return self._handle_bound(delivery)

    def _handle_bound(self, delivery: _Delivery) -> _Outcome:
        name = delivery.work_queue.name
        try:
            envelope = parse_envelope(delivery.message.body)
            data = self.loader(envelope)
        except PoisonMessage as exc:
            return _Outcome(delivery, "dead", str(exc))
        except Exception as exc:  # noqa: BLE001 - whatever the decoder raised, the body is poison
            return _Outcome(delivery, "dead", f"undecodable: {type(exc).__name__}: {exc}"[:1000])
        if envelope.correlationid is not None:
            correlation.set_current(envelope.correlationid)
        try:
            self.handler(envelope, data)
        except PoisonMessage as exc:
            return _Outcome(delivery, "dead", str(exc))
        except TransientError as exc:
            log.warning("%s: %s failed, will retry: %s", name, envelope.id, exc)
            return _Outcome(delivery, "retry", str(exc), exc.progress)
        except Requeue as exc:
            log.info("%s: %s handed back: %s", name, envelope.id, exc)
            return _Outcome(delivery, "requeue", str(exc))
        except Exception as exc:
            log.exception("%s: %s failed unexpectedly", name, envelope.id)
            return _Outcome(delivery, "retry", f"{type(exc).__name__}: {exc}")
        return _Outcome(delivery, "ack")

    # ---- connection thread ----------------------------------------------------------------
    def _receiver(self, work_queue: WorkQueue) -> Callable[[Message], None]:
        def on_message(message: Message) -> None:
            self._inbox.put(_Delivery(message, work_queue, self._generation))

        return on_message

    def _settle(self, outcome: _Outcome, publisher: ConfirmingPublisher) -> None:
        with correlation.bound(outcome.delivery.message.properties.get("correlation_id")):
            self._settle_bound(outcome, publisher)

    def _settle_bound(self, outcome: _Outcome, publisher: ConfirmingPublisher) -> None:
        message = outcome.delivery.message
        work_queue = outcome.delivery.work_queue
        if outcome.action == "ack":
            message.ack()
            metrics.MESSAGES_HANDLED.labels(work_queue.name).inc()
            return
        headers = dict(message.headers or {})
        try:
            attempt = max(1, int(headers.get(ATTEMPT_HEADER, 1)))
        except (TypeError, ValueError):
            attempt = 1
        if outcome.progress:
            attempt = 1
        if outcome.action == "requeue":
            # Back after the shortest delay, same attempt count: shutting down is no failure.
            target = (retry_queue_name(self.retry_delays[0]), work_queue.name)
        elif outcome.action == "retry" and attempt <= len(self.retry_delays):
            delay = self.retry_delays[attempt - 1]
            headers[ATTEMPT_HEADER] = attempt + 1
            target = (retry_queue_name(delay), work_queue.name)
            metrics.MESSAGES_RETRIED.labels(work_queue.name).inc()
        else:
            if outcome.action == "retry":
                outcome = _Outcome(
                    outcome.delivery, "dead", f"gave up after {attempt} attempts: {outcome.reason}"
                )
            headers[REASON_HEADER] = outcome.reason[:1000]
            headers["x-tacso-dead-lettered-at"] = datetime.now(UTC).isoformat()
            headers["x-tacso-queue"] = work_queue.name
            target = (DEAD_LETTER_EXCHANGE.name, work_queue.dead_letter_name)
            metrics.MESSAGES_DEAD_LETTERED.labels(work_queue.name).inc()
            log.error(
                "%s: dead-lettering %s: %s",
                work_queue.name,
                message.properties.get("message_id"),
                outcome.reason,
            )
        props = message.properties
        copy = OutgoingMessage(
            message_id=str(props.get("message_id") or ""),
            message_type=str(props.get("type") or ""),
            routing_key=target[1],
            body=message.body if isinstance(message.body, bytes) else str(message.body).encode(),
            exchange=target[0],
            headers=headers,
            correlation_id=props.get("correlation_id"),
        )
        if publisher.publish_batch([copy]):
            message.ack()
        else:
            # The broker did not take the copy: let RabbitMQ dead-letter the original instead.
            message.reject(requeue=False)

    def _drain_outcomes(self, publisher: ConfirmingPublisher) -> None:
        while True:
            try:
                outcome = self._outcomes.get_nowait()
            except queue.Empty:
                return
            if outcome.delivery.generation != self._generation:
                log.info(
                    "%s: dropping the outcome of a delivery from a lost connection", self.label
                )
                continue
            self._settle(outcome, publisher)

    def run(self) -> None:
        """Consume until :meth:`stop`; reconnect with backoff when the broker goes away."""
        self._thread.start()
        backoff = 0.5
        while not self.stopping.is_set():
            connection = connect(self.amqp_url, heartbeat=self.heartbeat)
            self._generation += 1
            try:
                ensure_connected(connection)
                declare_topology(connection, self.retry_delays, self.work_queues)
                self._consume(connection)
                backoff = 0.5
            except (
                OSError,
                OperationalError,
                *connection.connection_errors,
                *connection.channel_errors,
            ) as exc:
                log.warning(
                    "%s: broker connection lost (%s); reconnecting in %.1fs",
                    self.label,
                    exc,
                    backoff,
                )
                self._forget_unsettled()
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception:
                # Whatever else broke the connection loop, the worker lives on and tries again:
                # a consumer must not die (its messages would wait for a person).
                log.exception("%s: consumer loop failed; restarting in %.1fs", self.label, backoff)
                self._forget_unsettled()
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                # A broken connection may not close cleanly; it is dropped either way.
                with contextlib.suppress(Exception):
                    connection.release()
        self._inbox.put(None)
        self._thread.join(timeout=self.shutdown_timeout)

    def _forget_unsettled(self) -> None:
        """Deliveries of a lost channel cannot be acked: the broker redelivers them."""
        while True:
            try:
                self._inbox.get_nowait()
            except queue.Empty:
                break
        deadline = time.monotonic() + self.shutdown_timeout
        while self._busy.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        while True:
            try:
                self._outcomes.get_nowait()
            except queue.Empty:
                break

    def _consume(self, connection: Connection) -> None:
        channel = connection.channel()
        publisher = ConfirmingPublisher(connection)
        channel.basic_qos(0, self.prefetch, False)
        consumers = [
            Consumer(
                channel,
                queues=[work_queue.queue()],
                on_message=self._receiver(work_queue),
                auto_declare=False,
            )
            for work_queue in self.work_queues
        ]
        for consumer in consumers:
            consumer.consume()
        log.info("%s: consuming", self.label)
        try:
            while not self.stopping.is_set():
                if not self._thread.is_alive():
                    log.error("%s: the handler thread died; starting a new one", self.label)
                    self._busy.clear()
                    self._thread = threading.Thread(target=self._work, name="handler", daemon=True)
                    self._thread.start()
                self._drain_outcomes(publisher)
                busy = self._busy.is_set() or not self._inbox.empty()
                try:
                    connection.drain_events(timeout=0.05 if busy else 0.5)
                except TimeoutError:
                    connection.heartbeat_check()
            self._shutdown(connection, consumers, publisher)
        finally:
            publisher.close()

    def _shutdown(
        self, connection: Connection, consumers: list[Consumer], publisher: ConfirmingPublisher
    ) -> None:
        """Stop taking messages, give back the unstarted ones, settle the one in flight."""
        for consumer in consumers:
            consumer.cancel()
        while True:
            try:
                unstarted = self._inbox.get_nowait()
            except queue.Empty:
                break
            if unstarted is not None:
                unstarted.message.reject(requeue=True)
        deadline = time.monotonic() + self.shutdown_timeout
        while self._busy.is_set() and time.monotonic() < deadline:
            try:
                connection.drain_events(timeout=0.05)
            except TimeoutError:
                connection.heartbeat_check()
        self._drain_outcomes(publisher)

    def stop(self) -> None:
        """Ask :meth:`run` to finish (safe from a signal handler)."""
        self.stopping.set()
