"""The commands every service has: ``serve``, ``migrate``, ``relay`` and ``purge-audit``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask

from tacso_shared.audit import purge
from tacso_shared.config import CommonSettings, ConfigError, ServiceSettings
from tacso_shared.db import make_engine, make_session_factory, transaction
from tacso_shared.logs import set_role, setup_logging
from tacso_shared.metrics import register_outbox, start_metrics_server
from tacso_shared.outbox import OutboxRelay
from tacso_shared.runtime import run_until_signalled, serve


class _ServiceGroup(click.Group):
    """A click group whose commands report a configuration error as one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise click.ClickException(f"{ctx.info_name}: {exc}") from exc


def service_cli(
    service: str,
    load_settings: Callable[[], ServiceSettings],
    apply_migrations: Callable[[CommonSettings], None],
    create_app: Callable[[], Flask],
    make_relay: Callable[[], OutboxRelay] | None,
    declare_subscriptions: Callable[[], None] | None = None,
) -> click.Group:
    """A click group with the standard commands of ``service``; add its own commands to it.

    ``declare_subscriptions``: a consuming service's deploy-time step beside its migrations,
    declaring the queues it consumes so that messages published before its first worker starts
    wait for it.
    """

    def prepare(settings: CommonSettings) -> None:
        apply_migrations(settings)
        if declare_subscriptions is not None:
            declare_subscriptions()

    def common_settings() -> CommonSettings:
        return load_settings().common

    @click.group(cls=_ServiceGroup, help=f"The TACSO {service} service.")
    def group() -> None:
        # A missing setting is reported by the command that needs it (so `serve --help` works
        # without one); logging must exist before that.
        try:
            settings = common_settings()
            level, log_format = settings.log_level, settings.log_format
        except ConfigError:
            level, log_format = "INFO", "json"
        setup_logging(service, level, log_format)

    @group.command("migrate")
    def migrate_cmd() -> None:
        """Apply database migrations (safe to run from several replicas at once)."""
        set_role("migrate")
        prepare(common_settings())
        click.echo(f"{service}: database is up to date")

    @group.command("serve")
    @click.option("--migrate/--no-migrate", default=False, help="Apply migrations first.")
    def serve_cmd(migrate: bool) -> None:
        """Serve the HTTP API with gunicorn."""
        set_role("api")
        settings = common_settings()
        if migrate:
            prepare(settings)
        serve(create_app, settings)

    if make_relay is not None:
        relay_factory = make_relay

        @group.command("relay")
        def relay_cmd() -> None:
            """Publish the outbox to RabbitMQ until stopped."""
            set_role("relay")
            relay = relay_factory()
            register_outbox(service, relay.stats)
            start_metrics_server(common_settings().metrics_port)
            run_until_signalled(relay.run_forever, relay.stopping.set)

    return group


def add_audit_purge(
    group: click.Group, load_settings: Callable[[], ServiceSettings], table: sa.Table
) -> None:
    """Add ``purge-audit`` to ``group``: delete the audit entries older than the retention."""

    @group.command("purge-audit")
    def purge_audit_cmd() -> None:
        """Delete audit log entries older than AUDIT_RETENTION_DAYS (run it daily)."""
        settings = load_settings().common
        engine = make_engine(settings.database_url)
        try:
            with transaction(make_session_factory(engine)) as session:
                deleted = purge(session, table, settings.audit_retention_days)
        finally:
            engine.dispose()
        click.echo(
            f"{settings.service}: {deleted} audit entries older than "
            f"{settings.audit_retention_days} days deleted"
        )
