"""The topology: a queue per country and kind of work, shared dead-letter and retry queues."""

from __future__ import annotations

import time
from contextlib import closing
from typing import Any

import pika
import pytest
from amqp.exceptions import PreconditionFailed
from click.testing import CliRunner
from kombu import Connection

from support.infra import rabbitmq_vhost
from support.waiting import wait_until
from tacso_notify.cli import cli
from tacso_notify.subscriptions import INVITATIONS, PRESS_NOTICES
from tacso_shared.topology import (
    UNROUTED_QUEUE,
    WorkQueue,
    declare_topology,
    retry_queue,
    retry_queue_name,
)
from tacso_shared.vocabulary import COUNTRIES


def _ready(channel: Any, queue: str) -> int:
    """Messages ready in ``queue`` (a passive declare)."""
    count: int = channel.queue_declare(queue, passive=True).method.message_count
    return count


class TestQueueFamilies:
    def test_every_country_has_its_own_queue_bound_to_its_routing_key(self) -> None:
        queues = INVITATIONS.queues()
        assert [q.name for q in queues] == [f"notify.invitations.{c}" for c in sorted(COUNTRIES)]
        ba = INVITATIONS.queue_for("BA").queue()
        assert [b.routing_key for b in ba.bindings] == ["event.published.BA"]
        assert ba.queue_arguments["x-queue-type"] == "quorum"
        assert ba.queue_arguments["x-delivery-limit"] == 20

    def test_a_worker_can_take_a_subset_of_countries(self) -> None:
        assert [q.name for q in PRESS_NOTICES.queues(["RS", "BA"])] == [
            "notify.press_notices.RS",
            "notify.press_notices.BA",
        ]

    def test_the_queues_of_a_family_share_one_dead_letter_queue(self) -> None:
        names = {q.dead_letter_name for q in INVITATIONS.queues()}
        assert names == {"notify.invitations.dead"}
        assert (
            INVITATIONS.queue_for("XK").queue().queue_arguments["x-dead-letter-routing-key"]
            == "notify.invitations.dead"
        )

    def test_a_retry_queue_hands_messages_back_by_their_routing_key(self, amqp_url: str) -> None:
        assert retry_queue(5).name == "tacso.retry.5s"
        work_queue = WorkQueue("test.retry-hand-back", ("test.retry.hand-back",))
        with Connection(amqp_url) as conn:
            declare_topology(conn, (1,), [work_queue])
        parameters = pika.URLParameters(amqp_url)
        with closing(pika.BlockingConnection(parameters)) as connection:
            channel = connection.channel()
            channel.queue_purge(work_queue.name)
            channel.confirm_delivery()
            # What a worker does with a failed message: publish it to the retry exchange with
            # the name of its work queue as routing key.
            channel.basic_publish(
                retry_queue_name(1),
                work_queue.name,
                b"try again",
                pika.BasicProperties(delivery_mode=2),
                mandatory=True,
            )
            published = time.monotonic()
            assert _ready(channel, retry_queue_name(1)) >= 1, "it waits in the retry queue"
            assert _ready(channel, work_queue.name) == 0, "not in the work queue yet"

            wait_until(lambda: _ready(channel, work_queue.name) == 1, timeout=10, interval=0.02)
            waited = time.monotonic() - published
            method, _properties, body = channel.basic_get(work_queue.name, auto_ack=True)
        assert method is not None and body == b"try again"
        assert method.routing_key == work_queue.name
        assert 0.9 <= waited < 5, f"back after {waited:.2f} s; the retry queue's TTL is 1 s"


def test_the_worker_command_refuses_an_unknown_country() -> None:
    result = CliRunner(env={"ADMIN_API_KEY": "test-admin-key"}).invoke(
        cli, ["worker", "--queue", "invitations", "--countries", "BA,FR"]
    )
    assert result.exit_code != 0 and "FR" in result.output


@pytest.mark.integration
def test_notify_migrate_declares_its_own_subscriptions(tmp_path: Any) -> None:
    """The consuming service's deploy-time step: its queues exist before any worker starts, so
    an event published before the first worker waits in its queue instead of going unrouted."""
    with rabbitmq_vhost() as vhost_url:  # a fresh one: nothing declared the queues before
        _migrate_and_check(vhost_url, tmp_path)


def _migrate_and_check(vhost_url: str, tmp_path: Any) -> None:
    result = CliRunner(
        env={
            "ADMIN_API_KEY": "test-admin-key",
            "AMQP_URL": vhost_url,
            "NOTIFY_DATABASE_URL": f"sqlite:///{tmp_path / 'notify.sqlite3'}",
        }
    ).invoke(cli, ["migrate"])
    assert result.exit_code == 0, result.output
    # A few attempts: right after a burst of quorum-queue declarations a busy broker has been
    # seen to take over 15 s (pika's handshake timeout) to accept the next connection.
    parameters = pika.URLParameters(f"{vhost_url}?connection_attempts=4&retry_delay=2")
    with closing(pika.BlockingConnection(parameters)) as connection:
        channel = connection.channel()
        for family in (INVITATIONS, PRESS_NOTICES):
            for queue in family.queues():
                channel.queue_declare(queue.name, passive=True)
            channel.queue_declare(family.dead_letter_name, passive=True)


class TestQuorumEverywhere:
    """Every queue is a quorum queue, so a cluster keeps them all with one node down."""

    def test_retry_and_unrouted_queues_are_quorum_queues_dead_lettering_at_least_once(
        self,
    ) -> None:
        arguments = retry_queue(5).queue_arguments
        assert arguments["x-queue-type"] == "quorum"
        assert arguments["x-dead-letter-strategy"] == "at-least-once"
        assert arguments["x-overflow"] == "reject-publish"
        assert UNROUTED_QUEUE.queue_arguments["x-queue-type"] == "quorum"

    def test_an_earlier_versions_empty_classic_retry_queue_is_replaced(self, amqp_url: str) -> None:
        delay = 7777  # a retry queue of its own, in the session's virtual host
        with closing(pika.BlockingConnection(pika.URLParameters(amqp_url))) as connection:
            connection.channel().queue_declare(
                retry_queue_name(delay),
                durable=True,
                arguments={"x-message-ttl": delay * 1000, "x-dead-letter-exchange": ""},
            )
        with Connection(amqp_url) as conn:
            declare_topology(conn, (delay,), [])
        with closing(pika.BlockingConnection(pika.URLParameters(amqp_url))) as connection:
            channel = connection.channel()
            # A passive declare does not check the type; declaring it as quorum does.
            channel.queue_declare(
                retry_queue_name(delay), durable=True, arguments=retry_queue(delay).queue_arguments
            )

    def test_a_quorum_retry_queue_with_other_arguments_is_left_alone_and_reported(
        self, amqp_url: str
    ) -> None:
        delay = 7778
        arguments = {**retry_queue(delay).queue_arguments, "x-message-ttl": 1000}
        with closing(pika.BlockingConnection(pika.URLParameters(amqp_url))) as connection:
            connection.channel().queue_declare(
                retry_queue_name(delay), durable=True, arguments=arguments
            )
        with Connection(amqp_url) as conn, pytest.raises(PreconditionFailed, match="ttl"):
            declare_topology(conn, (delay,), [])
        with closing(pika.BlockingConnection(pika.URLParameters(amqp_url))) as connection:
            # Still there, unchanged.
            connection.channel().queue_declare(
                retry_queue_name(delay), durable=True, arguments=arguments
            )
