"""What a RabbitMQ cluster costs: confirmed publishing to a quorum queue, one node against three.

    .venv/bin/python -m bench.cluster_publish [N]

Publishes N persistent messages (1 KB, default 20,000) the way the outbox relay does (batches of
500, publisher confirms per batch, ``tacso_shared.messaging.ConfirmingPublisher``) to a quorum
queue, then consumes and acks them all, first on the local broker (one node, a fresh virtual
host), then on a three-node cluster of this machine's own (``support.rabbit_cluster``), then on
that cluster with one node stopped. Prints messages/s of each phase and the CPU seconds the
RabbitMQ nodes used. For docs/scaling.md; nothing asserts a figure.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from kombu import Connection, Queue

from bench.common import ROOT  # noqa: F401 - puts tests/ on sys.path
from support.infra import rabbitmq_vhost
from support.rabbit_cluster import rabbit_cluster
from tacso_shared.messaging import ConfirmingPublisher, OutgoingMessage, connect, ensure_connected

BATCH = 500
#: How the system's node and the cluster's nodes are told apart (see :func:`beam_pids`).
SYSTEM_NODE = "-home\0/var/lib/rabbitmq"
OUR_NODES = "RABBITMQ_NODENAME=tacso-ha-"
BODY = b"x" * 1024


def node_cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU of processes and their children that exited, in seconds."""
    total = 0
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += sum(int(v) for v in stat[11:15])
    return total / 100


def beam_pids(mark: str) -> list[int]:
    """The Erlang VMs whose command line or environment holds ``mark``.

    RabbitMQ 3.10 takes the node name from the environment, not the command line: the system's
    node is told apart by its home directory, ours by ``RABBITMQ_NODENAME``.
    """
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"beam" in cmdline and mark.encode() in cmdline + environ:
            pids.append(int(proc.name))
    return pids


def run(url: str, n: int, label: str, pids: list[int]) -> None:
    queue = f"bench.cluster.{uuid.uuid4().hex[:6]}"
    with Connection(url.split(";")[0]) as conn:
        Queue(queue, durable=True, queue_arguments={"x-queue-type": "quorum"})(
            conn.channel()
        ).declare()
    cpu_before = node_cpu_seconds(pids)
    connection = connect(url, heartbeat=0)
    ensure_connected(connection)
    publisher = ConfirmingPublisher(connection, confirm_timeout=60)
    started = time.monotonic()
    for first in range(0, n, BATCH):
        batch = [
            OutgoingMessage(str(uuid.uuid4()), "bench", queue, BODY, exchange="")
            for _ in range(min(BATCH, n - first))
        ]
        assert len(publisher.publish_batch(batch)) == len(batch)
    published = time.monotonic() - started
    got = 0
    consumed_at = time.monotonic()
    channel = connection.channel()
    channel.basic_qos(0, 200, False)

    def on_message(message: Any) -> None:
        nonlocal got
        got += 1
        channel.basic_ack(message.delivery_tag)

    channel.basic_consume(queue, callback=on_message)
    while got < n:
        connection.drain_events(timeout=30)
    consumed = time.monotonic() - consumed_at
    cpu = node_cpu_seconds(pids) - cpu_before
    publisher.close()
    connection.release()
    print(
        f"{label:<38} publish {n / published:7.0f} msg/s   consume+ack {n / consumed:7.0f} msg/s"
        f"   RabbitMQ CPU {cpu:5.1f} s ({n / cpu:,.0f} msg per CPU-second, publish + consume)"
    )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with rabbitmq_vhost("tacso-bench-cluster") as url:
        run(
            url,
            n,
            "1 node (the local broker)",
            beam_pids(SYSTEM_NODE),
        )
    with (
        tempfile.TemporaryDirectory(prefix="tacso-bench-cluster-") as workdir,
        rabbit_cluster(Path(workdir)) as cluster,
    ):
        pids = beam_pids(OUR_NODES)
        run(cluster.amqp_url, n, "3-node cluster", pids)
        cluster.stop_node(cluster.nodes[2])
        run(
            cluster.amqp_url,
            n,
            "3-node cluster, 1 node stopped",
            beam_pids(OUR_NODES),
        )


if __name__ == "__main__":
    main()
