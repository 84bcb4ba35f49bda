"""The registry's tables: organisations, their topics, and the outbox."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tacso_shared.db import UTCDateTime
from tacso_shared.outbox import outbox_table


class Base(DeclarativeBase):
    """Declarative base of the registry's own database."""


class Organisation(Base):
    """A CSO, Resource Centre, TACSO office or media outlet of one country."""

    __tablename__ = "organisations"
    __table_args__ = (
        sa.Index("ix_organisations_country_kind_id", "country", "kind", "id"),
        sa.UniqueConstraint("email", name="uq_organisations_email"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(32))
    country: Mapped[str] = mapped_column(sa.String(2))
    email: Mapped[str] = mapped_column(sa.String(254))
    language: Mapped[str] = mapped_column(sa.String(8))
    mailing_consent: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    topic_links: Mapped[list[OrganisationTopic]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="OrganisationTopic.topic"
    )

    @property
    def topics(self) -> list[str]:
        return [link.topic for link in self.topic_links]


class OrganisationTopic(Base):
    """One topic an organisation works on (a row per topic, so audiences are an index lookup)."""

    __tablename__ = "organisation_topics"
    __table_args__ = (sa.Index("ix_organisation_topics_topic", "topic", "organisation_id"),)

    organisation_id: Mapped[str] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(sa.String(64), primary_key=True)


outbox = outbox_table(Base.metadata)
