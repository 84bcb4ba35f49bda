"""Outbox relay and consumer base against the real RabbitMQ."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
import sqlalchemy as sa
from kombu import Connection
from prometheus_client import REGISTRY

from support.infra import amqp_url_via, postgres_databases
from support.tcp_proxy import TcpProxy
from support.waiting import wait_until
from tacso_shared import correlation
from tacso_shared.consumer import QueueWorker, TransientError
from tacso_shared.contracts import ORGANISATION_REGISTERED
from tacso_shared.db import make_engine
from tacso_shared.envelope import Envelope
from tacso_shared.messaging import (
    ConfirmingPublisher,
    OutgoingMessage,
    SyncPublisher,
    broker_reachable,
    broker_urls,
    connect,
)
from tacso_shared.outbox import OutboxRelay, enqueue, outbox_table
from tacso_shared.topology import WorkQueue, declare_topology


def org_envelope(n: int, country: str = "BA") -> Envelope:
    return Envelope(
        type=ORGANISATION_REGISTERED,
        source="/test",
        data={
            "organisation_id": f"org-{n}",
            "name": f"Org {n}",
            "kind": "cso",
            "country": country,
            "email": f"org{n}@example.org",
            "language": "bs",
            "topics": ["youth"],
        },
    )


def depth(amqp_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        count: int = connection.channel().queue_declare(queue, passive=True).method.message_count
        return count
    finally:
        connection.close()


def ready_and_consumers(amqp_url: str, queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of ``queue``, both from one passive declare."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        method = connection.channel().queue_declare(queue, passive=True).method
        return int(method.message_count), int(method.consumer_count)
    finally:
        connection.close()


def unacked(amqp_url: str, queue: str) -> int:
    """Messages delivered to a consumer and not yet acked (from ``rabbitmqctl``)."""
    vhost = amqp_url.rsplit("/", 1)[1]
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages_unacknowledged"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    for line in out.splitlines():
        name, _, count = line.partition("\t")
        if name == queue:
            return int(count)
    raise AssertionError(f"queue {queue} not listed")


def get_one(amqp_url: str, queue: str) -> tuple[Any, bytes]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        method, props, body = connection.channel().basic_get(queue, auto_ack=True)
        assert method is not None, f"{queue} is empty"
        return props, body
    finally:
        connection.close()


@pytest.fixture
def work_queue(request: pytest.FixtureRequest) -> WorkQueue:
    return WorkQueue(f"test.{request.node.name[:60]}", ("organisation.registered.*",))


class TestOutboxRelay:
    def test_publishes_pending_rows_in_a_batch_and_marks_them_published(
        self, tmp_path: Path, amqp_url: str, work_queue: WorkQueue
    ) -> None:
        with Connection(amqp_url) as conn:
            declare_topology(conn, (1,), [work_queue])
        engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
        metadata = sa.MetaData()
        table = outbox_table(metadata)
        metadata.create_all(engine)
        with engine.begin() as conn, sa.orm.Session(bind=conn) as session:
            for n in range(250):
                enqueue(session, table, org_envelope(n))
            session.flush()
        relay = OutboxRelay(engine, table, amqp_url, batch_size=100)
        assert relay.pending_count() == 250
        assert relay.run_once() == 100
        assert relay.run_once() == 100
        assert relay.run_once() == 50
        assert relay.pending_count() == 0
        wait_until(lambda: depth(amqp_url, work_queue.name) == 250, timeout=10)
        props, body = get_one(amqp_url, work_queue.name)
        assert props.delivery_mode == 2 and props.content_type == "application/json"
        assert props.message_id and props.message_id in body.decode()

    def test_rows_stay_pending_while_the_broker_is_unreachable(self, tmp_path: Path) -> None:
        engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
        metadata = sa.MetaData()
        table = outbox_table(metadata)
        metadata.create_all(engine)
        with engine.begin() as conn, sa.orm.Session(bind=conn) as session:
            enqueue(session, table, org_envelope(1))
            session.flush()
        # Port 9 (discard) has no AMQP server on it on this machine.
        relay = OutboxRelay(engine, table, "amqp://guest:guest@127.0.0.1:9//", batch_size=10)
        assert relay.run_once() == 0
        assert relay.pending_count() == 1
        assert relay.last_error
        with engine.connect() as conn:
            assert conn.execute(sa.select(table.c.attempts)).scalar_one() == 1


def message_ids(amqp_url: str, queue: str) -> list[str]:
    """Take every message out of ``queue``; return their message ids."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ids: list[str] = []
    try:
        channel = connection.channel()
        while True:
            method, props, _ = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return ids
            ids.append(str(props.message_id))
    finally:
        connection.close()


