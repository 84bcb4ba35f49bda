"""``tacso-events``: serve, migrate, relay."""

from __future__ import annotations

from tacso_events.app import create_app
from tacso_events.bootstrap import apply_migrations, bootstrap, load_settings
from tacso_events.models import audit_log
from tacso_shared.cli import add_audit_purge, service_cli

cli = service_cli(
    "events",
    load_settings,
    apply_migrations,
    create_app,
    lambda: bootstrap().relay(),
)


add_audit_purge(cli, load_settings, audit_log)


def main() -> None:
    """Entry point of ``tacso-events``."""
    cli()
