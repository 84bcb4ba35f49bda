"""``tacso-events``: serve, migrate, relay, scheduler."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tacso_events.app import create_app
from tacso_events.bootstrap import apply_migrations, bootstrap, load_settings
from tacso_events.models import audit_log
from tacso_events.scheduler import SchedulerCollector
from tacso_shared.cli import add_audit_purge, service_cli
from tacso_shared.logs import set_role
from tacso_shared.metrics import start_metrics_server
from tacso_shared.runtime import run_until_signalled

cli = service_cli(
    "events",
    load_settings,
    apply_migrations,
    create_app,
    lambda: bootstrap().relay(),
)


add_audit_purge(cli, load_settings, audit_log)


@cli.command("scheduler")
def scheduler_cmd() -> None:
    """Run due scheduled jobs (offer expiry, reminders) until stopped; replicas are safe."""
    set_role("scheduler")
    settings = load_settings()
    scheduler = bootstrap(settings).scheduler()
    REGISTRY.register(SchedulerCollector(scheduler.pending))
    start_metrics_server(settings.common.metrics_port)
    run_until_signalled(scheduler.run_forever, scheduler.stopping.set)


def main() -> None:
    """Entry point of ``tacso-events``."""
    cli()
