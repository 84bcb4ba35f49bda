"""The topology: a queue per country and kind of work, shared dead-letter and retry queues."""

from __future__ import annotations

from click.testing import CliRunner

from tacso_notify.cli import cli
from tacso_shared.topology import INVITATIONS, PRESS_NOTICES, retry_queue
from tacso_shared.vocabulary import COUNTRIES


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

    def test_a_retry_queue_hands_messages_back_by_their_routing_key(self) -> None:
        queue = retry_queue(5)
        assert queue.name == "tacso.retry.5s"
        assert queue.queue_arguments == {"x-message-ttl": 5000, "x-dead-letter-exchange": ""}


def test_the_worker_command_refuses_an_unknown_country() -> None:
    result = CliRunner(env={"ADMIN_API_KEY": "test-admin-key"}).invoke(
        cli, ["worker", "--queue", "invitations", "--countries", "BA,FR"]
    )
    assert result.exit_code != 0 and "FR" in result.output
