"""An organisation erased in registry: its addresses leave notify's ledger, the counts stay.

registry publishes ``organisation.erased.<country>`` with the addresses the organisation had;
notify's ``registry`` worker (queue family ``notify.registry``) replaces them by
:data:`REDACTED` in every delivery of that organisation (the rows stay, so an event's counts and
history are unchanged), drops them from the suppression list, and redacts them in kept event
snapshots and audit entries. Redacting twice changes nothing, so a redelivered message is harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tacso_notify.models import Delivery, EventSnapshot, Suppression, audit_log
from tacso_shared.consumer import Handler
from tacso_shared.contracts import OrganisationErased
from tacso_shared.db import transaction
from tacso_shared.envelope import Envelope, PoisonMessage

log = logging.getLogger(__name__)

#: What a redacted address reads in the ledger.
REDACTED = "[erased]"


@dataclass(frozen=True)
class Redacted:
    """What one erasure changed."""

    deliveries: int
    suppressions: int
    snapshots: int
    audit_entries: int


def redact_organisation(session: Session, erased: OrganisationErased) -> Redacted:
    """Remove ``erased``'s addresses from the ledger, the suppressions, snapshots and audit."""
    emails = sorted({e.strip().lower() for e in erased.emails if e.strip()})
    matches = Delivery.organisation_id == erased.organisation_id
    if emails:
        matches = sa.or_(matches, sa.func.lower(Delivery.recipient).in_(emails))
    deliveries = session.execute(
        sa.update(Delivery)
        .where(matches, Delivery.recipient != REDACTED)
        .values(recipient=REDACTED, last_error=None)
        .execution_options(synchronize_session=False)
    )
    suppressions = snapshots = entries = 0
    if emails:
        suppressions = _count(
            session.execute(sa.delete(Suppression).where(Suppression.email.in_(emails)))
        )
        kept = session.execute(
            sa.select(EventSnapshot.event_id, EventSnapshot.revision, EventSnapshot.envelope).where(
                sa.or_(*(EventSnapshot.envelope.contains(e, autoescape=True) for e in emails))
            )
        ).all()
        for event_id, revision, envelope in kept:
            redacted = _without(envelope, emails)
            if redacted != envelope:
                session.execute(
                    sa.update(EventSnapshot)
                    .where(EventSnapshot.event_id == event_id, EventSnapshot.revision == revision)
                    .values(envelope=redacted)
                )
                snapshots += 1
        mentions = sa.or_(
            *(
                column.contains(email, autoescape=True)
                for email in emails
                for column in (audit_log.c.before, audit_log.c.after, audit_log.c.resource_id)
            )
        )
        for entry_id, before, after, resource_id in session.execute(
            sa.select(
                audit_log.c.id, audit_log.c.before, audit_log.c.after, audit_log.c.resource_id
            ).where(mentions)
        ).all():
            session.execute(
                audit_log.update()
                .where(audit_log.c.id == entry_id)
                .values(
                    before=_without(before, emails),
                    after=_without(after, emails),
                    resource_id=_without(resource_id, emails),
                )
            )
            entries += 1
    return Redacted(_count(deliveries), suppressions, snapshots, entries)


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _without(text: str | None, emails: list[str]) -> str | None:
    """``text`` with each of ``emails`` replaced by :data:`REDACTED` (case-insensitively)."""
    if text is None:
        return None
    lowered = text.lower()
    for email in emails:
        start = lowered.find(email)
        while start != -1:
            text = text[:start] + REDACTED + text[start + len(email) :]
            lowered = text.lower()
            start = lowered.find(email, start + len(REDACTED))
    return text


def make_erasure_handler(sessions: sessionmaker[Session]) -> Handler:
    """The ``registry`` worker's handler: redact what an ``organisation.erased`` names."""

    def handle(envelope: Envelope, message: object) -> None:
        if not isinstance(message, OrganisationErased):
            # organisation.updated needs nothing here: the audience is read from registry at
            # send time, page by page (docs/architecture.md, "opt-outs at send time").
            if envelope.type.startswith("org.tacso.registry."):
                return
            raise PoisonMessage(f"{envelope.type} is not a message for the registry worker")
        with transaction(sessions) as session:
            done = redact_organisation(session, message)
        log.info(
            "organisation %s erased: %d deliveries, %d suppressions, %d snapshots, "
            "%d audit entries redacted",
            message.organisation_id,
            done.deliveries,
            done.suppressions,
            done.snapshots,
            done.audit_entries,
        )

    return handle
