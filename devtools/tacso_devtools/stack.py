"""``tacso-stack``: run the whole system locally (``make up``), show it working (``make demo``)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import click
from honcho.manager import Manager
from honcho.printer import Printer

from tacso_client import ApiKey, TacsoClient
from tacso_client.types import Delivery
from tacso_devtools.processes import PROCESSES, SETUP
from tacso_shared.config import DEFAULT_AMQP_URL
from tacso_shared.messaging import broker_reachable

#: The admin key of ``make up`` when none is set: local development only. The services have no
#: default key at all; this module sets it, and says so, when it starts the stack.
DEFAULT_KEY = "dev-admin-key"


def _shell(argv: list[str]) -> str:
    # exec: the process itself gets honcho's SIGTERM (not a shell around it) and exits cleanly.
    return "exec " + " ".join(shlex.quote(a) for a in argv)


def local_processes(python: str = sys.executable) -> dict[str, str]:
    """The processes of ``make up`` (name -> shell command): the mail catcher and the manifest's."""
    commands = {"mail": _shell([python, "-m", "tacso_devtools.mailcatcher"])}
    for process in PROCESSES:
        commands[process.name] = _shell(process.python_argv(python))
    return commands


def local_env(base: Mapping[str, str]) -> dict[str, str]:
    """The environment of the local stack: the caller's, with local defaults filled in."""
    env = dict(base)
    env.setdefault("VAR_DIR", str(Path("var").resolve()))
    env.setdefault("MAIL_DIR", str(Path(env["VAR_DIR"]) / "mail"))
    env.setdefault("SMTP_HOST", "127.0.0.1")
    env.setdefault("SMTP_PORT", env.get("MAILCATCHER_PORT", "1025"))
    env.setdefault("PYTHONUNBUFFERED", "1")
    # Read in a terminal, not by a log collector.
    env.setdefault("LOG_FORMAT", "text")
    # The development key is known to everyone: only this machine may reach the APIs by default.
    env.setdefault("BIND_HOST", "127.0.0.1")
    # A developer's webhook receiver listens on this machine, over plain HTTP.
    env.setdefault("WEBHOOKS_ALLOW_HTTP", "true")
    env.setdefault("WEBHOOKS_ALLOW_PRIVATE", "true")
    if not env.get("ADMIN_API_KEY"):
        env["ADMIN_API_KEY"] = DEFAULT_KEY
    return env


def development_key_warning(env: Mapping[str, str]) -> str | None:
    """A warning to print when the stack runs with the well-known development key, else None."""
    if env.get("ADMIN_API_KEY") != DEFAULT_KEY:
        return None
    return (
        f"WARNING: ADMIN_API_KEY is the development key {DEFAULT_KEY!r}: anyone who can reach "
        f"the APIs (bound to {env.get('BIND_HOST')}) can read and write everything. Set "
        "ADMIN_API_KEY to a secret of your own before binding to another interface."
    )


@click.group(help="Run the TACSO stack locally.")
def cli() -> None:
    pass


@cli.command("up")
def up_cmd() -> None:
    """Migrate, seed, and run every process in the foreground (Ctrl-C stops them all)."""
    env = local_env(os.environ)
    warning = development_key_warning(env)
    if warning is not None:
        click.echo(warning, err=True)
    amqp_url = env.get("AMQP_URL", DEFAULT_AMQP_URL)
    if not broker_reachable(amqp_url):
        click.echo(
            f"RabbitMQ is not reachable at {amqp_url}: start it (`rabbitmq-server -detached`, "
            "or `docker compose up -d rabbitmq`) or set AMQP_URL.",
            err=True,
        )
        sys.exit(1)
    for step in SETUP:
        subprocess.run(step.python_argv(sys.executable), env=env, check=True)
    click.echo(
        "\nMail is caught, not sent: files under {mail}/, or browse http://127.0.0.1:{http}/\n"
        "APIs: registry http://localhost:5001/docs, events http://localhost:5002/docs, "
        "notify http://localhost:5003/docs (key: ADMIN_API_KEY, default {key})\n"
        "Try: make demo\n".format(
            mail=env["MAIL_DIR"], http=env.get("MAILCATCHER_HTTP_PORT", "8025"), key=DEFAULT_KEY
        )
    )
    manager = Manager(Printer(sys.stdout))
    for name, command in local_processes().items():
        manager.add_process(name, command, env=env)
    manager.loop()
    sys.exit(manager.returncode)


