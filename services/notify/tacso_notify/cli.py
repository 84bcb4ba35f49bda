"""``tacso-notify``: serve, migrate, worker."""

from __future__ import annotations

import json

import click

from tacso_notify import operations
from tacso_notify.app import create_app
from tacso_notify.bootstrap import apply_migrations, bootstrap, load_settings, prepare_broker
from tacso_notify.subscriptions import QUEUE_FAMILIES, QUEUE_KINDS
from tacso_shared.cli import service_cli
from tacso_shared.deadletters import list_dead_letters, replay_dead_letters
from tacso_shared.logs import set_role
from tacso_shared.metrics import start_metrics_server
from tacso_shared.runtime import run_until_signalled
from tacso_shared.vocabulary import COUNTRIES

cli = service_cli(
    "notify",
    load_settings,
    apply_migrations,
    create_app,
    None,
    lambda: prepare_broker(load_settings()),
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
    from tacso_notify.workers import build_worker  # only a worker process needs the machinery

    set_role("worker")
    notify = bootstrap()
    start_metrics_server(notify.settings.common.metrics_port)
    worker = build_worker(notify, queue, chosen)
    run_until_signalled(worker.run, worker.stop)


def main() -> None:
    """Entry point of ``tacso-notify``."""
    cli()


# ---- operator commands --------------------------------------------------------------------
_kind_option = click.option(
    "--kind",
    "queue",
    type=click.Choice(sorted(QUEUE_KINDS)),
    default="invitations",
    show_default=True,
    help="Which kind of mail's dead-letter queue.",
)


@cli.group("dead")
def dead_group() -> None:
    """Dead-lettered messages: list, show, replay."""


@dead_group.command("list")
@_kind_option
def dead_list_cmd(queue: str) -> None:
    """List the dead-lettered messages (nothing is removed)."""
    settings = load_settings()
    dead = list_dead_letters(settings.common.amqp_url, QUEUE_FAMILIES[queue].dead_letter_name)
    if not dead:
        click.echo("no dead-lettered messages")
        return
    for d in dead:
        click.echo(
            f"{d.message_id}  {d.queue:<24} {d.dead_lettered_at or '-':<32} {d.reason[:100]}"
        )
    click.echo(f"{len(dead)} message(s)")


@dead_group.command("show")
@_kind_option
@click.argument("message_id")
def dead_show_cmd(queue: str, message_id: str) -> None:
    """Show one dead-lettered message: headers and body."""
    settings = load_settings()
    dead = list_dead_letters(settings.common.amqp_url, QUEUE_FAMILIES[queue].dead_letter_name)
    for d in dead:
        if d.message_id == message_id:
            click.echo(f"message id: {d.message_id}\ntype: {d.message_type}\nqueue: {d.queue}")
            click.echo(f"reason: {d.reason}\ndead-lettered at: {d.dead_lettered_at}")
            click.echo(f"headers: {json.dumps(d.headers, default=str, indent=2)}")
            click.echo("body:")
            click.echo(d.body.decode("utf-8", errors="replace"))
            return
    raise click.ClickException(f"no dead-lettered message with id {message_id}")


@dead_group.command("replay")
@_kind_option
@click.option("--id", "ids", multiple=True, help="Replay only these message ids (repeatable).")
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead-lettered message.")
def dead_replay_cmd(queue: str, ids: tuple[str, ...], replay_all: bool) -> None:
    """Send dead-lettered messages back to their work queue (after fixing the cause)."""
    if not ids and not replay_all:
        raise click.UsageError("name messages with --id, or pass --all")
    settings = load_settings()
    wanted = set(ids)
    replayed = replay_dead_letters(
        settings.common.amqp_url,
        QUEUE_FAMILIES[queue].dead_letter_name,
        lambda d: replay_all or d.message_id in wanted,
    )
    for d in replayed:
        click.echo(f"replayed {d.message_id} to {d.queue}")
    click.echo(f"{len(replayed)} message(s) replayed")


@cli.command("status")
@click.argument("event_id")
def status_cmd(event_id: str) -> None:
    """Show an event's delivery counts by kind and status."""
    counts = bootstrap().ledger.counts(event_id)
    if not counts:
        click.echo(f"no deliveries for event {event_id}")
        return
    for kind, by_status in sorted(counts.items()):
        parts = ", ".join(f"{status} {n}" for status, n in sorted(by_status.items()))
        click.echo(f"{kind}: {parts}")


@cli.command("resend-failed")
@click.argument("event_id")
@click.option(
    "--kind",
    type=click.Choice(sorted(QUEUE_KINDS)),
    default=None,
    help="Only this kind of mail (default: both).",
)
def resend_failed_cmd(event_id: str, kind: str | None) -> None:
    """Re-send an event's failed deliveries (lifting their suppression) through the workers."""
    try:
        queues = [kind] if kind else sorted(QUEUE_KINDS)
        resent = operations.resend_failed(bootstrap(), event_id, queues)
    except operations.NeverReceived:
        raise click.ClickException(f"notify has never received event {event_id}") from None
    except operations.NotConfirmed:
        raise click.ClickException("the broker did not confirm; run the command again") from None
    click.echo(
        f"{resent.reopened} failed deliveries of event {event_id} rev {resent.revision} re-queued"
    )
