"""Consent as a record: on what basis, from where, when and with which text an organisation is
mailed (plain functions over a session).

``Organisation.mailing_consent`` is kept as the derived flag "has an unwithdrawn record" (the API
shows it, audience queries read it); only these functions change it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tacso_registry.models import Consent, Organisation

#: The legal bases mail may be sent on (GDPR art. 6(1)(a) and (f)).
BASES = ("consent", "legitimate_interest")
#: Where a record comes from.
SOURCES = ("admin", "api", "self_registration", "import")
#: Who recorded the backfilled records of organisations that existed before consent records.
MIGRATION_ACTOR = "migration-0004"


def record_consent(
    session: Session,
    organisation: Organisation,
    basis: str,
    source: str,
    actor: str | None,
    text_version: str | None = None,
    now: datetime | None = None,
) -> Consent:
    """Add a consent record to ``organisation`` (which may then be mailed)."""
    if basis not in BASES:
        raise ValueError(f"unknown basis {basis!r}")
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    record = Consent(
        id=str(uuid.uuid4()),
        organisation_id=organisation.id,
        basis=basis,
        source=source,
        recorded_at=now or datetime.now(UTC),
        text_version=text_version,
        actor=actor[:100] if actor else None,
        withdrawn_at=None,
    )
    session.add(record)
    organisation.mailing_consent = True
    return record


def withdraw_consents(
    session: Session, organisation: Organisation, now: datetime | None = None
) -> int:
    """Mark every unwithdrawn record of ``organisation`` withdrawn; how many were."""
    result = session.execute(
        sa.update(Consent)
        .where(Consent.organisation_id == organisation.id, Consent.withdrawn_at.is_(None))
        .values(withdrawn_at=now or datetime.now(UTC))
    )
    organisation.mailing_consent = False
    return int(getattr(result, "rowcount", 0) or 0)


def consents_of(session: Session, organisation_id: str) -> list[Consent]:
    """The consent records of an organisation, oldest first."""
    query = (
        sa.select(Consent)
        .where(Consent.organisation_id == organisation_id)
        .order_by(Consent.recorded_at, Consent.id)
    )
    return list(session.scalars(query))