def demo_client(env: Mapping[str, str]) -> TacsoClient:
    """The Python client (``tacso_client``) of the local stack, with the admin key."""
    return TacsoClient(
        registry_url=env.get("REGISTRY_URL", "http://localhost:5001"),
        events_url=env.get("EVENTS_URL", "http://localhost:5002"),
        notify_url=env.get("NOTIFY_URL", "http://localhost:5003"),
        auth=ApiKey(env.get("ADMIN_API_KEY", DEFAULT_KEY)),
        timeout=10,
    )


@cli.command("demo")
@click.option("--timeout", default=60.0, help="Seconds to wait for the mail to go out.")
def demo_cmd(timeout: float) -> None:
    """Register CSOs and media in BA and RS, publish a BA event, print who got what."""
    with demo_client(os.environ) as tacso:
        run_demo(tacso, timeout)


def run_demo(tacso: TacsoClient, timeout: float) -> None:
    """The demo through the client: six organisations, one BA event, who got what."""
    run = uuid.uuid4().hex[:6]
    for name, kind, country, topics in (
        ("Sarajevo Human Rights Forum", "cso", "BA", ["human-rights"]),
        ("Mostar Youth Initiative", "cso", "BA", ["youth", "human-rights"]),
        ("Tuzla Social Enterprise Hub", "cso", "BA", ["social-entrepreneurship"]),
        ("Belgrade Rights Watch", "cso", "RS", ["human-rights"]),
        ("Radio Sarajevo Demo", "media", "BA", []),
        ("Novi Sad Daily Demo", "media", "RS", []),
    ):
        slug = name.lower().replace(" ", "-")
        tacso.registry.create_organisation(
            {
                "name": name,
                "kind": kind,
                "country": country,
                "language": "en",
                "email": f"{slug}-{run}@demo.example.org",
                "topics": topics,
            }
        )
    organiser = next(tacso.registry.organisations(country="BA", kind="resource_centre"))
    event = tacso.events.create_event(
        {
            "title": f"Human rights and civic space workshop ({run})",
            "type": "workshop",
            "country": "BA",
            "topics": ["human-rights"],
            "starts_at": "2026-12-15T10:00:00+01:00",
            "ends_at": "2026-12-15T16:00:00+01:00",
            "venue": {
                "name": "Hotel Europe",
                "address": "Vladislava Skarića 5",
                "city": "Sarajevo",
            },
            "organiser_id": organiser["id"],
        }
    )
    click.echo(f"Published {event['title']!r} by {organiser['name']} (event {event['id']})")
    deadline = time.monotonic() + timeout
    rows: list[Delivery] = []
    while time.monotonic() < deadline:
        rows = list(tacso.notify.deliveries(event_id=event["id"]))
        kinds = {r["kind"] for r in rows}
        if kinds == {"invitation", "press_notice"} and all(r["status"] != "pending" for r in rows):
            break
        time.sleep(0.5)
    for kind, title in (("invitation", "Invited"), ("press_notice", "Press notice")):
        click.echo(f"\n{title}:")
        for row in rows:
            if row["kind"] == kind:
                click.echo(f"  {row['recipient']:<55} {row['status']}")
    if not rows:
        click.echo("\nNo deliveries yet: are the notify workers running (make up)?")
        sys.exit(1)


def main() -> None:
    """Entry point of ``tacso-stack``."""
    cli()
