"""``tacso-registry``: serve, migrate, relay, seed; accounts, service keys and signing keys."""

from __future__ import annotations

import click

from tacso_registry import accounts, changes, signing
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
