"""The events service's composition root: settings in, wired engine, sessions and registry out."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tacso_events import DEFAULT_PORT, SERVICE
from tacso_events.listing_cache import ListingCache
from tacso_events.models import outbox
from tacso_events.registrations import (
    DEFAULT_CLAIM_HOURS,
    DEFAULT_MAX_SEATS,
    DEFAULT_REMINDER_OFFSETS,
    Policy,
    ReminderOffset,
    parse_reminder_offsets,
)
from tacso_events.registry_client import HttpRegistryClient, RegistryClient
from tacso_events.scheduler import Scheduler
from tacso_shared.calendar import DEFAULT_UID_DOMAIN, uid_domain_from_env
from tacso_shared.config import CommonSettings, ConfigError, env_float, env_int, env_str
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
    #: Hours a freed seat is held for the organisation it is offered to (``WAITLIST_CLAIM_HOURS``).
    waitlist_claim_hours: float = DEFAULT_CLAIM_HOURS
    #: Most seats one organisation may register (``MAX_SEATS_PER_ORGANISATION``).
    max_seats_per_organisation: int = DEFAULT_MAX_SEATS
    #: When reminders are due before an event (``REMINDER_OFFSETS``, e.g. ``7d,1d``).
    reminder_offsets: tuple[ReminderOffset, ...] = field(
        default_factory=lambda: parse_reminder_offsets(DEFAULT_REMINDER_OFFSETS)
    )
    #: Seconds between the scheduler's polls for due jobs (``SCHEDULER_POLL_INTERVAL``).
    scheduler_poll_interval: float = 1.0
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

    @property
    def policy(self) -> Policy:
        """The rules registrations follow (seats, claim window, reminders)."""
        settings = self.settings
        return Policy(
            public_base_url=settings.common.public_base_url,
            claim_window=timedelta(hours=settings.waitlist_claim_hours),
            max_seats=settings.max_seats_per_organisation,
            reminder_offsets=settings.reminder_offsets,
        )

    def scheduler(self) -> Scheduler:
        """The durable scheduler for this database (offer expiry, reminders)."""
        return Scheduler(
            self.sessions, self.policy, poll_interval=self.settings.scheduler_poll_interval
        )


def load_settings(env: Mapping[str, str] | None = None) -> EventsSettings:
    """The events service's settings from ``env`` (default: the environment)."""
    env = os.environ if env is None else env
    registry_url = env_str(env, "REGISTRY_URL", DEFAULT_REGISTRY_URL).rstrip("/")
    claim_hours = env_float(env, "WAITLIST_CLAIM_HOURS", DEFAULT_CLAIM_HOURS)
    if not 0 < claim_hours <= 24 * 365:
        raise ConfigError("WAITLIST_CLAIM_HOURS must be more than 0 and at most 8760")
    max_seats = env_int(env, "MAX_SEATS_PER_ORGANISATION", DEFAULT_MAX_SEATS)
    if not 1 <= max_seats <= 1000:
        raise ConfigError("MAX_SEATS_PER_ORGANISATION must be between 1 and 1000")
    return EventsSettings(
        common=CommonSettings.load(SERVICE, DEFAULT_PORT, env),
        registry_url=registry_url,
        listing_cache_seconds=env_float(env, "LISTING_CACHE_SECONDS", 1.0),
        waitlist_claim_hours=claim_hours,
        max_seats_per_organisation=max_seats,
        reminder_offsets=parse_reminder_offsets(
            env.get("REMINDER_OFFSETS", DEFAULT_REMINDER_OFFSETS)
        ),
        scheduler_poll_interval=env_float(env, "SCHEDULER_POLL_INTERVAL", 1.0),
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
