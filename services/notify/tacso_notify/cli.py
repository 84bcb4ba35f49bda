"""``tacso-notify``: serve, migrate, worker."""

from __future__ import annotations

import click

from tacso_notify.app import create_app
from tacso_notify.bootstrap import QUEUE_KINDS, apply_migrations, bootstrap, load_settings
from tacso_shared.cli import service_cli
from tacso_shared.runtime import run_until_signalled

cli = service_cli(
    "notify",
    lambda: load_settings().common,
    apply_migrations,
    create_app,
    None,
)


@cli.command("worker")
@click.option(
    "--queue",
    "queue",
    type=click.Choice(sorted(QUEUE_KINDS)),
    required=True,
    help="Which work queue this worker consumes.",
)
def worker_cmd(queue: str) -> None:
    """Consume one work queue and send its mail until stopped (SIGTERM finishes cleanly)."""
    worker = bootstrap().worker(queue)
    run_until_signalled(worker.run, worker.stop)


def main() -> None:
    """Entry point of ``tacso-notify``."""
    cli()
