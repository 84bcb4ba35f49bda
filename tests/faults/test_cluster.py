"""A three-node RabbitMQ cluster loses a node mid fan-out: nothing lost, nothing sent twice.

The module starts three RabbitMQ nodes of its own on this machine (``support.rabbit_cluster``;
other ports and node names than the system's broker, which is never touched), clusters them,
and runs the fault suite's stack against them with ``AMQP_URL`` listing all three nodes. Each
case picks the node that serves the most of the three invitations workers' connections, makes it
the leader of the country's invitations queue, publishes an event to the suite's audience (2,000
CSOs and 5 media), takes that node away once mail is flowing (case 11: ``rabbitmqctl stop``;
case 12: SIGKILL) and leaves it down: the workers must reconnect to the other nodes, which elect
a new leader, and the fan-out must finish with no person acting, counted exactly as every other
case of the suite (``faults.harness.FaultRun``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from faults.harness import (
    DEAD_LETTER_QUEUES,
    FAULT_ENV,
    WORK_QUEUES,
    Audience,
    FaultReport,
    FaultRun,
    TimedSMTPServer,
    configure,
    seed_audience,
)
from support.rabbit_cluster import ClusterUnavailable, LocalRabbitCluster, rabbit_cluster
from support.stack import Stack, running_stack
from support.waiting import wait_until
from tacso_shared.topology import UNROUTED_QUEUE, retry_queue_name

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.slow]

#: The queue whose leader is stopped: the one the event's invitations go through.
VICTIM_QUEUE = "notify.invitations.RS"
#: Half the suite's rate: stopping a node takes a few seconds of rabbitmqctl, and the fan-out
#: must still be in full flow when the node goes (about 7 s for 2,005 mails at 3 x 100/s).
CLUSTER_ENV = {**FAULT_ENV, "SMTP_RATE_LIMIT": "100"}


@pytest.fixture(autouse=True)
def healthy() -> Iterator[None]:
    """Replaces the suite's per-case check of the system broker: this case has its own."""
    yield


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRabbitCluster]:
    try:
        with rabbit_cluster(tmp_path_factory.mktemp("rabbit-cluster")) as started:
            yield started
    except ClusterUnavailable as exc:
        pytest.skip(f"no local RabbitMQ cluster possible here: {exc}")