class TestRelayReplicas:
    """Two relays on one outbox (two replicas of a relay) publish each row once."""

    ROWS = 1500

    def _two_relays_drain(self, database_url: str, amqp_url: str, work_queue: WorkQueue) -> None:
        with Connection(amqp_url) as conn:
            declare_topology(conn, (1,), [work_queue])
        engine = make_engine(database_url)
        metadata = sa.MetaData()
        table = outbox_table(metadata)
        metadata.create_all(engine)
        expected = set()
        with engine.begin() as conn, sa.orm.Session(bind=conn) as session:
            for n in range(self.ROWS):
                envelope = org_envelope(n)
                expected.add(envelope.id)
                enqueue(session, table, envelope)
        relays = [OutboxRelay(engine, table, amqp_url, batch_size=50) for _ in range(2)]
        published = [0, 0]
        start = threading.Barrier(2)

        def run(i: int) -> None:
            start.wait()
            while (n := relays[i].run_once()) > 0:
                published[i] += n

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        for relay in relays:
            relay.stopping.set()
            relay.run_forever()  # returns at once, closing the connection
        assert relays[0].pending_count() == 0
        assert sum(published) == self.ROWS, published
        wait_until(lambda: depth(amqp_url, work_queue.name) == self.ROWS, timeout=30)
        ids = message_ids(amqp_url, work_queue.name)
        assert len(ids) == self.ROWS and set(ids) == expected, "each row published exactly once"
        engine.dispose()

    def test_two_relays_on_postgresql_take_different_rows(
        self, amqp_url: str, work_queue: WorkQueue
    ) -> None:
        with postgres_databases("relays") as urls:
            self._two_relays_drain(urls["relays"], amqp_url, work_queue)

    def test_two_relays_on_sqlite_take_turns(
        self, tmp_path: Path, amqp_url: str, work_queue: WorkQueue
    ) -> None:
        self._two_relays_drain(f"sqlite:///{tmp_path / 'db.sqlite3'}", amqp_url, work_queue)


class _Recorder:
    """A handler that records each call (envelope id and when) and fails on request."""

    def __init__(self, fail_times: int = 0, always_fail: bool = False) -> None:
        self.calls: list[str] = []
        self.times: list[float] = []
        self.fail_times = fail_times
        self.always_fail = always_fail
        self.lock = threading.Lock()

    def __call__(self, envelope: Envelope, data: dict[str, Any]) -> None:
        with self.lock:
            self.calls.append(envelope.id)
            self.times.append(time.monotonic())
            if self.always_fail or len(self.calls) <= self.fail_times:
                raise TransientError("registry down")


def _stop(worker: QueueWorker, thread: threading.Thread) -> None:
    worker.stop()
    thread.join(timeout=15)
    assert not thread.is_alive(), "the worker stops when asked"


@pytest.fixture
def run_worker(amqp_url: str) -> Iterator[Any]:
    """Start a QueueWorker in a thread; return a function that stops it (closing its connection).

    Workers still running when the test ends are stopped then.
    """
    workers: list[tuple[QueueWorker, threading.Thread]] = []

    def start(
        work_queue: WorkQueue, handler: Any, delays: tuple[int, ...] = (1, 1)
    ) -> Callable[[], None]:
        worker = QueueWorker(amqp_url, work_queue, handler, retry_delays=delays)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        workers.append((worker, thread))
        return lambda: _stop(worker, thread)

    yield start
    for worker, thread in workers:
        if thread.is_alive():
            _stop(worker, thread)


def publish(amqp_url: str, work_queue: WorkQueue, *messages: OutgoingMessage) -> None:
    with Connection(amqp_url) as conn:
        declare_topology(conn, (1,), [work_queue])
        confirmed = ConfirmingPublisher(conn).publish_batch(messages)
        assert len(confirmed) == len(messages)


