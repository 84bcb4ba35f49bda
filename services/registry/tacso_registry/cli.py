"""``tacso-registry``: serve, migrate, relay, seed."""

from __future__ import annotations

import click

from tacso_registry.app import create_app
from tacso_registry.bootstrap import apply_migrations, bootstrap, load_settings
from tacso_registry.seed import seed_organisations
from tacso_shared.cli import service_cli
from tacso_shared.db import transaction
from tacso_shared.logs import set_role

cli = service_cli(
    "registry",
    load_settings,
    apply_migrations,
    create_app,
    lambda: bootstrap().relay(),
)


@cli.command("seed")
def seed_cmd() -> None:
    """Add the TACSO offices and Resource Centres of the seven countries (idempotent)."""
    set_role("seed")
    registry = bootstrap()
    with transaction(registry.sessions) as session:
        added = seed_organisations(session)
    click.echo(f"registry: seeded {added} organisation(s)")


def main() -> None:
    """Entry point of ``tacso-registry``."""
    cli()
