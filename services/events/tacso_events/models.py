"""The events service's tables: events, their topics, registrations, scheduled jobs, the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tacso_shared.audit import audit_table
from tacso_shared.db import UTCDateTime
from tacso_shared.outbox import outbox_table

DRAFT = "draft"
PUBLISHED = "published"
#: A published event that will not take place (``POST /events/{id}/cancel``); it stays readable.
CANCELLED = "cancelled"
STATUSES = (DRAFT, PUBLISHED, CANCELLED)
#: What a create request may ask for: an event is cancelled only after it was published.
CREATABLE_STATUSES = (DRAFT, PUBLISHED)


class Base(DeclarativeBase):
    """Declarative base of the events service's own database."""


class Event(Base):
    """A conference, workshop or training organised by a Resource Centre or TACSO office."""

    __tablename__ = "events"
    __table_args__ = (
        sa.Index("ix_events_status_starts_at_id", "status", "starts_at", "id"),
        sa.Index("ix_events_country_status_starts_at", "country", "status", "starts_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(sa.Text)
    type: Mapped[str] = mapped_column(sa.String(32))
    country: Mapped[str] = mapped_column(sa.String(2))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    venue_name: Mapped[str | None] = mapped_column(sa.String(200))
    venue_address: Mapped[str | None] = mapped_column(sa.String(300))
    venue_city: Mapped[str | None] = mapped_column(sa.String(100))
    online_url: Mapped[str | None] = mapped_column(sa.String(2000))
    capacity: Mapped[int | None] = mapped_column(sa.Integer)
    organiser_id: Mapped[str] = mapped_column(sa.String(64))
    organiser_name: Mapped[str] = mapped_column(sa.String(200))
    organiser_email: Mapped[str | None] = mapped_column(sa.String(254))
    #: The language title and description are written in; ``translations`` maps other
    #: languages to ``{"title", "description"}``.
    language: Mapped[str] = mapped_column(sa.String(8), default="en", server_default="en")
    translations: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)
    status: Mapped[str] = mapped_column(sa.String(16))
    revision: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Why and when a published event was cancelled (both null unless ``status`` is cancelled).
    cancel_reason: Mapped[str | None] = mapped_column(sa.String(500))
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    topic_links: Mapped[list[EventTopic]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="EventTopic.topic"
    )

    @property
    def topics(self) -> list[str]:
        return [link.topic for link in self.topic_links]

    @property
    def venue(self) -> dict[str, Any] | None:
        if self.venue_name is None or self.venue_city is None:
            return None
        return {"name": self.venue_name, "address": self.venue_address, "city": self.venue_city}


class EventTopic(Base):
    """One topic of an event (a row per topic, so filtering by topic is an index lookup)."""

    __tablename__ = "event_topics"
    __table_args__ = (sa.Index("ix_event_topics_topic", "topic", "event_id"),)

    event_id: Mapped[str] = mapped_column(
        sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(sa.String(64), primary_key=True)


#: What a registration can be (the same as ``tacso_shared.contracts.REGISTRATION_STATUSES``).
CONFIRMED = "confirmed"
WAITLISTED = "waitlisted"
OFFERED = "offered"
EXPIRED = "expired"
CANCELLED = "cancelled"
DECLINED = "declined"
REGISTRATION_STATUSES = (CONFIRMED, WAITLISTED, OFFERED, EXPIRED, CANCELLED, DECLINED)
#: The statuses that hold (or wait for) seats: an organisation has one such registration at most.
ACTIVE_STATUSES = (CONFIRMED, WAITLISTED, OFFERED)


class Registration(Base):
    """An organisation's place at an event: confirmed, on the waitlist, offered a freed seat...

    One row per (event, organisation): a cancelled or declined registration is the same row
    when the organisation answers again. ``sequence`` counts its status changes.
    """

    __tablename__ = "registrations"
    __table_args__ = (
        sa.UniqueConstraint("event_id", "organisation_id", name="uq_registrations_event_org"),
        sa.Index("ix_registrations_event_status_order", "event_id", "status", "waitlist_order"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.ForeignKey("events.id", ondelete="CASCADE"))
    organisation_id: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16))
    seats: Mapped[int] = mapped_column(sa.Integer)
    note: Mapped[str | None] = mapped_column(sa.String(500))
    #: Arrival order on the waitlist (set when waitlisted; lower goes first).
    waitlist_order: Mapped[int | None] = mapped_column(sa.Integer)
    #: The end of the claim window while ``offered``.
    offer_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sequence: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ScheduledJob(Base):
    """Work due at a time (an offer's expiry, a reminder): a row, so it survives restarts.

    ``key`` names the job's purpose (``offer_expiry:<registration>``), so scheduling it again
    replaces it. ``locked_until`` is the claim of a scheduler (and, after a failure, the time of
    the next attempt).
    """

    __tablename__ = "scheduled_jobs"
    __table_args__ = (sa.Index("ix_scheduled_jobs_due_at", "due_at"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    key: Mapped[str] = mapped_column(sa.String(200), unique=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(sa.Text)


outbox = outbox_table(Base.metadata)

audit_log = audit_table(Base.metadata)
