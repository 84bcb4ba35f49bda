"""``tacso-notify``: serve, migrate, worker."""

from __future__ import annotations

import json

import click

from tacso_notify import operations
from tacso_notify.app import create_app
from tacso_notify.bootstrap import apply_migrations, bootstrap, load_settings, prepare_broker
from tacso_notify.bounces import NotAMessage, ingest_bounce
from tacso_notify.models import audit_log
from tacso_notify.subscriptions import CHANGE_FAMILIES, QUEUE_FAMILIES, QUEUE_KINDS
from tacso_shared.cli import add_audit_purge, service_cli
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
    type=click.Choice(sorted([*QUEUE_FAMILIES, *CHANGE_FAMILIES])),
    required=True,
    help="Which work queue this worker consumes (a kind of mail, webhooks, or registry's changes).",
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


add_audit_purge(cli, load_settings, audit_log)


def main() -> None:
    """Entry point of ``tacso-notify``."""
    cli()


# ---- operator commands --------------------------------------------------------------------
#: Every queue family with a dead-letter queue: the kinds of mail, webhooks, registry's changes.
_DEAD_LETTER_FAMILIES = {**QUEUE_FAMILIES, **CHANGE_FAMILIES}

_kind_option = click.option(
    "--kind",
    "queue",
    type=click.Choice(sorted(_DEAD_LETTER_FAMILIES)),
    default="invitations",
    show_default=True,
    help="Which dead-letter queue: a kind of mail, webhooks, or registry (its changes).",
)


@cli.group("dead")
def dead_group() -> None:
    """Dead-lettered messages: list, show, replay."""


@dead_group.command("list")
@_kind_option
def dead_list_cmd(queue: str) -> None:
    """List the dead-lettered messages (nothing is removed)."""
    settings = load_settings()
    dead = list_dead_letters(
        settings.common.amqp_url, _DEAD_LETTER_FAMILIES[queue].dead_letter_name
    )
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
    dead = list_dead_letters(
        settings.common.amqp_url, _DEAD_LETTER_FAMILIES[queue].dead_letter_name
    )
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
        _DEAD_LETTER_FAMILIES[queue].dead_letter_name,
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


# ---- bounces and the suppression list ---------------------------------------------------------
@cli.group("bounces")
def bounces_group() -> None:
    """Bounces (delivery status notifications) that came back to MAIL_FROM."""


@bounces_group.command("ingest")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def bounces_ingest_cmd(files: tuple[str, ...]) -> None:
    """Read bounce messages (.eml files); suppress the addresses that failed for good."""
    ledger = bootstrap().ledger
    suppressed = 0
    for path in files:
        with open(path, "rb") as raw:
            try:
                report = ingest_bounce(ledger, raw.read())
            except NotAMessage as exc:
                click.echo(f"{path}: skipped, not an email message ({exc})", err=True)
                continue
        suppressed += report.suppressed
        permanent = ", ".join(report.permanent) or "-"
        temporary = ", ".join(report.temporary) or "-"
        click.echo(f"{path}: failed for good: {permanent}; delayed: {temporary}")
    click.echo(f"{suppressed} address(es) suppressed")


@cli.group("suppressions")
def suppressions_group() -> None:
    """The suppression list: addresses that get no more bulk mail."""


@suppressions_group.command("list")
@click.option("--email", "contains", default=None, help="Only addresses containing this text.")
def suppressions_list_cmd(contains: str | None) -> None:
    """List suppressed addresses, newest first."""
    page = bootstrap().ledger.suppressions(contains, page_size=1000)
    for item in page.items:
        click.echo(f"{item.email}  {item.created_at:%Y-%m-%d %H:%M}  {item.reason[:100]}")
    click.echo(f"{page.total} suppressed address(es)")


@suppressions_group.command("add")
@click.argument("email")
@click.option("--reason", default="suppressed by an operator", show_default=True)
def suppressions_add_cmd(email: str, reason: str) -> None:
    """Suppress an address by hand."""
    bootstrap().ledger.suppress([(email.strip().lower(), reason)])
    click.echo(f"{email} suppressed")


@suppressions_group.command("lift")
@click.argument("email")
def suppressions_lift_cmd(email: str) -> None:
    """Lift a suppression: the address gets bulk mail again."""
    if not bootstrap().ledger.unsuppress([email.strip().lower()]):
        raise click.ClickException(f"{email} is not suppressed")
    click.echo(f"{email} gets mail again")


# ---- webhooks ---------------------------------------------------------------------------------
@cli.group("webhooks")
def webhooks_group() -> None:
    """Webhook subscriptions and their deliveries."""


@webhooks_group.command("deliver")
@click.option("--once", is_flag=True, help="Send what is due now, then exit.")
def webhooks_deliver_cmd(once: bool) -> None:
    """Send the due webhook deliveries (retries), polling until stopped; the webhook workers do
    the same, so this is for an operator's one-off run or a separate retry process."""
    import requests

    from tacso_notify.webhooks import deliver_due

    notify = bootstrap()
    http = requests.Session()
    if once:
        outcomes = deliver_due(notify.sessions, notify.settings.webhooks, http)
        click.echo(", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())) or "nothing due")
        return
    import threading

    stopping = threading.Event()

    def loop() -> None:
        while not stopping.wait(notify.settings.webhooks.poll_interval):
            deliver_due(notify.sessions, notify.settings.webhooks, http)

    set_role("worker")
    start_metrics_server(notify.settings.common.metrics_port)
    run_until_signalled(loop, stopping.set)
