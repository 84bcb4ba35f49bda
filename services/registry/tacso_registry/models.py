"""The registry's tables: organisations, their topics, accounts, API keys, signing keys, outbox."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tacso_shared.audit import audit_table
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
    #: Whether the organisation has an unwithdrawn consent record (kept by :mod:`consent`).
    mailing_consent: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    #: A deactivated organisation is kept but gets no mail.
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    #: Set when the organisation was erased: the row is a tombstone without personal data.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Contact people, a JSON list of ``{"name", "email", "phone", "role"}`` objects.
    contacts: Mapped[list[dict[str, str]]] = mapped_column(sa.JSON, default=list)
    #: Opted out of every mail that is not transactional (preferences, one-click unsubscribe).
    opted_out_all: Mapped[bool] = mapped_column(sa.Boolean, default=False)
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


class Account(Base):
    """A person who signs in: one role, one organisation (none only for a network admin)."""

    __tablename__ = "accounts"
    __table_args__ = (sa.UniqueConstraint("email", name="uq_accounts_email"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254))
    name: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(32))
    organisation_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="RESTRICT"), nullable=True
    )
    #: Argon2id hash; ``None`` until the invitation is used.
    password_hash: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    disabled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    password_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiKey(Base):
    """A machine client's credential: the secret is shown once and stored only as a hash."""

    __tablename__ = "api_keys"
    __table_args__ = (sa.UniqueConstraint("prefix", name="uq_api_keys_prefix"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    #: The public part of the secret (``tacso_<prefix>_...``): tells keys apart in logs and lists.
    prefix: Mapped[str] = mapped_column(sa.String(16))
    secret_hash: Mapped[str] = mapped_column(sa.String(128))
    role: Mapped[str] = mapped_column(sa.String(32))
    organisation_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="RESTRICT"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SigningKey(Base):
    """An Ed25519 key registry signs tokens with; published in the JWK set until retired."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    private_pem: Mapped[str] = mapped_column(sa.Text)
    public_jwk: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Signup(Base):
    """A self-registration or an imported row, and the consent it was given with.

    A self-registration waits here (``pending``) until its confirmation link is used; only then
    does the organisation exist (so it is in no audience before). An unconfirmed one expires.
    The consent fields stay after confirmation as the record of how the organisation's address
    came to be on the list (basis, source, text version, time) until registry keeps consents in
    a table of their own.
    """

    __tablename__ = "signups"
    __table_args__ = (
        sa.Index("ix_signups_email_status", "email", "status"),
        sa.Index("ix_signups_status_expires", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    #: ``pending``, ``confirmed`` (self-registration) or ``imported``.
    status: Mapped[str] = mapped_column(sa.String(16))
    email: Mapped[str] = mapped_column(sa.String(254))
    name: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(32))
    country: Mapped[str] = mapped_column(sa.String(2))
    language: Mapped[str] = mapped_column(sa.String(8))
    #: Topic slugs separated by commas.
    topics: Mapped[str] = mapped_column(sa.Text, default="")
    #: ``consent`` or ``legitimate_interest``.
    consent_basis: Mapped[str] = mapped_column(sa.String(32))
    #: ``self_registration`` or ``import``.
    consent_source: Mapped[str] = mapped_column(sa.String(32))
    consent_text_version: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    #: When the consent took effect: the confirmation (self-registration) or the import.
    consented_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    organisation_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    @property
    def topic_list(self) -> list[str]:
        return [t for t in self.topics.split(",") if t]


class Consent(Base):
    """How an organisation came to be mailed: the legal basis, its source, time and text."""

    __tablename__ = "consents"
    __table_args__ = (sa.Index("ix_consents_organisation", "organisation_id", "recorded_at"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE")
    )
    #: ``consent`` or ``legitimate_interest``.
    basis: Mapped[str] = mapped_column(sa.String(32))
    #: ``admin``, ``api``, ``self_registration`` or ``import``.
    source: Mapped[str] = mapped_column(sa.String(32))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The version of the consent text the organisation was shown, if any.
    text_version: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    #: Who recorded it (the caller's subject).
    actor: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PreferenceOptOut(Base):
    """One thing an organisation does not want mail about: a kind of mail or a topic."""

    __tablename__ = "preference_optouts"

    organisation_id: Mapped[str] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    #: ``kind`` or ``topic``.
    category: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(64), primary_key=True)


outbox = outbox_table(Base.metadata)

audit_log = audit_table(Base.metadata)
