"""``tacso-notify``: serve, migrate, worker."""

from __future__ import annotations

import click

from tacso_notify.app import create_app
from tacso_notify.bootstrap import QUEUE_KINDS, apply_migrations, bootstrap, load_settings
from tacso_shared.cli import service_cli
from tacso_shared.runtime import run_until_signalled
from tacso_shared.vocabulary import COUNTRIES

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
@click.option(
    "--countries",
    default="",
    help="Comma-separated country codes to take (default: all), e.g. BA,RS.",
)
def worker_cmd(queue: str, countries: str) -> None:
    """Consume one kind of work and send its mail until stopped (SIGTERM finishes cleanly)."""
    chosen = [c.strip().upper() for c in countries.split(",") if c.strip()] or None
    unknown = sorted(set(chosen or ()) - set(COUNTRIES))
    if unknown:
        raise click.BadParameter(f"unknown countries {unknown}", param_hint="--countries")
    worker = bootstrap().worker(queue, chosen)
    run_until_signalled(worker.run, worker.stop)


def main() -> None:
    """Entry point of ``tacso-notify``."""
    cli()
