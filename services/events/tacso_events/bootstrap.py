"""The events service's composition root: settings in, wired engine, sessions and registry out."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tacso_events import DEFAULT_PORT, SERVICE
from tacso_events.listing_cache import ListingCache
from tacso_events.models import outbox
from tacso_events.registry_client import HttpRegistryClient, RegistryClient
from tacso_shared.calendar import DEFAULT_UID_DOMAIN, uid_domain_from_env
from tacso_shared.config import CommonSettings, env_float, env_str
from tacso_shared.db import make_engine, make_session_factory, migrate
from tacso_shared.outbox import OutboxRelay

DEFAULT_REGISTRY_URL = "http://localhost:5001"
MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class EventsSettings:
    """The common settings plus where the registry answers (``REGISTRY_URL``)."""

    common: CommonSettings
    registry_url: str = DEFAULT_REGISTRY_URL
    #: Seconds a public listing may be served from memory (``LISTING_CACHE_SECONDS``).
    listing_cache_seconds: float = 1.0
    #: The domain of calendar UIDs (``event-<id>@<domain>``): ``MAIL_FROM``'s, as notify's.
    calendar_domain: str = DEFAULT_UID_DOMAIN


@dataclass
class Events:
    """Everything the events service's entrypoints need, built once per process."""

    settings: EventsSettings
    engine: Engine
    sessions: sessionmaker[Session]
    registry: RegistryClient
    listing_cache: ListingCache

    def relay(self) -> OutboxRelay:
        """The outbox relay for this database."""
        return OutboxRelay.from_settings(self.engine, outbox, self.settings.common)


def load_settings(env: Mapping[str, str] | None = None) -> EventsSettings:
    """The events service's settings from ``env`` (default: the environment)."""
    env = os.environ if env is None else env
    registry_url = env_str(env, "REGISTRY_URL", DEFAULT_REGISTRY_URL).rstrip("/")
    return EventsSettings(
        common=CommonSettings.load(SERVICE, DEFAULT_PORT, env),
        registry_url=registry_url,
        listing_cache_seconds=env_float(env, "LISTING_CACHE_SECONDS", 1.0),
        calendar_domain=uid_domain_from_env(env),
    )


def bootstrap(
    settings: EventsSettings | None = None, registry: RegistryClient | None = None
) -> Events:
    """Wire the events service from ``settings`` (default: the environment).

    ``registry`` replaces the HTTP registry client (tests pass a fake).
    """
    settings = settings or load_settings()
    engine = make_engine(settings.common.database_url)
    if registry is None:
        registry = HttpRegistryClient(settings.registry_url, settings.common.service_credential)
    return Events(
        settings,
        engine,
        make_session_factory(engine),
        registry,
        ListingCache(settings.listing_cache_seconds),
    )


def apply_migrations(settings: CommonSettings) -> None:
    """Bring the events database to the newest schema."""
    migrate(MIGRATIONS, settings.database_url)
