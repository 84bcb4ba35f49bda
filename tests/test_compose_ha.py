"""docker-compose.ha.yml: three RabbitMQ nodes, and every TACSO process given all three."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tacso_devtools.processes import INFRASTRUCTURE

ROOT = Path(__file__).resolve().parents[1]
NODES = ("rabbitmq", "rabbitmq-2", "rabbitmq-3")


def services(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    return dict(document["services"])


def test_every_tacso_service_gets_every_node_in_its_amqp_url() -> None:
    base, ha = services("docker-compose.yml"), services("docker-compose.ha.yml")
    ours = {name for name in base if name not in INFRASTRUCTURE}
    assert ours <= ha.keys()
    single = base["registry"]["environment"]["AMQP_URL"]
    for name in ours:
        nodes = ha[name]["environment"]["AMQP_URL"].split(";")
        assert [url.split("@")[1].split(":")[0] for url in nodes] == list(NODES), name
        # Same user, password and virtual host as the one-node file, only the host differs.
        expected = single.replace(":?set RABBITMQ_PASSWORD in .env}", "}")
        as_one = {
            url.replace(f"@{host}:", "@rabbitmq:") for url, host in zip(nodes, NODES, strict=True)
        }
        assert as_one == {expected}, name


def test_the_three_nodes_find_each_other_by_their_host_names() -> None:
    ha = services("docker-compose.ha.yml")
    conf = (ROOT / "docker" / "rabbitmq" / "cluster.conf").read_text()
    for node in NODES:
        assert ha[node]["hostname"] == node
        assert f"= rabbit@{node}\n" in conf
        assert any(v.startswith("./docker/rabbitmq/cluster.conf:") for v in ha[node]["volumes"])
