"""The process manifest is the one list of processes: compose, ``make up`` and the tests agree."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.stack import Stack
from tacso_devtools.processes import INFRASTRUCTURE, PROCESSES, SETUP, by_name
from tacso_devtools.stack import local_processes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose_services() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services: dict[str, Any] = document["services"]
    return services


def test_docker_compose_runs_every_manifest_process_with_the_same_command(
    compose_services: dict[str, Any],
) -> None:
    expected = {p.name: list(p.compose_command) for p in (*SETUP, *PROCESSES) if p.compose_command}
    ours = {
        name: service.get("command")
        for name, service in compose_services.items()
        if name not in INFRASTRUCTURE
    }
    assert ours == expected


def test_the_infrastructure_services_are_in_compose(compose_services: dict[str, Any]) -> None:
    assert compose_services.keys() >= INFRASTRUCTURE


def test_every_api_publishes_the_port_its_manifest_entry_names(
    compose_services: dict[str, Any],
) -> None:
    defaults = {"REGISTRY_PORT": 5001, "EVENTS_PORT": 5002, "NOTIFY_PORT": 5003}
    for process in PROCESSES:
        ports = compose_services[process.name].get("ports", [])
        if process.role == "api":
            assert process.port_env in defaults
            assert any(p.endswith(f":{defaults[process.port_env]}") for p in ports), process.name
        else:
            assert ports == [], f"{process.name} is not an API and publishes no port"


def test_make_up_runs_the_manifest_processes_and_the_mail_catcher() -> None:
    commands = local_processes("/venv/bin/python")
    assert list(commands) == ["mail", *by_name()]
    assert commands["notify-invitations"] == (
        "exec /venv/bin/python -m tacso_notify worker --queue invitations"
    )


def test_the_test_stack_runs_the_manifest_processes(tmp_path: Path) -> None:
    urls = {n: f"sqlite:///{tmp_path / n}.sqlite3" for n in ("registry", "events", "notify")}
    stack = Stack(tmp_path, "amqp://guest:guest@127.0.0.1:1//", urls, "127.0.0.1", 1)
    assert list(stack.specs) == [p.name for p in PROCESSES]
    api = stack.specs["events"]
    assert api.port == stack.ports["events"]
    assert stack.env["EVENTS_PORT"] == str(api.port)
    assert api.process.python_argv(sys.executable)[1:] == ["-m", "tacso_events", "serve"]
