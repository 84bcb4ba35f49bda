"""A RabbitMQ cluster of our own: three nodes of Debian's ``rabbitmq-server`` on this machine.

For the cluster fault test (``tests/faults/test_cluster.py``). Each node has its own name
(``tacso-ha-<id>-<n>@localhost``), AMQP and distribution ports, data, log and pid files, and no
plugins; they share one Erlang cookie (a copy of the system's, in a ``HOME`` of their own) and
the machine's one ``epmd`` on 4369, which serves any number of nodes. The system's broker on
5672 is never touched: its node name, ports and files are all different.

Starting and clustering take about 15 s of a 2-core machine's time; every wait is a poll
(``rabbitmqctl await_startup``), never a fixed sleep.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.stack import free_port
from support.waiting import wait_until

#: Debian installs the real scripts here; ``/usr/sbin/rabbitmq-server`` would switch to the
#: ``rabbitmq`` user and write its output into the system broker's log directory.
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
SYSTEM_COOKIE = Path("/var/lib/rabbitmq/.erlang.cookie")


class ClusterUnavailable(RuntimeError):
    """This machine cannot run extra RabbitMQ nodes (no rabbitmq-server, not root, no cookie)."""


@dataclass(frozen=True)
class Node:
    """One node of the cluster: its name, ports and directory."""

    name: str
    port: int
    dist_port: int
    base: Path

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"


class LocalRabbitCluster:
    """Starts, clusters, stops and restarts the nodes; runs ``rabbitmqctl`` against them."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        if not (RABBITMQ_BIN / "rabbitmq-server").exists():
            raise ClusterUnavailable(f"{RABBITMQ_BIN}/rabbitmq-server not installed")
        if os.geteuid() != 0 or not SYSTEM_COOKIE.exists():
            raise ClusterUnavailable("needs root and the system's Erlang cookie")
        tag = uuid.uuid4().hex[:6]
        self.workdir = workdir
        self.nodes = [
            Node(f"tacso-ha-{tag}-{n}@localhost", free_port(), free_port(), workdir / f"node{n}")
            for n in range(1, size + 1)
        ]
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.home = workdir / "home"

    # ---- environment -------------------------------------------------------------------------
    def _cli_env(self) -> dict[str, str]:
        """What ``rabbitmqctl`` needs to reach our nodes: the cookie, no system env file."""
        return {
            **os.environ,
            "HOME": str(self.home),
            "RABBITMQ_CONF_ENV_FILE": str(self.workdir / "rabbitmq-env.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def _node_env(self, node: Node) -> dict[str, str]:
        return {
            **self._cli_env(),
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_PORT": str(node.port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_CONFIG_FILE": str(node.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(node.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.base / "log"),
            "RABBITMQ_PID_FILE": str(node.base / "pid"),
            # Distribution on the loopback interface only, like the AMQP listener.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        shutil.copyfile(SYSTEM_COOKIE, cookie)
        cookie.chmod(0o400)
        (self.workdir / "rabbitmq-env.conf").write_text("")
        (self.workdir / "enabled_plugins").write_text("[].\n")
        for node in self.nodes:
            node.base.mkdir(parents=True, exist_ok=True)
            (node.base / "rabbitmq.conf").write_text(
                f"listeners.tcp.local = 127.0.0.1:{node.port}\n"
                # Small machine: the default 50 MB free-disk alarm is fine, the memory one is
                # kept relative.
                "vm_memory_high_watermark.relative = 0.2\n"
            )

    # ---- commands ----------------------------------------------------------------------------
    def rabbitmqctl(self, node: Node, *args: str, timeout: float = 60) -> str:
        """``rabbitmqctl -q -n <node> ...``; raise with its output if it fails."""
        done = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-q", "-n", node.name, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self._cli_env(),
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl -n {node.name} {' '.join(args)}: {done.stdout}{done.stderr}"
            )
        return done.stdout

    def _launch(self, node: Node) -> None:
        log = open(node.base / "server.log", "ab")  # noqa: SIM115 - closed with the process
        self.processes[node.name] = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self._node_env(node),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=node.base,
            start_new_session=True,  # a Ctrl-C of the test run is not the node's to see
        )
        log.close()

    def _await_startup(self, node: Node, timeout: float = 120) -> None:
        def booted() -> bool:
            proc = self.processes.get(node.name)
            if proc is not None and proc.poll() is not None:
                raise ClusterUnavailable(
                    f"{node.name} exited with {proc.returncode}: "
                    f"{(node.base / 'server.log').read_text(errors='replace')[-2000:]}"
                )
            self.rabbitmqctl(node, "await_startup", "--timeout", "10", timeout=30)
            return True

        wait_until(booted, timeout=timeout, interval=1, message=f"{node.name} to boot")

    def start(self) -> None:
        """Start every node, then join the second and third to the first."""
        self._prepare()
        for node in self.nodes:
            self._launch(node)
        for node in self.nodes:
            self._await_startup(node)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.rabbitmqctl(node, "stop_app")
            self.rabbitmqctl(node, "join_cluster", first.name)
            self.rabbitmqctl(node, "start_app")
        wait_until(
            lambda: len(self.running_nodes(first)) == len(self.nodes),
            timeout=60,
            interval=0.5,
            message="every node running in the cluster",
        )

    def running_nodes(self, via: Node) -> list[str]:
        """The running nodes of the cluster, as ``via`` sees them."""
        out = self.rabbitmqctl(via, "eval", "rabbit_nodes:all_running().")
        return [n.strip(" '[]\n") for n in out.split(",") if n.strip(" '[]\n")]

    def stop_node(self, node: Node) -> None:
        """Shut ``node`` down (the whole Erlang VM, as a host going away for maintenance)."""
        self.rabbitmqctl(node, "stop", timeout=120)
        proc = self.processes.pop(node.name, None)
        if proc is not None:
            proc.wait(timeout=60)

    def kill_node(self, node: Node) -> None:
        """SIGKILL ``node``'s Erlang VM: a crash, nothing written, no goodbye to the others.

        The VM is found by its environment (RabbitMQ 3.10 takes the node name from
        ``RABBITMQ_NODENAME``, not the command line), in case the start script forked it.
        """
        mark = f"RABBITMQ_NODENAME={node.name}\0".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                is_node = (
                    b"beam" in (proc / "cmdline").read_bytes()
                    and mark in (proc / "environ").read_bytes()
                )
            except OSError:
                continue
            if is_node:
                os.kill(int(proc.name), signal.SIGKILL)
        launched = self.processes.pop(node.name, None)
        if launched is not None:
            launched.kill()
            launched.wait(timeout=30)

    def start_node(self, node: Node) -> None:
        """Start a stopped node again; it rejoins the cluster it left."""
        self._launch(node)
        self._await_startup(node)

    def await_all_running(self, timeout: float = 120) -> None:
        """Every node of the cluster running, as the first live node sees it."""
        wait_until(
            lambda: len(self.running_nodes(self.live()[0])) == len(self.nodes),
            timeout=timeout,
            interval=0.5,
            message="every node running in the cluster",
        )

    def live(self) -> list[Node]:
        """The nodes whose process runs."""
        return [
            n
            for n in self.nodes
            if (p := self.processes.get(n.name)) is not None and p.poll() is None
        ]

    @property
    def amqp_url(self) -> str:
        """``AMQP_URL`` for the processes: every node, separated by ``;`` (kombu failover)."""
        return ";".join(node.url for node in self.nodes)

    def quorum_leader(self, queue: str) -> Node:
        """The node that leads quorum queue ``queue`` now."""
        via = self.live()[0]
        out = self.rabbitmqctl(via, "list_queues", "name", "leader", "--no-table-headers")
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == queue:
                return next(n for n in self.nodes if n.name == parts[1])
        raise AssertionError(f"queue {queue} not listed: {out}")

    def consumers_by_node(self, queue: str) -> Counter[str]:
        """How many consumers of ``queue`` (default virtual host) are connected to each node.

        A consumer's channel is an Erlang process on the node its client is connected to, and
        the process id names that node: ``<tacso-ha-1a2b3c-2@localhost.1234.0>``.
        """
        via = self.live()[0]
        out = self.rabbitmqctl(
            via, "list_consumers", "queue_name", "channel_pid", "--no-table-headers"
        )
        return Counter(
            match.group(1)
            for line in out.splitlines()
            if line.split("\t", 1)[0].strip() == queue
            and (match := re.search(r"<([^.<>]+@[^.<>]+)\.", line))
        )

    def transfer_leadership(self, queue: str, to: Node) -> None:
        """Make ``to`` the leader of quorum queue ``queue`` (default virtual host).

        RabbitMQ 3.10 has no command for it; Ra, the Raft library under quorum queues, has
        ``ra:transfer_leadership/2``, called on the current leader's node. A server of a quorum
        queue is named after its virtual host and queue: ``'%2F_<queue>'`` for ``/``.
        """
        leader = self.quorum_leader(queue)
        if leader == to:
            return
        server = f"'%2F_{queue}'"
        target = f"{{{server}, '{to.name}'}}"
        self.rabbitmqctl(leader, "eval", f"ra:transfer_leadership({{{server}, node()}}, {target}).")
        wait_until(
            lambda: self.quorum_leader(queue) == to,
            timeout=30,
            interval=0.5,
            message=f"{to.name} to lead {queue}",
        )

    def members(self, queue: str) -> list[str]:
        """The nodes that hold a replica of quorum queue ``queue``."""
        via = self.live()[0]
        out = self.rabbitmqctl(via, "list_queues", "name", "members", "--no-table-headers")
        for line in out.splitlines():
            name, _, rest = line.partition("\t")
            if name.strip() == queue:
                return sorted(n.strip(" '[]") for n in rest.split(",") if n.strip(" '[]"))
        raise AssertionError(f"queue {queue} not listed: {out}")

    def queue_depths(self) -> dict[str, int]:
        """Messages (ready plus unacknowledged) of every queue, asked of a live node."""
        via = self.live()[0]
        out = self.rabbitmqctl(via, "list_queues", "name", "messages", "--no-table-headers")
        depths: dict[str, int] = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                depths[parts[0]] = int(parts[1])
        return depths

    def stop(self) -> None:
        """Stop every node still running (kill what does not stop in time)."""
        for node in self.nodes:
            proc = self.processes.pop(node.name, None)
            if proc is None or proc.poll() is not None:
                continue
            try:
                self.rabbitmqctl(node, "stop", timeout=60)
                proc.wait(timeout=60)
            except (RuntimeError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait(timeout=10)


@contextmanager
def rabbit_cluster(workdir: Path, size: int = 3) -> Iterator[LocalRabbitCluster]:
    """A started, clustered set of ``size`` nodes; stopped and removed afterwards."""
    cluster = LocalRabbitCluster(workdir, size)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
