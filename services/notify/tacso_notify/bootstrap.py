"""notify's composition root: settings in; ledger, directory, mailer and workers wired out."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tacso_notify.audience import RegistryDirectory
from tacso_notify.handlers import Dependencies, make_handler, warm_up
from tacso_notify.ledger import DeliveryLedger
from tacso_notify.mailer import SmtpMailer, SmtpSettings
from tacso_notify.rendering import MessageKind, Sender
from tacso_notify.sending import SenderPool
from tacso_notify.tasks import PageTask, load_message, page_task_message
from tacso_shared.config import CommonSettings, ConfigError, env_bool, env_float, env_int, env_str
from tacso_shared.consumer import QueueWorker
from tacso_shared.db import make_engine, make_session_factory, migrate
from tacso_shared.messaging import SyncPublisher
from tacso_shared.topology import DEFAULT_RETRY_DELAYS, QUEUE_FAMILIES

SERVICE = "notify"
DEFAULT_PORT = 5003
MIGRATIONS = Path(__file__).parent / "migrations"

#: Which kind of mail each work queue's worker sends.
QUEUE_KINDS: dict[str, MessageKind] = {
    "invitations": MessageKind.INVITATION,
    "press_notices": MessageKind.PRESS_NOTICE,
}


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
        )


@dataclass
class Notify:
    """Everything notify's entrypoints need, built once per process."""

    settings: NotifySettings
    engine: Engine
    sessions: sessionmaker[Session]
    ledger: DeliveryLedger

    def worker(self, queue: str, countries: Sequence[str] | None = None) -> NotifyWorker:
        """A worker for one kind of mail (``invitations`` or ``press_notices``), all countries
        or only ``countries``."""
        settings = self.settings
        pool = SenderPool(
            lambda: SmtpMailer(settings.smtp),
            connections=settings.smtp_connections,
            rate_per_second=settings.smtp_rate_limit,
        )
        stopping = threading.Event()
        family = QUEUE_FAMILIES[queue]
        publisher = SyncPublisher(settings.common.amqp_url)

        def hand_on(task: PageTask) -> None:
            # Straight to the back of the same country queue: any worker of the family takes it.
            publisher.publish([page_task_message(task, family.queue_for(task.country).name)])

        deps = Dependencies(
            ledger=self.ledger,
            directory=RegistryDirectory(settings.registry_url, settings.common.service_credential),
            pool=pool,
            sender=settings.sender,
            domain=settings.sender.address.rpartition("@")[2] or "tacso.local",
            lease_seconds=settings.lease_seconds,
            stopping=stopping,
            hand_on=hand_on,
        )
        consumer = QueueWorker(
            settings.common.amqp_url,
            family.queues(countries),
            make_handler(QUEUE_KINDS[queue], deps),
            retry_delays=settings.retry_delays,
            prefetch=settings.prefetch,
            stopping=stopping,
            loader=load_message,
        )
        return NotifyWorker(
            consumer, pool, lambda: warm_up(QUEUE_KINDS[queue], deps), publisher.close
        )


@dataclass
class NotifyWorker:
    """A queue consumer and the SMTP connections it sends through."""

    consumer: QueueWorker
    pool: SenderPool
    warm_up: Callable[[], None]
    close_publisher: Callable[[], None]

    def run(self) -> None:
        """Consume until stopped, then close the SMTP connections."""
        self.warm_up()
        try:
            self.consumer.run()
        finally:
            self.pool.close()
            self.close_publisher()

    def stop(self) -> None:
        """Ask the worker to finish (safe from a signal handler)."""
        self.consumer.stop()


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