@pytest.fixture(scope="module")
def cluster_stack(
    tmp_path_factory: pytest.TempPathFactory,
    cluster: LocalRabbitCluster,
    fault_smtp: TimedSMTPServer,
) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("cluster-stack")
    with running_stack(
        workdir,
        "postgres",
        fault_smtp.host,
        fault_smtp.port,
        CLUSTER_ENV,
        configure=configure,
        amqp_url=cluster.amqp_url,
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def cluster_audience(cluster_stack: Stack) -> Audience:
    return seed_audience(cluster_stack)


class ClusterFaultRun(FaultRun):
    """A FaultRun that asks the cluster (whichever node is up) about its queues."""

    def __init__(self, cluster: LocalRabbitCluster, *args: object, **kwargs: object) -> None:
        self.cluster = cluster
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def dead_letter_counts(self) -> dict[str, int]:
        depths = self.cluster.queue_depths()
        return {q: depths.get(q, 0) for q in DEAD_LETTER_QUEUES}

    def unsettled(self) -> dict[str, int]:
        return {
            name: n
            for name, n in self.cluster.queue_depths().items()
            if n and name.startswith((*WORK_QUEUES, "tacso.retry.")) and not name.endswith(".dead")
        }


def lose_a_node_mid_fan_out(
    case: str,
    how: str,
    cluster: LocalRabbitCluster,
    stack: Stack,
    audience: Audience,
    smtp: TimedSMTPServer,
    report: FaultReport,
) -> None:
    """One case: publish, and once mail flows take away the busiest node (``stop`` or ``kill``).

    The node taken away carries both halves of the fault: the most invitations workers'
    connections (they must reconnect to another node mid fan-out) and the leadership of the
    queue (the others must elect a new leader), moved there first if it is elsewhere.
    Connections are spread at random, so which node that is varies.
    """
    # Any node down from an earlier case comes back first, and catches up.
    for node in cluster.nodes:
        if node not in cluster.live():
            cluster.start_node(node)
    cluster.await_all_running()
    everyone = sorted(node.name for node in cluster.nodes)
    replicated = (VICTIM_QUEUE, "notify.invitations.dead", retry_queue_name(1), UNROUTED_QUEUE.name)
    for queue in replicated:
        assert cluster.members(queue) == everyone, f"{queue} is not replicated on every node"

    run = ClusterFaultRun(cluster, case, stack, smtp, audience, report)

    def all_consuming() -> Counter[str] | None:
        counts = cluster.consumers_by_node(VICTIM_QUEUE)
        return counts if counts.total() >= 3 else None

    consumers = wait_until(
        all_consuming, timeout=60, message=f"three invitations workers consuming {VICTIM_QUEUE}"
    )
    assert consumers is not None
    victim_name, on_victim = consumers.most_common(1)[0]
    victim = next(node for node in cluster.nodes if node.name == victim_name)
    cluster.transfer_leadership(VICTIM_QUEUE, victim)
    logs_before = {name: len(stack.log(name)) for name in stack.specs}
    run.publish()
    run.wait_until_flowing()
    run.fault_now()  # the node goes now (a stop closes its connections at once)
    if how == "kill":
        cluster.kill_node(victim)
    else:
        cluster.stop_node(victim)
    run.result.note = (
        f"{'killed' if how == 'kill' else 'stopped'} the node leading {VICTIM_QUEUE} "
        f"and serving {on_victim} of its 3 consumers"
    )
    run.finish()
    # Which processes were connected to the node (spread at random) and moved to another.
    moved = [
        name
        for name in stack.specs
        if "broker connection lost" in (log := stack.log(name)[logs_before[name] :])
        or "not confirmed" in log
    ]
    run.result.note += f"; reconnected elsewhere: {', '.join(moved) or 'none'}"
    report.add(run.result)
    run.assert_guarantees()
    workers_moved = [name for name in moved if name.startswith("notify-invitations")]
    assert len(workers_moved) >= on_victim, f"{on_victim} workers were on the node: {moved}"
    assert victim not in cluster.live() and len(cluster.live()) == 2
    assert cluster.quorum_leader(VICTIM_QUEUE) != victim, "a surviving node leads the queue"


@pytest.mark.timeout(300)
def test_a_node_stopped_mid_fan_out_loses_nothing_and_the_fan_out_finishes_on_the_others(
    cluster: LocalRabbitCluster,
    cluster_stack: Stack,
    cluster_audience: Audience,
    fault_smtp: TimedSMTPServer,
    fault_report: FaultReport,
) -> None:
    lose_a_node_mid_fan_out(
        "11. 1 of 3 RabbitMQ nodes stopped (cluster)",
        "stop",
        cluster,
        cluster_stack,
        cluster_audience,
        fault_smtp,
        fault_report,
    )


@pytest.mark.timeout(300)
def test_a_node_killed_mid_fan_out_loses_nothing_and_the_fan_out_finishes_on_the_others(
    cluster: LocalRabbitCluster,
    cluster_stack: Stack,
    cluster_audience: Audience,
    fault_smtp: TimedSMTPServer,
    fault_report: FaultReport,
) -> None:
    """The same with SIGKILL to the node's Erlang VM, after the stopped node came back."""
    lose_a_node_mid_fan_out(
        "12. 1 of 3 RabbitMQ nodes killed (cluster)",
        "kill",
        cluster,
        cluster_stack,
        cluster_audience,
        fault_smtp,
        fault_report,
    )
