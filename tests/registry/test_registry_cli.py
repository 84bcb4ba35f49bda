"""Specification of registry's operator commands for accounts, service keys and signing keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tacso_registry.app import create_app
from tacso_registry.bootstrap import apply_migrations, bootstrap, load_settings
from tacso_registry.cli import cli


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of a registry on a migrated SQLite file."""
    variables = {
        "VAR_DIR": str(tmp_path),
        "REGISTRY_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.sqlite3'}",
        "ADMIN_API_KEY": "",
    }
    apply_migrations(load_settings(variables).common)
    return variables


def test_the_first_admin_signs_in_with_the_password_given(env: dict[str, str]) -> None:
    runner = CliRunner(env=env)
    created = runner.invoke(
        cli,
        ["create-admin", "--email", "Admin@TACSO.org", "--name", "Admin"],
        input="a long admin password\na long admin password\n",
    )
    again = runner.invoke(
        cli,
        ["create-admin", "--email", "admin@tacso.org", "--name", "Admin"],
        input="a long admin password\na long admin password\n",
    )

    assert created.exit_code == 0, created.output
    assert "a long admin password" not in created.output
    assert again.exit_code == 1 and "exists already" in again.output
    registry = bootstrap(load_settings(env))
    response = (
        create_app(registry)
        .test_client()
        .post(
            "/api/v1/auth/token",
            data={
                "grant_type": "password",
                "username": "admin@tacso.org",
                "password": "a long admin password",
            },
        )
    )
    registry.engine.dispose()
    assert response.status_code == 200, response.get_json()


def test_a_service_key_is_printed_once_and_opens_registry(env: dict[str, str]) -> None:
    result = CliRunner(env=env).invoke(cli, ["create-service-key", "--name", "notify"])

    secret = result.stdout.strip()
    assert result.exit_code == 0 and secret.startswith("tacso_")
    registry = bootstrap(load_settings(env))
    me = (
        create_app(registry)
        .test_client()
        .get("/api/v1/auth/me", headers={"Authorization": f"Bearer {secret}"})
    )
    registry.engine.dispose()
    assert me.get_json()["role"] == "service"


def test_keys_rotate_and_retire(env: dict[str, str]) -> None:
    runner = CliRunner(env=env)
    first = runner.invoke(cli, ["keys", "list"]).output.split()[0]

    refused = runner.invoke(cli, ["keys", "retire", first])
    rotated = runner.invoke(cli, ["keys", "rotate"])
    retired = runner.invoke(cli, ["keys", "retire", first])
    unknown = runner.invoke(cli, ["keys", "retire", "nope"])
    listed = runner.invoke(cli, ["keys", "list"]).output

    assert refused.exit_code == 1 and "rotate first" in refused.output
    assert rotated.exit_code == 0 and retired.exit_code == 0
    assert unknown.exit_code == 1
    assert first not in listed and len(listed.splitlines()) == 1
