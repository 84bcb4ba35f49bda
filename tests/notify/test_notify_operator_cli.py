"""The operator's commands: dead letters, delivery status, re-sending failed mail (real broker)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika
import pytest
from click.testing import CliRunner
from kombu import Connection

from support.messages import event_published
from support.waiting import wait_until
from tacso_notify.bootstrap import apply_migrations, bootstrap, load_settings
from tacso_notify.cli import cli
from tacso_notify.domain import Recipient
from tacso_notify.subscriptions import INVITATIONS, REGISTRY_CHANGES
from tacso_shared.consumer import QueueWorker
from tacso_shared.contracts import envelope_of, load_data
from tacso_shared.envelope import Envelope
from tacso_shared.topology import declare_topology


def depth(amqp_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        count: int = connection.channel().queue_declare(queue, passive=True).method.message_count
        return count
    finally:
        connection.close()


@pytest.fixture
def env(tmp_path: Path, amqp_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "AMQP_URL": amqp_url,
        "NOTIFY_DATABASE_URL": f"sqlite:///{tmp_path / 'notify.sqlite3'}",
        "RETRY_DELAYS": "1",
        "ADMIN_API_KEY": "test-admin-key",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    apply_migrations(load_settings().common)
    with Connection(amqp_url) as conn:
        # What `tacso-notify migrate` declares: notify's own subscriptions.
        declare_topology(conn, (1,), INVITATIONS.queues())
        # Earlier tests of the session may have left dead letters: start from empty queues.
        channel = conn.channel()
        for queue in (INVITATIONS.dead_letter_name, INVITATIONS.queue_for("BA").name):
            channel.queue_purge(queue)
    return values


@pytest.fixture
def dead_lettering_worker(amqp_url: str, env: dict[str, str]) -> Iterator[QueueWorker]:
    worker = QueueWorker(amqp_url, INVITATIONS.queues(["BA"]), lambda e, d: None, (1,))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    yield worker
    worker.stop()
    thread.join(timeout=15)


def run(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def event_envelope() -> Envelope:
    event = event_published(
        event_id="11111111-1111-1111-1111-111111111111",
        revision=1,
        title="Migration and refugee response",
        type="training",
        country="BA",
        topics=["migration"],
        starts_at=datetime(2026, 12, 1, 9, tzinfo=UTC),
        ends_at=datetime(2026, 12, 1, 12, tzinfo=UTC),
        online_url="https://meet.example.org/x",
        organiser_id="o",
        organiser_name="VESTA",
        url="http://localhost:5002/api/v1/events/1",
    )
    return envelope_of(event, "/test")


class TestDeadLetterCommands:
    def test_list_show_and_replay_a_poison_message(
        self, amqp_url: str, dead_lettering_worker: QueueWorker
    ) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            "tacso",
            "event.published.BA",
            b"not json at all",
            pika.BasicProperties(message_id="poison-1", delivery_mode=2),
        )
        connection.close()
        dead = INVITATIONS.dead_letter_name
        wait_until(lambda: depth(amqp_url, dead) == 1, timeout=15)

        listed = run("dead", "list", "--kind", "invitations").output
        assert "poison-1" in listed and "notify.invitations.BA" in listed and "not JSON" in listed
        assert depth(amqp_url, dead) == 1, "listing removes nothing"

        shown = run("dead", "show", "--kind", "invitations", "poison-1").output
        assert "not json at all" in shown and "x-tacso-reason" in shown

        dead_lettering_worker.stop()
        wait_until(lambda: not dead_lettering_worker._thread.is_alive(), timeout=15)
        replayed = run("dead", "replay", "--kind", "invitations", "--all").output
        assert "1 message(s) replayed" in replayed
        wait_until(lambda: depth(amqp_url, dead) == 0, timeout=10)
        assert depth(amqp_url, INVITATIONS.queue_for("BA").name) == 1

    def test_registrys_changes_have_their_dead_letter_queue_too(
        self, amqp_url: str, env: dict[str, str]
    ) -> None:
        queue = REGISTRY_CHANGES.queue_for("BA")
        worker = QueueWorker(amqp_url, queue, lambda e, d: None, (1,))
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            # The worker declares its queue: publish once it is there, or nothing routes it.
            wait_until(lambda: depth(amqp_url, queue.name) == 0, timeout=15)
            with closing(pika.BlockingConnection(pika.URLParameters(amqp_url))) as connection:
                channel = connection.channel()
                channel.confirm_delivery()
                channel.basic_publish(
                    "tacso",
                    queue.routing_keys[0],
                    b"not json either",
                    pika.BasicProperties(message_id="poison-registry", delivery_mode=2),
                )
            dead = REGISTRY_CHANGES.dead_letter_name
            wait_until(lambda: depth(amqp_url, dead) == 1, timeout=15)
        finally:
            worker.stop()
            thread.join(timeout=15)
        listed = run("dead", "list", "--kind", "registry").output
        assert "poison-registry" in listed and queue.name in listed
        replayed = run("dead", "replay", "--kind", "registry", "--id", "poison-registry").output
        assert "1 message(s) replayed" in replayed
        wait_until(lambda: depth(amqp_url, dead) == 0, timeout=10)

    def test_replay_needs_ids_or_all(self, env: dict[str, str]) -> None:
        result = CliRunner().invoke(cli, ["dead", "replay"])
        assert result.exit_code != 0 and "--all" in result.output


class TestResendFailed:
    def test_failed_deliveries_are_reopened_unsuppressed_and_requeued(
        self, amqp_url: str, env: dict[str, str]
    ) -> None:
        notify = bootstrap()
        envelope = event_envelope()
        event = load_data(envelope)
        notify.ledger.save_snapshot(event.event_id, 1, envelope.to_json())
        recipients = [
            Recipient(f"org-{i}", f"Org {i}", f"org{i}@example.org", "bs") for i in range(3)
        ]
        notify.ledger.ensure(event, "invitation", recipients)
        claimed, _ = notify.ledger.claim(
            event, "invitation", [r.organisation_id for r in recipients], "t", 60
        )
        (first, _), (second, _), (third, _) = claimed
        notify.ledger.record([first], failed=[(second, "550 no such user"), (third, "552 full")])
        notify.ledger.suppress([("org1@example.org", "550"), ("org2@example.org", "552")])

        status = run("status", event.event_id).output
        assert "invitation: failed 2, sent 1" in status

        output = run("resend-failed", event.event_id).output
        assert "2 failed deliveries" in output
        assert notify.ledger.counts(event.event_id) == {"invitation": {"pending": 2, "sent": 1}}
        assert notify.ledger.suppressed(["org1@example.org", "org2@example.org"]) == {}
        queue = INVITATIONS.queue_for("BA").name
        wait_until(lambda: depth(amqp_url, queue) == 1, timeout=10)
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        _, _, body = connection.channel().basic_get(queue, auto_ack=True)
        connection.close()
        # A page task that starts a fan-out chain of its own from the first page.
        task = json.loads(body)
        assert task["type"] == "org.tacso.notify.fanout.page.v1"
        assert task["data"]["event_id"] == event.event_id
        assert task["data"]["after"] is None
        assert task["data"]["kind"] == "invitation"
        assert task["data"]["chain"].startswith("resend-")

    def test_an_unknown_event_is_a_clear_error(self, env: dict[str, str]) -> None:
        result = CliRunner().invoke(cli, ["resend-failed", "nope"])
        assert result.exit_code != 0 and "never received event nope" in result.output