def message(envelope: Envelope, body: bytes | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=envelope.id,
        message_type=envelope.type,
        routing_key="organisation.registered.BA",
        body=body if body is not None else envelope.to_json().encode(),
    )


class TestQueueWorker:
    def test_a_valid_message_reaches_the_handler_and_is_acked(
        self, amqp_url: str, work_queue: WorkQueue, run_worker: Any
    ) -> None:
        handler = _Recorder()
        stop_worker = run_worker(work_queue, handler)
        env = org_envelope(1)
        publish(amqp_url, work_queue, message(env))
        wait_until(lambda: handler.calls == [env.id], timeout=10)
        # A passive declare counts only ready messages, not one the worker holds unacked (and
        # rabbitmqctl's unacked figure for a quorum queue lags). So stop the worker: when its
        # consumer is gone, the broker has handed back whatever it left unacked, and the same
        # passive declare that shows no consumer shows what came back.
        stop_worker()

        def ready_once_no_consumer() -> tuple[int] | None:
            ready, consumers = ready_and_consumers(amqp_url, work_queue.name)
            return (ready,) if consumers == 0 else None

        found = wait_until(ready_once_no_consumer, timeout=10, message="the consumer gone")
        assert found == (0,), "the message was delivered but never acked"
        assert depth(amqp_url, work_queue.dead_letter_name) == 0, "acked, not dead-lettered"
        assert handler.calls == [env.id], "handled once"

    def test_poison_goes_to_the_dead_letter_queue_with_its_reason_and_work_goes_on(
        self, amqp_url: str, work_queue: WorkQueue, run_worker: Any
    ) -> None:
        handler = _Recorder()
        run_worker(work_queue, handler)
        bad = org_envelope(2)
        wrong = Envelope(type=ORGANISATION_REGISTERED, source="/t", data={"name": "no id"})
        good = org_envelope(3)
        publish(amqp_url, work_queue, message(bad, b"{not json"), message(wrong), message(good))
        wait_until(lambda: handler.calls == [good.id], timeout=10)
        wait_until(lambda: depth(amqp_url, work_queue.dead_letter_name) == 2, timeout=10)
        props, body = get_one(amqp_url, work_queue.dead_letter_name)
        assert body == b"{not json"
        assert "not JSON" in props.headers["x-tacso-reason"]

    def test_a_transient_failure_is_retried_after_a_delay(
        self, amqp_url: str, work_queue: WorkQueue, run_worker: Any
    ) -> None:
        handler = _Recorder(fail_times=2)
        run_worker(work_queue, handler, (1, 2))
        env = org_envelope(4)
        publish(amqp_url, work_queue, message(env))
        wait_until(lambda: len(handler.calls) == 3, timeout=15)
        assert set(handler.calls) == {env.id}
        # The retry schedule is 1 s, then 2 s: each attempt waits its delay in the retry queue
        # (the TTL is exact to the millisecond; the upper bound leaves room for a busy host).
        first_gap = handler.times[1] - handler.times[0]
        second_gap = handler.times[2] - handler.times[1]
        assert 0.95 <= first_gap < 4, f"first retry after {first_gap:.2f} s, expected 1 s"
        assert 1.95 <= second_gap < 5, f"second retry after {second_gap:.2f} s, expected 2 s"
        assert depth(amqp_url, work_queue.dead_letter_name) == 0

    def test_a_message_that_keeps_failing_is_dead_lettered_after_the_last_delay(
        self, amqp_url: str, work_queue: WorkQueue, run_worker: Any
    ) -> None:
        handler = _Recorder(always_fail=True)
        run_worker(work_queue, handler, (1, 1))
        publish(amqp_url, work_queue, message(org_envelope(5)))
        wait_until(lambda: depth(amqp_url, work_queue.dead_letter_name) == 1, timeout=20)
        assert len(handler.calls) == 3
        props, _ = get_one(amqp_url, work_queue.dead_letter_name)
        assert "gave up after 3 attempts" in props.headers["x-tacso-reason"]


