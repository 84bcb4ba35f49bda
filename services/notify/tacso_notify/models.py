"""notify's tables: the delivery ledger (one row per event revision, organisation and kind)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tacso_shared.audit import audit_table
from tacso_shared.db import UTCDateTime

PENDING, SENT, FAILED = "pending", "sent", "failed"
#: Not sent on purpose: a newer revision of the event came first (``superseded``), or a reminder
#: whose moment has passed (``skipped``: the event started, was cancelled, the registration ended).
SUPERSEDED, SKIPPED = "superseded", "skipped"
STATUSES = (PENDING, SENT, FAILED, SUPERSEDED, SKIPPED)


class Base(DeclarativeBase):
    """Declarative base of notify's own database."""


class Delivery(Base):
    """One email owed to one organisation about one revision of one event.

    The unique key makes a redelivered or re-published message harmless: the row already exists,
    and a row already ``sent`` is never sent again. Registration mail adds the registration and
    its status change (``sequence``) to the key; other mail has ``""`` and 0 there.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        sa.UniqueConstraint(
            "event_id",
            "revision",
            "organisation_id",
            "kind",
            "reminder_offset",
            "registration_id",
            "sequence",
            name="uq_deliveries_once",
        ),
        sa.Index("ix_deliveries_event_kind_status", "event_id", "kind", "status"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(sa.String(36))
    revision: Mapped[int] = mapped_column(sa.Integer)
    organisation_id: Mapped[str] = mapped_column(sa.String(36))
    kind: Mapped[str] = mapped_column(sa.String(32))
    #: A reminder's offset before the start (``7d``, ``1d``); empty for every other kind.
    reminder_offset: Mapped[str] = mapped_column(sa.String(16), default="", server_default="")
    recipient: Mapped[str] = mapped_column(sa.String(254))
    country: Mapped[str] = mapped_column(sa.String(2))
    status: Mapped[str] = mapped_column(sa.String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    message_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: A worker sending this delivery holds it for a while (its lease); a worker that died
    #: releases it when the lease runs out, so another one can take it over.
    claim_token: Mapped[str | None] = mapped_column(sa.String(36), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: The registration a registration mail is about, and which of its status changes.
    registration_id: Mapped[str] = mapped_column(sa.String(36), default="", server_default="")
    sequence: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")


class Suppression(Base):
    """An address that refused mail for good (SMTP 5xx): no more bulk mail goes to it."""

    __tablename__ = "suppressions"

    email: Mapped[str] = mapped_column(sa.String(254), primary_key=True)
    reason: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EventSnapshot(Base):
    """The event as notify last received it, so an operator can re-send its failed mail."""

    __tablename__ = "event_snapshots"

    event_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    revision: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    envelope: Mapped[str] = mapped_column(sa.Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FanOutContinuation(Base):
    """That one page of a fan-out handed the next page on: at most one live chain per fan-out.

    A page task publishes the task of the next page before it sends; when the page is retried
    (SMTP said "not now", the worker died) it must not start a second chain. ``chain`` is the id
    of the message that started the fan-out (the event's envelope, or an operator's re-send).
    """

    __tablename__ = "fanout_continuations"

    chain: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    #: Keyset cursor the next page starts after (an organisation id).
    after: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    published: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RegistrationState(Base):
    """notify's mirror of a registration: its newest status as ``registration.*`` messages said.

    One row per (event, organisation); a message only replaces it when its ``sequence`` is
    higher, so messages delivered out of order leave the newest state in place.
    """

    __tablename__ = "registration_states"

    event_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    registration_id: Mapped[str] = mapped_column(sa.String(36))
    status: Mapped[str] = mapped_column(sa.String(16))
    seats: Mapped[int] = mapped_column(sa.Integer)
    sequence: Mapped[int] = mapped_column(sa.Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EventRevision(Base):
    """The newest revision of an event notify has seen, on any queue: older notices are stale."""

    __tablename__ = "event_revisions"

    event_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    revision: Mapped[int] = mapped_column(sa.Integer)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    cancelled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EventNotice(Base):
    """The envelope of an update or cancellation, so every page of its fan-out can reload it."""

    __tablename__ = "event_notices"

    event_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    revision: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    envelope: Mapped[str] = mapped_column(sa.Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


#: What became of a webhook delivery: waiting for its (next) attempt, delivered (2xx), failed for
#: good (every attempt of the schedule spent), or abandoned (its subscription was disabled).
WEBHOOK_PENDING, WEBHOOK_DELIVERED, WEBHOOK_FAILED, WEBHOOK_ABANDONED = (
    "pending",
    "delivered",
    "failed",
    "abandoned",
)


class WebhookSubscription(Base):
    """A web client that wants to be told: where to POST, which event types, which countries."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(2048))
    #: ``whsec_`` + base64 of the signing key (Standard Webhooks); shown once, at creation.
    secret: Mapped[str] = mapped_column(sa.String(128))
    #: Comma-separated: ``event.published``, ``registration.*``, ``registration.confirmed``...
    event_types: Mapped[str] = mapped_column(sa.String(500))
    #: Comma-separated country codes; NULL: every country (network admins only).
    countries: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    description: Mapped[str | None] = mapped_column(sa.String(500), nullable=True)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_by: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookDelivery(Base):
    """One message owed to one subscription; unique per (subscription, message id), so a
    redelivered message writes nothing twice. ``next_attempt_at`` is the retry schedule."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("subscription_id", "message_id", name="uq_webhook_deliveries_once"),
        sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        sa.Index("ix_webhook_deliveries_subscription", "subscription_id", "id"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    #: The envelope's id: the ``webhook-id`` header, the same on every attempt.
    message_id: Mapped[str] = mapped_column(sa.String(200))
    event_type: Mapped[str] = mapped_column(sa.String(64))
    country: Mapped[str] = mapped_column(sa.String(2))
    #: The body POSTed (the CloudEvents envelope as JSON), kept so a retry sends the same bytes.
    payload: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), default=WEBHOOK_PENDING)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


audit_log = audit_table(Base.metadata)
