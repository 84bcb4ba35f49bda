"""Signed webhooks: subscriptions, the delivery log and delivery with retries (no Flask here).

A message of the ``notify.webhooks.<country>`` queues (events published, updated, cancelled;
registrations changing status) becomes one :class:`~tacso_notify.models.WebhookDelivery` row per
enabled subscription that wants its type and country, unique per (subscription, message id), so
a redelivered message writes nothing twice. Rows are then sent, each POST signed per the Standard
Webhooks specification (https://www.standardwebhooks.com/): ``webhook-id`` (the envelope's id,
the same on every attempt), ``webhook-timestamp`` (seconds since the epoch, of this attempt) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed with the
subscription's secret. The body is the CloudEvents envelope the queue carried, as JSON.

A failed attempt (no answer within the timeout, a status other than 2xx) sets ``next_attempt_at``
by the retry schedule, in the database: whichever webhook worker polls next (``SELECT ... FOR
UPDATE SKIP LOCKED`` on PostgreSQL) sends it, so a restart or a crash loses no retry. A ``410
Gone`` disables the subscription at once; a delivery whose every attempt failed disables it too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tacso_notify.models import (
    WEBHOOK_ABANDONED,
    WEBHOOK_DELIVERED,
    WEBHOOK_FAILED,
    WEBHOOK_PENDING,
    WebhookDelivery,
    WebhookSubscription,
)
from tacso_shared import metrics
from tacso_shared.contracts import (
    EVENT_CANCELLED,
    EVENT_PUBLISHED,
    EVENT_UPDATED,
    REGISTRATION_CHANGED_V1,
    REGISTRATION_STATUSES,
)
from tacso_shared.db import transaction
from tacso_shared.envelope import Envelope

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, not a secret
REGISTRATION_ANY = "registration.*"
#: The event types a subscriber may ask for (``registration.*`` means every status).
EVENT_TYPES: tuple[str, ...] = (
    "event.published",
    "event.updated",
    "event.cancelled",
    REGISTRATION_ANY,
    *(f"registration.{status}" for status in REGISTRATION_STATUSES),
)
#: The webhook event type of each message type notify's webhook queues carry.
WEBHOOK_TYPE_OF: dict[str, str] = {
    EVENT_PUBLISHED: "event.published",
    EVENT_UPDATED: "event.updated",
    EVENT_CANCELLED: "event.cancelled",
    **{
        contract.type: f"registration.{status}"
        for status, contract in REGISTRATION_CHANGED_V1.items()
    },
}
#: Seconds after each failed attempt before the next: about 3 days in all (5 s, 5 min, 30 min,
#: 2 h, 5 h, 10 h, 14 h, 20 h, 20 h), then the delivery has failed for good.
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 72000)
#: Longest error text kept per delivery.
MAX_ERROR = 500


@dataclass(frozen=True)
class WebhookSettings:
    """How webhooks are checked and sent (README's configuration table)."""

    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    timeout: float = 10.0
    #: Plain ``http://`` URLs are refused unless this is on (tests, development).
    allow_http: bool = False
    #: URLs resolving to loopback, private, link-local or reserved addresses are refused unless
    #: this is on (tests, a receiver on the same private network).
    allow_private: bool = False
    poll_interval: float = 5.0
    batch_size: int = 50
    #: How long a claimed delivery stays reserved for the worker sending it (if it dies).
    lease_seconds: float = 60.0


# ---- signing (Standard Webhooks) --------------------------------------------------------------
def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(raw)


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` header: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``."""
    digest = hmac.new(
        _key(secret), f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256
    ).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(
    secret: str, message_id: str, body: str, now: float | None = None
) -> dict[str, str]:
    """Every header of one attempt: the three of the specification and the content type."""
    timestamp = int(time.time() if now is None else now)
    return {
        "Content-Type": "application/json",
        "User-Agent": "tacso-notify-webhooks/1",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


# ---- subscriptions ---------------------------------------------------------------------------
class UnsafeURL(ValueError):
    """A URL that webhooks may not be sent to (scheme, host, address)."""


Resolver = Callable[[str], list[str]]


def resolve(host: str) -> list[str]:
    """Every address ``host`` resolves to (empty if it does not)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError, ValueError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    return ip.is_global and not ip.is_multicast


def check_url(url: str, settings: WebhookSettings, resolver: Resolver = resolve) -> None:
    """Refuse a URL webhooks may not go to (:class:`UnsafeURL` says why).

    Server-side request forgery: a subscriber must not make notify POST to the network notify
    lives in (RabbitMQ's management port, a cloud metadata address). The host is resolved and
    every address must be public; it is checked again before each attempt, since a name can
    come to point elsewhere later.
    """
    parts = urlsplit(url)
    allowed = ("https", "http") if settings.allow_http else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeURL(f"The scheme must be {' or '.join(allowed)}.")
    if not parts.hostname:
        raise UnsafeURL("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeURL("The URL may not carry a user name or password.")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise UnsafeURL(f"Bad port: {exc}.") from None
    addresses = resolver(parts.hostname)
    if not addresses:
        raise UnsafeURL(f"The host {parts.hostname} does not resolve.")
    if not settings.allow_private:
        private = [a for a in addresses if not _is_public(a)]
        if private:
            raise UnsafeURL(
                f"The host {parts.hostname} resolves to a loopback, private or reserved "
                f"address ({private[0]}); webhooks go to public addresses only."
            )


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v for v in (value or "").split(",") if v)


@dataclass(frozen=True)
class Subscription:
    """A subscription as the API shows it (never its secret, after creation)."""

    id: str
    url: str
    event_types: tuple[str, ...]
    countries: tuple[str, ...] | None
    description: str | None
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, row: WebhookSubscription) -> Subscription:
        return cls(
            id=row.id,
            url=row.url,
            event_types=_split(row.event_types),
            countries=_split(row.countries) if row.countries is not None else None,
            description=row.description,
            enabled=row.enabled,
            disabled_reason=row.disabled_reason,
            disabled_at=row.disabled_at,
            created_by=row.created_by,
            created_at=row.created_at,
        )

    def visible_to(self, countries: tuple[str, ...] | None) -> bool:
        """Whether a caller acting in ``countries`` (None: everywhere) may see it."""
        if countries is None:
            return True
        return self.countries is not None and set(self.countries) <= set(countries)


@dataclass(frozen=True)
class CreatedSubscription:
    """A new subscription and its secret (shown this once)."""

    subscription: Subscription
    secret: str


def create_subscription(
    session: Session,
    url: str,
    event_types: Sequence[str],
    countries: Sequence[str] | None,
    created_by: str,
    description: str | None = None,
) -> CreatedSubscription:
    """Add a subscription (in ``session``'s transaction) with a fresh secret."""
    row = WebhookSubscription(
        id=str(uuid.uuid4()),
        url=url,
        secret=new_secret(),
        event_types=",".join(sorted(set(event_types))),
        countries=",".join(sorted(set(countries))) if countries is not None else None,
        description=description,
        enabled=True,
        created_by=created_by[:100],
        created_at=datetime.now(UTC),
    )
    session.add(row)
    session.flush()
    return CreatedSubscription(Subscription.of(row), row.secret)


def list_subscriptions(
    sessions: sessionmaker[Session], countries: tuple[str, ...] | None
) -> list[Subscription]:
    """Every subscription a caller acting in ``countries`` (None: everywhere) may see."""
    with sessions() as session:
        rows = session.scalars(
            sa.select(WebhookSubscription).order_by(
                WebhookSubscription.created_at, WebhookSubscription.id
            )
        )
        found = [Subscription.of(row) for row in rows]
    return [s for s in found if s.visible_to(countries)]


def get_subscription(sessions: sessionmaker[Session], subscription_id: str) -> Subscription | None:
    """One subscription, or None."""
    with sessions() as session:
        row = session.get(WebhookSubscription, subscription_id)
        return Subscription.of(row) if row is not None else None


def delete_subscription(session: Session, subscription_id: str) -> bool:
    """Remove a subscription and its delivery log; False if there was none."""
    row = session.get(WebhookSubscription, subscription_id)
    if row is None:
        return False
    session.execute(
        sa.delete(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    )
    session.delete(row)
    return True


def _disable(session: Session, row: WebhookSubscription, reason: str, now: datetime) -> None:
    """Disable a subscription; what it still had pending is abandoned (never sent)."""
    if not row.enabled:
        return
    row.enabled = False
    row.disabled_reason = reason[:MAX_ERROR]
    row.disabled_at = now
    session.execute(
        sa.update(WebhookDelivery)
        .where(
            WebhookDelivery.subscription_id == row.id,
            WebhookDelivery.status == WEBHOOK_PENDING,
        )
        .values(status=WEBHOOK_ABANDONED, next_attempt_at=None)
    )
    metrics.WEBHOOK_SUBSCRIPTIONS_DISABLED.inc()
    log.warning("webhook subscription %s disabled: %s", row.id, reason)


def enable_subscription(session: Session, subscription_id: str) -> Subscription | None:
    """Enable a subscription again (new messages only: abandoned ones stay abandoned)."""
    row = session.get(WebhookSubscription, subscription_id)
    if row is None:
        return None
    row.enabled, row.disabled_reason, row.disabled_at = True, None, None
    session.flush()
    return Subscription.of(row)


@dataclass(frozen=True)
class DeliveryView:
    """One row of a subscription's delivery log."""

    id: int
    message_id: str
    event_type: str
    country: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class DeliveryLogPage:
    """One page of a subscription's delivery log, newest first."""

    items: list[DeliveryView]
    page: int
    page_size: int
    total: int


def delivery_log(
    sessions: sessionmaker[Session], subscription_id: str, page: int, page_size: int
) -> DeliveryLogPage:
    """The deliveries of one subscription, newest first."""
    d = WebhookDelivery
    with sessions() as session:
        total = session.scalar(
            sa.select(sa.func.count()).select_from(d).where(d.subscription_id == subscription_id)
        )
        rows = session.scalars(
            sa.select(d)
            .where(d.subscription_id == subscription_id)
            .order_by(d.id.desc())
            .limit(page_size)
            .offset((page - 1) * page_size)
        ).all()
        items = [
            DeliveryView(
                id=r.id,
                message_id=r.message_id,
                event_type=r.event_type,
                country=r.country,
                status=r.status,
                attempts=r.attempts,
                last_status_code=r.last_status_code,
                last_error=r.last_error,
                next_attempt_at=r.next_attempt_at,
                created_at=r.created_at,
                delivered_at=r.delivered_at,
            )
            for r in rows
        ]
    return DeliveryLogPage(items, page, page_size, int(total or 0))


# ---- from message to delivery rows -----------------------------------------------------------
def wants(event_types: Sequence[str], event_type: str) -> bool:
    """Whether a subscription to ``event_types`` wants ``event_type``."""
    if event_type in event_types:
        return True
    return event_type.startswith("registration.") and REGISTRATION_ANY in event_types


def record_message(
    sessions: sessionmaker[Session], envelope: Envelope, country: str, now: datetime | None = None
) -> list[int]:
    """Write one pending delivery per enabled subscription that wants this message; the ids of
    the rows written now (a row written before, for a redelivered message, is left alone)."""
    event_type = WEBHOOK_TYPE_OF.get(envelope.type)
    if event_type is None:
        return []
    now = now or datetime.now(UTC)
    payload = envelope.to_json()
    written: list[int] = []
    with transaction(sessions) as session:
        subscriptions = session.scalars(
            sa.select(WebhookSubscription).where(WebhookSubscription.enabled.is_(True))
        ).all()
        for sub in subscriptions:
            countries = _split(sub.countries) if sub.countries is not None else None
            if countries is not None and country not in countries:
                continue
            if not wants(_split(sub.event_types), event_type):
                continue
            exists = session.scalar(
                sa.select(WebhookDelivery.id).where(
                    WebhookDelivery.subscription_id == sub.id,
                    WebhookDelivery.message_id == envelope.id,
                )
            )
            if exists is not None:
                continue
            row = WebhookDelivery(
                subscription_id=sub.id,
                message_id=envelope.id,
                event_type=event_type,
                country=country,
                payload=payload,
                status=WEBHOOK_PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            session.add(row)
            session.flush()
            written.append(row.id)
    return written


# ---- sending ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Claimed:
    id: int
    subscription_id: str
    url: str
    secret: str
    message_id: str
    payload: str


@dataclass(frozen=True)
class Attempt:
    """What one POST came to: the status code (None: no answer) and an error text."""

    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _claim(
    sessions: sessionmaker[Session],
    settings: WebhookSettings,
    now: datetime,
    ids: Sequence[int] | None,
) -> list[_Claimed]:
    """Reserve due deliveries for this worker: their next attempt moves a lease ahead, so no
    other worker takes them meanwhile (and they come back if this one dies)."""
    d, s = WebhookDelivery, WebhookSubscription
    query = (
        sa.select(d)
        .join(s, s.id == d.subscription_id)
        .where(d.status == WEBHOOK_PENDING, d.next_attempt_at <= now, s.enabled.is_(True))
        .order_by(d.next_attempt_at, d.id)
        .limit(settings.batch_size)
        # PostgreSQL: rows another worker holds are skipped, not waited for (SQLite ignores it).
        .with_for_update(skip_locked=True, of=d)
    )
    if ids is not None:
        query = query.where(d.id.in_(list(ids)))
    claimed: list[_Claimed] = []
    lease = now + timedelta(seconds=settings.lease_seconds)
    with transaction(sessions) as session:
        for row in session.scalars(query).all():
            sub = session.get(s, row.subscription_id)
            if sub is None:  # pragma: no cover - the join found it
                continue
            # Compare-and-set: only the sender whose update still sees the due time it read
            # takes the row (SQLite has no row locks; on PostgreSQL the lock already decided).
            taken = session.execute(
                sa.update(d)
                .where(
                    d.id == row.id,
                    d.status == WEBHOOK_PENDING,
                    d.next_attempt_at == row.next_attempt_at,
                )
                .values(next_attempt_at=lease)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                continue
            claimed.append(
                _Claimed(row.id, sub.id, sub.url, sub.secret, row.message_id, row.payload)
            )
    return claimed


def post(
    http: requests.Session,
    claimed: _Claimed,
    settings: WebhookSettings,
    resolver: Resolver = resolve,
) -> Attempt:
    """One signed POST of one delivery."""
    try:
        check_url(claimed.url, settings, resolver)
    except UnsafeURL as exc:
        return Attempt(None, f"refused: {exc}")
    headers = signed_headers(claimed.secret, claimed.message_id, claimed.payload)
    try:
        response = http.post(
            claimed.url,
            data=claimed.payload.encode("utf-8"),
            headers=headers,
            timeout=settings.timeout,
            # A redirect is not followed: it could lead anywhere, the private network included.
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        return Attempt(None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR])
    response.close()
    if 200 <= response.status_code < 300:
        return Attempt(response.status_code, None)
    return Attempt(
        response.status_code, f"HTTP {response.status_code} {response.reason or ''}".strip()
    )


def _settle(
    sessions: sessionmaker[Session],
    settings: WebhookSettings,
    claimed: _Claimed,
    attempt: Attempt,
    now: datetime,
) -> str:
    """Record an attempt's outcome; returns it (delivered, retry, failed or gone)."""
    with transaction(sessions) as session:
        row = session.get(WebhookDelivery, claimed.id)
        sub = session.get(WebhookSubscription, claimed.subscription_id)
        if row is None or sub is None or row.status != WEBHOOK_PENDING:
            return "dropped"  # deleted or disabled meanwhile
        row.attempts += 1
        row.last_status_code = attempt.status_code
        row.last_error = attempt.error
        if attempt.delivered:
            row.status, row.delivered_at, row.next_attempt_at = WEBHOOK_DELIVERED, now, None
            return "delivered"
        if attempt.status_code == 410:
            row.status, row.next_attempt_at = WEBHOOK_FAILED, None
            _disable(session, sub, "the receiver answered 410 Gone", now)
            return "gone"
        if row.attempts > len(settings.retry_schedule):
            row.status, row.next_attempt_at = WEBHOOK_FAILED, None
            _disable(
                session,
                sub,
                f"every one of {row.attempts} attempts of message {row.message_id} failed "
                f"(last: {attempt.error})",
                now,
            )
            return "failed"
        delay = settings.retry_schedule[row.attempts - 1]
        row.next_attempt_at = now + timedelta(seconds=delay)
        return "retry"


def deliver_due(
    sessions: sessionmaker[Session],
    settings: WebhookSettings,
    http: requests.Session,
    ids: Sequence[int] | None = None,
    resolver: Resolver = resolve,
) -> dict[str, int]:
    """Send every due delivery (or only ``ids``, if they are due), one batch at a time; counts
    of the outcomes."""
    outcomes: dict[str, int] = {}
    while True:
        claimed = _claim(sessions, settings, datetime.now(UTC), ids)
        if not claimed:
            return outcomes
        for item in claimed:
            attempt = post(http, item, settings, resolver)
            outcome = _settle(sessions, settings, item, attempt, datetime.now(UTC))
            metrics.WEBHOOK_DELIVERIES.labels(outcome).inc()
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            log.info(
                "webhook %s of message %s to subscription %s: %s (%s)",
                item.id,
                item.message_id,
                item.subscription_id,
                outcome,
                attempt.error or attempt.status_code,
            )
        if ids is not None:
            return outcomes