class TestObservability:
    def test_handled_retried_and_dead_lettered_messages_are_counted_per_queue(
        self, amqp_url: str, work_queue: WorkQueue, run_worker: Any
    ) -> None:
        def count(name: str) -> float:
            return REGISTRY.get_sample_value(name, {"queue": work_queue.name}) or 0.0

        names = (
            "tacso_messages_handled_total",
            "tacso_messages_retried_total",
            "tacso_messages_dead_lettered_total",
        )
        before = {name: count(name) for name in names}
        handler = _Recorder(fail_times=1)
        run_worker(work_queue, handler, (1, 1))
        publish(amqp_url, work_queue, message(org_envelope(6)), message(org_envelope(7), b"[]"))
        wait_until(lambda: count(names[0]) - before[names[0]] == 1, timeout=15)
        wait_until(lambda: count(names[2]) - before[names[2]] == 1, timeout=15)
        assert count(names[1]) - before[names[1]] == 1

    def test_the_handler_runs_under_the_messages_correlation_id(
        self, amqp_url: str, work_queue: WorkQueue, run_worker: Any
    ) -> None:
        seen: list[str | None] = []
        run_worker(work_queue, lambda envelope, data: seen.append(correlation.current()))
        env = Envelope(
            type=ORGANISATION_REGISTERED,
            source="/test",
            data=org_envelope(8).data,
            correlationid="trace-8",
        )
        publish(amqp_url, work_queue, message(env))
        wait_until(lambda: seen == ["trace-8"], timeout=10)
        assert correlation.current() is None


class TestConnectionLoss:
    def test_a_worker_reconnects_after_the_broker_connection_drops(
        self, amqp_url: str, work_queue: WorkQueue
    ) -> None:
        handler = _Recorder()
        with TcpProxy("127.0.0.1", 5672) as proxy:
            worker = QueueWorker(
                amqp_url_via(amqp_url, "127.0.0.1", proxy.port), work_queue, handler, (1,)
            )
            thread = threading.Thread(target=worker.run, daemon=True)
            thread.start()
            try:
                first = org_envelope(10)
                publish(amqp_url, work_queue, message(first))
                wait_until(lambda: handler.calls == [first.id], timeout=10)
                # Acked before the connection goes, or it would (rightly) be delivered again.
                wait_until(lambda: unacked(amqp_url, work_queue.name) == 0, timeout=10)
                proxy.disable()
                proxy.enable()
                second = org_envelope(11)
                publish(amqp_url, work_queue, message(second))
                wait_until(lambda: handler.calls == [first.id, second.id], timeout=20)
                assert thread.is_alive(), "the worker survives losing its connection"
            finally:
                worker.stop()
                thread.join(timeout=15)
        assert not thread.is_alive()

    def test_a_worker_keeps_trying_while_the_broker_refuses_connections(
        self, amqp_url: str, work_queue: WorkQueue, caplog: pytest.LogCaptureFixture
    ) -> None:
        handler = _Recorder()
        first_proxy = TcpProxy("127.0.0.1", 5672)
        first_proxy.start()
        port = first_proxy.port
        worker = QueueWorker(amqp_url_via(amqp_url, "127.0.0.1", port), work_queue, handler, (1,))
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            wait_until(lambda: first_proxy.active_connections > 0, timeout=10)
            # The broker goes away entirely: connections are refused, not just reset.
            first_proxy.stop()
            envelope = org_envelope(12)
            publish(amqp_url, work_queue, message(envelope))
            # Two failed attempts after the connection went: at least one was refused outright.
            wait_until(
                lambda: sum("connection lost" in r.getMessage() for r in caplog.records) >= 3,
                timeout=20,
            )
            assert thread.is_alive() and not handler.calls
            with TcpProxy("127.0.0.1", 5672, listen_port=port):
                wait_until(lambda: handler.calls == [envelope.id], timeout=30)
                assert thread.is_alive(), "the worker survives refused connections"
        finally:
            worker.stop()
            thread.join(timeout=15)
        assert not thread.is_alive()


def failover_url(amqp_url: str, *ports: int) -> str:
    """``AMQP_URL`` for a cluster whose nodes listen on ``ports`` (kombu's ``;`` failover list)."""
    return ";".join(amqp_url_via(amqp_url, "127.0.0.1", port) for port in ports)


