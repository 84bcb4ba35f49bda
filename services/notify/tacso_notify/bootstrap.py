"""notify's composition root: settings in, ledger out (the workers are wired in ``workers.py``,
so an API process never imports the SMTP pool, the consumer or the renderer)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tacso_notify import DEFAULT_PORT, SERVICE
from tacso_notify.domain import Sender
from tacso_notify.ledger import DeliveryLedger
from tacso_notify.mailer import SmtpSettings
from tacso_notify.subscriptions import declare_subscriptions
from tacso_notify.webhooks import DEFAULT_RETRY_SCHEDULE, WebhookSettings
from tacso_shared.config import CommonSettings, ConfigError, env_bool, env_float, env_int, env_str
from tacso_shared.db import make_engine, make_session_factory, migrate
from tacso_shared.topology import DEFAULT_RETRY_DELAYS

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class NotifySettings:
    """notify's settings: the common ones plus SMTP, sender, registry and retry schedule."""

    common: CommonSettings
    smtp: SmtpSettings
    sender: Sender
    registry_url: str
    retry_delays: tuple[int, ...]
    prefetch: int
    smtp_connections: int
    smtp_rate_limit: float
    lease_seconds: float
    webhooks: WebhookSettings
    #: Where events' API is (the audience preview reads the event there).
    events_url: str

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> NotifySettings:
        """Read notify's settings from ``env`` (default: ``os.environ``)."""
        env = os.environ if env is None else env
        raw_delays = env_str(env, "RETRY_DELAYS", ",".join(map(str, DEFAULT_RETRY_DELAYS)))
        try:
            delays = tuple(int(d) for d in raw_delays.split(",") if d.strip())
        except ValueError as exc:
            raise ConfigError(
                f"RETRY_DELAYS must be seconds separated by commas, got {raw_delays!r}"
            ) from exc
        raw_schedule = env_str(
            env, "WEBHOOK_RETRY_SCHEDULE", ",".join(f"{d:g}" for d in DEFAULT_RETRY_SCHEDULE)
        )
        try:
            schedule = tuple(float(d) for d in raw_schedule.split(",") if d.strip())
        except ValueError as exc:
            raise ConfigError(
                f"WEBHOOK_RETRY_SCHEDULE must be seconds separated by commas, got {raw_schedule!r}"
            ) from exc
        return cls(
            common=CommonSettings.load(SERVICE, DEFAULT_PORT, env),
            smtp=SmtpSettings(
                host=env_str(env, "SMTP_HOST", "localhost"),
                port=env_int(env, "SMTP_PORT", 1025),
                username=env.get("SMTP_USERNAME") or None,
                password=env.get("SMTP_PASSWORD") or None,
                starttls=env_bool(env, "SMTP_STARTTLS", False),
                ssl=env_bool(env, "SMTP_SSL", False),
                timeout=env_float(env, "SMTP_TIMEOUT", 30.0),
            ),
            sender=Sender(
                address=env_str(env, "MAIL_FROM", "events@tacso.local"),
                name=env_str(env, "MAIL_FROM_NAME", "TACSO Events"),
            ),
            registry_url=env_str(env, "REGISTRY_URL", "http://localhost:5001"),
            retry_delays=delays or DEFAULT_RETRY_DELAYS,
            prefetch=env_int(env, "WORKER_PREFETCH", 1),
            smtp_connections=env_int(env, "SMTP_CONNECTIONS", 4),
            smtp_rate_limit=env_float(env, "SMTP_RATE_LIMIT", 0.0),
            lease_seconds=env_float(env, "DELIVERY_LEASE_SECONDS", 60.0),
            webhooks=WebhookSettings(
                retry_schedule=schedule or DEFAULT_RETRY_SCHEDULE,
                timeout=env_float(env, "WEBHOOK_TIMEOUT", 10.0),
                allow_http=env_bool(env, "WEBHOOKS_ALLOW_HTTP", False),
                allow_private=env_bool(env, "WEBHOOKS_ALLOW_PRIVATE", False),
                poll_interval=env_float(env, "WEBHOOK_POLL_INTERVAL", 5.0),
            ),
            events_url=env_str(env, "EVENTS_URL", "http://localhost:5002"),
        )


@dataclass
class Notify:
    """Everything notify's entrypoints need, built once per process."""

    settings: NotifySettings
    engine: Engine
    sessions: sessionmaker[Session]
    ledger: DeliveryLedger


def load_settings(env: Mapping[str, str] | None = None) -> NotifySettings:
    """notify's settings from ``env`` (default: the environment)."""
    return NotifySettings.load(env)


def bootstrap(settings: NotifySettings | None = None) -> Notify:
    """Wire notify from ``settings`` (default: the environment)."""
    settings = settings or load_settings()
    engine = make_engine(settings.common.database_url)
    sessions = make_session_factory(engine)
    return Notify(settings, engine, sessions, DeliveryLedger(sessions))


def apply_migrations(settings: CommonSettings) -> None:
    """Bring notify's database to the newest schema."""
    migrate(MIGRATIONS, settings.database_url)


def prepare_broker(settings: NotifySettings) -> None:
    """Declare notify's subscriptions (the deploy-time step beside the migrations)."""
    declare_subscriptions(settings.common.amqp_url, settings.retry_delays)
