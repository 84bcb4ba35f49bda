"""``tacso-notify``: serve, migrate, worker."""

from __future__ import annotations

import json
import uuid

import click

from tacso_notify.app import create_app
from tacso_notify.bootstrap import QUEUE_KINDS, apply_migrations, bootstrap, load_settings
from tacso_notify.models import audit_log
from tacso_notify.tasks import PageTask, page_task_message
from tacso_shared.cli import add_audit_purge, service_cli
from tacso_shared.deadletters import list_dead_letters, replay_dead_letters
from tacso_shared.envelope import parse_envelope
from tacso_shared.messaging import ConfirmingPublisher, connect
from tacso_shared.runtime import run_until_signalled
from tacso_shared.topology import QUEUE_FAMILIES, declare_topology
from tacso_shared.vocabulary import COUNTRIES

cli = service_cli(
    "notify",
    load_settings,
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


add_audit_purge(cli, load_settings, audit_log)


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
    notify = bootstrap()
    snapshot = notify.ledger.latest_snapshot(event_id)
    if snapshot is None:
        raise click.ClickException(f"notify has never received event {event_id}")
    envelope = parse_envelope(snapshot.envelope)
    country = envelope.data["country"]
    total = 0
    messages = []
    for queue in [kind] if kind else sorted(QUEUE_KINDS):
        mail_kind = QUEUE_KINDS[queue].value
        emails = notify.ledger.reopen_failed(event_id, snapshot.revision, mail_kind)
        notify.ledger.unsuppress(emails)
        total += len(emails)
        # Whatever is pending gets a message, so running the command again after a failed
        # publish still drives the deliveries it reopened the first time.
        if notify.ledger.counts(event_id).get(mail_kind, {}).get("pending"):
            # A fan-out chain of its own: the first one's pages have all been handed on already.
            task = PageTask(
                event_id=event_id,
                revision=snapshot.revision,
                kind=mail_kind,
                country=country,
                chain=f"resend-{uuid.uuid4()}:{mail_kind}",
            )
            messages.append(page_task_message(task, QUEUE_FAMILIES[queue].queue_for(country).name))
    if messages:
        with connect(notify.settings.common.amqp_url) as connection:
            declare_topology(connection, notify.settings.retry_delays)
            confirmed = ConfirmingPublisher(connection).publish_batch(messages)
        if len(confirmed) != len(messages):
            raise click.ClickException("the broker did not confirm; run the command again")
    click.echo(f"{total} failed deliveries of event {event_id} rev {snapshot.revision} re-queued")
