"""``tacso-registry``: serve, migrate, relay, seed; accounts, service keys and signing keys."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from tacso_registry import accounts, changes, importing, signing, signups
from tacso_registry.app import create_app
from tacso_registry.bootstrap import apply_migrations, bootstrap, load_settings
from tacso_registry.models import audit_log
from tacso_registry.seed import seed_organisations
from tacso_shared.cli import add_audit_purge, service_cli
from tacso_shared.db import transaction
from tacso_shared.identity import NETWORK_ADMIN, SERVICE
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


@cli.command("create-admin")
@click.option("--email", required=True, help="The admin's email (the sign-in name).")
@click.option("--name", required=True, help="The admin's name.")
@click.option("--organisation-id", default=None, help="The admin's organisation, if any.")
@click.password_option(help="The password (prompted for if not given).")
def create_admin_cmd(email: str, name: str, organisation_id: str | None, password: str) -> None:
    """Create a network admin account (the first account; then invite people through the API)."""
    registry = bootstrap()
    try:
        with transaction(registry.sessions) as session:
            account = accounts.create_account(
                session, email, name, NETWORK_ADMIN, organisation_id, password
            )
            account_id = account.id
    except accounts.AccountRefused as exc:
        raise click.ClickException(f"{exc.field}: {exc.reason}") from None
    except accounts.DuplicateAccount:
        raise click.ClickException(f"an account with email {email} exists already") from None
    click.echo(f"registry: network admin {account_id} created")


@cli.command("create-service-key")
@click.option("--name", required=True, help="Which service will use it, e.g. notify.")
def create_service_key_cmd(name: str) -> None:
    """Create an API key with the role ``service`` and print its secret (once): SERVICE_API_KEY."""
    registry = bootstrap()
    with transaction(registry.sessions) as session:
        created = accounts.create_api_key(session, name, SERVICE, None, created_by="cli")
        key_id = created.key.id
    click.echo(f"# API key {key_id} ({name}); set it as SERVICE_API_KEY:", err=True)
    click.echo(created.secret)


@cli.group("keys")
def keys_group() -> None:
    """The keys registry signs tokens with: list, rotate, retire."""


@keys_group.command("list")
def keys_list_cmd() -> None:
    """List the published keys, newest (the one that signs) first."""
    registry = bootstrap()
    with registry.sessions() as session:
        for i, key in enumerate(signing.active_keys(session)):
            role = "signs" if i == 0 else "verifies"
            click.echo(f"{key.kid}  {key.created_at.isoformat()}  {role}")


@keys_group.command("rotate")
def keys_rotate_cmd() -> None:
    """Add a new key that signs from now on; older keys stay published until retired."""
    registry = bootstrap()
    with transaction(registry.sessions) as session:
        kid = signing.rotate(session).kid
    click.echo(f"registry: key {kid} signs from now on")


@keys_group.command("retire")
@click.argument("kid")
def keys_retire_cmd(kid: str) -> None:
    """Stop publishing a key: tokens it signed are refused (wait for them to expire first)."""
    registry = bootstrap()
    try:
        with transaction(registry.sessions) as session:
            signing.retire(session, kid)
    except signing.KeyNotFound:
        raise click.ClickException(f"no signing key {kid}") from None
    except signing.LastKey:
        raise click.ClickException(f"{kid} is the key that signs: rotate first") from None
    click.echo(f"registry: key {kid} retired")


@cli.group("signups")
def signups_group() -> None:
    """Self-registrations awaiting confirmation."""


@signups_group.command("purge")
def signups_purge_cmd() -> None:
    """Delete the sign-ups not confirmed within 7 days (run it daily; sign-ups also do it)."""
    registry = bootstrap()
    with transaction(registry.sessions) as session:
        purged = signups.purge_expired(session)
    click.echo(f"registry: purged {purged} expired sign-up(s)")


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check and report; write nothing.")
@click.option(
    "--country",
    default=None,
    help="Country of the rows that name none (two letters, e.g. BA).",
)
@click.option(
    "--existing",
    type=click.Choice(["skip", "update"]),
    default="skip",
    show_default=True,
    help="What to do with a row whose address is registered already.",
)
@click.option("--quiet", is_flag=True, help="Only the counts, not the row-by-row table.")
def import_cmd(file: Path, dry_run: bool, country: str | None, existing: str, quiet: bool) -> None:
    """Import organisations from a CSV list (columns by header; see docs/operations.md)."""
    registry = bootstrap()
    console = Console(stderr=True)
    data = file.read_bytes()
    try:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("checking rows", total=max(1, data.count(b"\n")))
            with transaction(registry.sessions) as session:
                report = importing.import_organisations(
                    session,
                    data,
                    dry_run=dry_run,
                    existing=existing,
                    default_country=country.upper() if country else None,
                    progress=lambda n: bar.advance(task, n),
                )
                bar.update(task, description="writing")
    except importing.ImportRefused as exc:
        raise click.ClickException(f"{exc.field}: {exc.reason}") from None
    out = Console()
    if not quiet:
        table = Table(title=f"{file.name} ({report.encoding})")
        for column in ("line", "outcome", "email", "reason"):
            table.add_column(column)
        for row in report.rows:
            table.add_row(str(row.line), row.outcome, row.email or "", row.reason or "")
        out.print(table)
    prefix = "dry run: would have " if dry_run else ""
    out.print(
        f"registry: {prefix}created {report.created}, updated {report.updated}, "
        f"skipped {report.skipped}"
    )


@cli.command("redact-erasures")
def redact_erasures_cmd() -> None:
    """Remove the addresses from published ``organisation.erased`` messages kept in the outbox."""
    registry = bootstrap()
    with transaction(registry.sessions) as session:
        done = changes.redact_published_erasures(session)
    click.echo(f"registry: {done} published erasure message(s) redacted")


add_audit_purge(cli, load_settings, audit_log)


def main() -> None:
    """Entry point of ``tacso-registry``."""
    cli()