class TestFailover:
    """``AMQP_URL`` may list several nodes: every connection moves on to the next that answers.

    Two TCP proxies in front of the local broker stand for two nodes of a cluster; port 9
    (nothing listens on it here) for a node that is down.
    """

    def test_the_broker_is_reachable_while_any_node_answers(self, amqp_url: str) -> None:
        assert broker_reachable(failover_url(amqp_url, 9, 5672))
        assert broker_reachable(failover_url(amqp_url, 9, 9, 5672))
        assert not broker_reachable(failover_url(amqp_url, 9, 9))

    def test_a_relay_publishes_through_the_next_node_when_one_is_down(
        self, tmp_path: Path, amqp_url: str, work_queue: WorkQueue
    ) -> None:
        with Connection(amqp_url) as conn:
            declare_topology(conn, (1,), [work_queue])
        engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
        metadata = sa.MetaData()
        table = outbox_table(metadata)
        metadata.create_all(engine)
        with engine.begin() as conn, sa.orm.Session(bind=conn) as session:
            for n in range(20):
                enqueue(session, table, org_envelope(n))
        # Whichever node the shuffle tries first, the down one is skipped.
        for _ in range(3):
            relay = OutboxRelay(engine, table, failover_url(amqp_url, 9, 9, 5672), batch_size=5)
            assert relay.run_once() == 5, relay.last_error
            relay.stopping.set()
            relay.run_forever()  # returns at once: closes its connection
        assert relay.pending_count() == 5
        wait_until(lambda: depth(amqp_url, work_queue.name) == 15, timeout=10)

    def test_a_sync_publisher_publishes_through_the_next_node(
        self, amqp_url: str, work_queue: WorkQueue
    ) -> None:
        with Connection(amqp_url) as conn:
            declare_topology(conn, (1,), [work_queue])
        publisher = SyncPublisher(failover_url(amqp_url, 9, 5672))
        try:
            publisher.publish([message(org_envelope(n)) for n in range(3)])
        finally:
            publisher.close()
        wait_until(lambda: depth(amqp_url, work_queue.name) == 3, timeout=10)

    def test_a_worker_moves_to_another_node_when_its_node_goes_away(
        self, amqp_url: str, work_queue: WorkQueue
    ) -> None:
        handler = _Recorder()
        with TcpProxy("127.0.0.1", 5672) as node_a, TcpProxy("127.0.0.1", 5672) as node_b:
            url = failover_url(amqp_url, node_a.port, node_b.port)
            worker = QueueWorker(url, work_queue, handler, (1,))
            thread = threading.Thread(target=worker.run, daemon=True)
            thread.start()
            try:
                first = org_envelope(20)
                publish(amqp_url, work_queue, message(first))
                wait_until(lambda: handler.calls == [first.id], timeout=10)
                wait_until(lambda: unacked(amqp_url, work_queue.name) == 0, timeout=10)
                node, other = (node_a, node_b) if node_a.active_connections else (node_b, node_a)
                connected = (node.active_connections, other.active_connections)
                assert connected[0] > 0 and connected[1] == 0, connected
                node.stop()  # the node is gone: its connections reset, new ones refused
                second = org_envelope(21)
                publish(amqp_url, work_queue, message(second))
                wait_until(lambda: handler.calls == [first.id, second.id], timeout=20)
                assert other.active_connections, "the worker reconnected to the other node"
                assert thread.is_alive()
            finally:
                worker.stop()
                thread.join(timeout=15)
        assert not thread.is_alive()


class TestFailoverUrls:
    def test_a_cluster_url_lists_every_node_once_in_a_shuffled_order(self) -> None:
        urls = [f"amqp://u:p@rabbit-{n}:5672/v" for n in (1, 2, 3)]
        seen_first = set()
        for _ in range(50):
            connection = connect(" ; ".join(urls), heartbeat=0)
            assert sorted(connection.alt) == urls
            seen_first.add(connection.alt[0])
        assert len(seen_first) > 1, "connections spread over the nodes"
        assert broker_urls(";".join(urls) + ";") == urls

    def test_a_single_url_stays_as_it_is(self) -> None:
        connection = connect("amqp://guest:guest@127.0.0.1:5672//", heartbeat=0)
        assert connection.as_uri() == "amqp://guest:**@127.0.0.1:5672//"
