"""Issue 8.9: no process quietly runs with a key everyone knows."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from tacso_devtools.stack import DEFAULT_KEY, development_key_warning, local_env
from tacso_events.cli import cli as events_cli
from tacso_notify.cli import cli as notify_cli
from tacso_registry.cli import cli as registry_cli


@pytest.mark.parametrize(
    ("cli", "args"),
    [
        (registry_cli, ["migrate"]),
        (events_cli, ["serve"]),
        (notify_cli, ["status", "some-event"]),
    ],
)
def test_outside_make_up_an_unset_key_is_a_start_up_error_naming_it(
    cli: click.Command, args: list[str]
) -> None:
    result = CliRunner(env={"ADMIN_API_KEY": ""}).invoke(cli, args)

    assert result.exit_code == 1
    assert "environment variable ADMIN_API_KEY is required" in result.output
    assert "Traceback" not in result.output


def test_help_needs_no_key() -> None:
    result = CliRunner(env={"ADMIN_API_KEY": ""}).invoke(registry_cli, ["serve", "--help"])
    assert result.exit_code == 0, result.output


class TestMakeUp:
    def test_binds_to_this_machine_and_warns_about_the_development_key(self) -> None:
        env = local_env({})

        assert env["BIND_HOST"] == "127.0.0.1"
        assert env["ADMIN_API_KEY"] == DEFAULT_KEY
        warning = development_key_warning(env)
        assert warning is not None and "ADMIN_API_KEY" in warning

    def test_keeps_a_key_and_an_interface_that_were_chosen(self) -> None:
        env = local_env({"ADMIN_API_KEY": "s3cret", "BIND_HOST": "192.0.2.10"})

        assert (env["ADMIN_API_KEY"], env["BIND_HOST"]) == ("s3cret", "192.0.2.10")
        assert development_key_warning(env) is None
