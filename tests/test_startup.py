"""Issue 8.9: no process quietly runs with a key everyone knows (issue 9: unset turns it off)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import CliRunner

from tacso_devtools.stack import DEFAULT_KEY, development_key_warning, local_env
from tacso_events.bootstrap import load_settings as load_events_settings
from tacso_notify.bootstrap import load_settings as load_notify_settings
from tacso_registry.bootstrap import load_settings as load_registry_settings
from tacso_registry.cli import cli as registry_cli
from tacso_shared.auth import Authentication
from tacso_shared.config import ServiceSettings
from tacso_shared.identity import InvalidCredential


@pytest.mark.parametrize(
    "load",
    [load_registry_settings, load_events_settings, load_notify_settings],
    ids=["registry", "events", "notify"],
)
def test_outside_make_up_an_unset_key_turns_the_admin_key_off(
    load: Callable[[dict[str, str]], ServiceSettings],
) -> None:
    settings = load({"ADMIN_API_KEY": ""})

    assert settings.common.admin_api_key is None


def test_with_the_admin_key_off_no_bearer_credential_is_the_admin() -> None:
    authentication = Authentication(admin_api_key=None)

    for credential in ("", "None", "dev-admin-key"):
        with pytest.raises(InvalidCredential):
            authentication.caller_for(credential)


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
