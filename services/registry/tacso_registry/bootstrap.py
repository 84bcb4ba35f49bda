"""The registry's composition root: settings in, wired engine and session factory out."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tacso_registry.models import outbox
from tacso_shared.config import CommonSettings
from tacso_shared.db import make_engine, make_session_factory, migrate
from tacso_shared.outbox import OutboxRelay

SERVICE = "registry"
DEFAULT_PORT = 5001
MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class RegistrySettings:
    """The registry's settings: the common ones (it needs nothing else)."""

    common: CommonSettings


@dataclass
class Registry:
    """Everything the registry's entrypoints need, built once per process."""

    settings: RegistrySettings
    engine: Engine
    sessions: sessionmaker[Session]

    def relay(self) -> OutboxRelay:
        """The outbox relay for this database."""
        return OutboxRelay.from_settings(self.engine, outbox, self.settings.common)


def load_settings(env: Mapping[str, str] | None = None) -> RegistrySettings:
    """The registry's settings from ``env`` (default: the environment)."""
    env = os.environ if env is None else env
    return RegistrySettings(common=CommonSettings.load(SERVICE, DEFAULT_PORT, env))


def bootstrap(settings: RegistrySettings | None = None) -> Registry:
    """Wire the registry from ``settings`` (default: the environment)."""
    settings = settings or load_settings()
    engine = make_engine(settings.common.database_url)
    return Registry(settings, engine, make_session_factory(engine))


def apply_migrations(settings: CommonSettings) -> None:
    """Bring the registry's database to the newest schema."""
    migrate(MIGRATIONS, settings.database_url)
