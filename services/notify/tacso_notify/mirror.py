"""What notify remembers about events and registrations, for update, cancellation and reminder mail.

- :func:`record_registration`: the newest status of each registration (``registration.*``
  messages), safe against out-of-order delivery: a message replaces the stored state only when
  its ``sequence`` is higher (or it is a newer registration of the same organisation).
- :func:`see_revision`: the newest revision of each event seen on any queue; a notice about an
  older revision is outdated (``superseded``) when its turn comes.
- :class:`LifecycleStore`: those two tables, the notices' envelopes and the audience of an update
  or cancellation (who was invited and has not declined, plus the active registrants).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from tacso_notify.domain import Recipient
from tacso_notify.models import (
    PENDING,
    SENT,
    SKIPPED,
    SUPERSEDED,
    Delivery,
    EventNotice,
    EventRevision,
    RegistrationState,
)
from tacso_shared.contracts import EventPublished, RegistrationChanged
from tacso_shared.db import transaction

#: Registrations that are told about updates and cancellations even if they were not invited.
ACTIVE_STATUSES = ("confirmed", "waitlisted", "offered")
#: Invitees in these states said they will not come: updates and cancellations spare them.
WITHDRAWN_STATUSES = ("declined", "cancelled")

_STATES = cast(sa.Table, RegistrationState.__table__)
_REVISIONS = cast(sa.Table, EventRevision.__table__)
_NOTICES = cast(sa.Table, EventNotice.__table__)
_DELIVERIES = cast(sa.Table, Delivery.__table__)


def _insert(session: Session, table: sa.Table) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database {dialect}")  # pragma: no cover


def record_registration(session: Session, message: RegistrationChanged) -> None:
    """Store the registration's new state unless a newer one is already stored.

    Newer means a higher ``sequence`` of the same registration, or another registration of the
    same organisation for the same event changed later (it registered again after cancelling).
    Runs in the caller's transaction (the registration mail handler's).
    """
    row = {
        "event_id": message.event.event_id,
        "organisation_id": message.organisation_id,
        "registration_id": message.registration_id,
        "status": message.status,
        "seats": message.seats,
        "sequence": message.sequence,
        "updated_at": message.changed_at.astimezone(UTC),
    }
    stmt = _insert(session, _STATES).values(row)
    new = stmt.excluded
    t = _STATES
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.event_id, t.c.organisation_id],
        set_={k: getattr(new, k) for k in row if k not in ("event_id", "organisation_id")},
        where=sa.or_(
            sa.and_(t.c.registration_id == new.registration_id, t.c.sequence < new.sequence),
            sa.and_(t.c.registration_id != new.registration_id, t.c.updated_at < new.updated_at),
        ),
    )
    session.execute(stmt)
    see_revision(session, message.event)


def see_revision(session: Session, event: EventPublished, cancelled: bool = False) -> None:
    """Remember ``event.revision`` if it is the newest revision of the event seen so far."""
    row = {
        "event_id": event.event_id,
        "revision": event.revision,
        "starts_at": event.starts_at.astimezone(UTC),
        "cancelled": cancelled,
        "updated_at": datetime.now(UTC),
    }
    stmt = _insert(session, _REVISIONS).values(row)
    new = stmt.excluded
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[_REVISIONS.c.event_id],
            set_={k: getattr(new, k) for k in row if k != "event_id"},
            where=_REVISIONS.c.revision < new.revision,
        )
    )


@dataclass(frozen=True)
class Participant:
    """An organisation on an update's audience, and whether it registered (else: invited)."""

    organisation_id: str
    registered: bool


class LifecycleStore:
    """The lifecycle tables, each call in a short transaction of its own."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def see(self, event: EventPublished, cancelled: bool = False) -> None:
        """:func:`see_revision` in a transaction of its own."""
        with transaction(self.sessions) as session:
            see_revision(session, event, cancelled)

    def newest(self, event_id: str) -> EventRevision | None:
        """The newest revision of the event seen, with its start and whether it is cancelled."""
        with self.sessions() as session:
            return session.get(EventRevision, event_id)

    def registration(self, event_id: str, organisation_id: str) -> RegistrationState | None:
        """The mirrored state of an organisation's registration for an event, if any."""
        with self.sessions() as session:
            return session.get(RegistrationState, (event_id, organisation_id))

    def save_notice(self, event_id: str, revision: int, kind: str, envelope_json: str) -> None:
        """Keep the envelope of an update or cancellation (the first one received is kept)."""
        row = {
            "event_id": event_id,
            "revision": revision,
            "kind": kind,
            "envelope": envelope_json,
            "received_at": datetime.now(UTC),
        }
        with transaction(self.sessions) as session:
            session.execute(_insert(session, _NOTICES).values(row).on_conflict_do_nothing())

    def notice(self, event_id: str, revision: int, kind: str) -> EventNotice | None:
        """The envelope of one update or cancellation, as first received."""
        with self.sessions() as session:
            return session.get(EventNotice, (event_id, revision, kind))

    def participants(
        self, event_id: str, after: str | None, size: int
    ) -> tuple[list[Participant], bool]:
        """One page (by organisation id, after ``after``) of who is told about an update.

        Every organisation sent an invitation to the event (or owed one by a fan-out still
        under way) that has not declined (nor cancelled its registration), and every
        organisation whose registration is confirmed, waitlisted or offered. Returns the page
        and whether more follow.
        """
        d, r = _DELIVERIES, _STATES
        withdrawn = sa.select(r.c.organisation_id).where(
            r.c.event_id == event_id, r.c.status.in_(WITHDRAWN_STATUSES)
        )
        invited = sa.select(d.c.organisation_id.label("organisation_id")).where(
            d.c.event_id == event_id,
            d.c.kind == "invitation",
            # Sent, or still being sent (an invitation fan-out in progress will reach them).
            d.c.status.in_((SENT, PENDING)),
            d.c.organisation_id.not_in(withdrawn),
        )
        registered = sa.select(r.c.organisation_id.label("organisation_id")).where(
            r.c.event_id == event_id, r.c.status.in_(ACTIVE_STATUSES)
        )
        audience = sa.union(invited, registered).subquery()
        query = sa.select(audience.c.organisation_id)
        if after is not None:
            query = query.where(audience.c.organisation_id > after)
        query = query.order_by(audience.c.organisation_id).limit(size + 1)
        with self.sessions() as session:
            ids = list(session.scalars(query))
            more = len(ids) > size
            ids = ids[:size]
            active = set(
                session.scalars(registered.where(r.c.organisation_id.in_(ids))) if ids else ()
            )
        return [Participant(i, i in active) for i in ids], more

    def record_superseded(
        self, event: EventPublished, kind: str, recipients: Sequence[Recipient], reason: str
    ) -> int:
        """Record an outdated notice as ``superseded`` for ``recipients``: new rows, and rows
        still pending (a fan-out that had begun). Rows already sent or failed stay as they are.
        Returns how many rows are now ``superseded`` by this call."""
        if not recipients:
            return 0
        now = datetime.now(UTC)
        d = _DELIVERIES
        rows = [
            {
                "event_id": event.event_id,
                "revision": event.revision,
                "organisation_id": r.organisation_id,
                "kind": kind,
                "reminder_offset": "",
                "recipient": r.email,
                "country": event.country,
                "status": PENDING,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for r in {r.organisation_id: r for r in recipients}.values()
        ]
        with transaction(self.sessions) as session:
            session.execute(_insert(session, d).values(rows).on_conflict_do_nothing())
            result = session.execute(
                d.update()
                .where(
                    d.c.event_id == event.event_id,
                    d.c.revision == event.revision,
                    d.c.kind == kind,
                    d.c.organisation_id.in_([row["organisation_id"] for row in rows]),
                    d.c.status == PENDING,
                )
                .values(
                    status=SUPERSEDED,
                    last_error=reason[:2000],
                    updated_at=now,
                    claim_token=None,
                    claimed_at=None,
                )
            )
        return int(getattr(result, "rowcount", 0) or 0)

    def record_skipped(
        self,
        event: EventPublished,
        kind: str,
        organisation_id: str,
        recipient: str,
        reason: str,
        offset: str = "",
        status: str = SKIPPED,
    ) -> None:
        """Record that a delivery is deliberately not sent (``skipped``/``superseded``), and why.

        A delivery already in the ledger (sent, say) is left alone.
        """
        now = datetime.now(UTC)
        row = {
            "event_id": event.event_id,
            "revision": event.revision,
            "organisation_id": organisation_id,
            "kind": kind,
            "reminder_offset": offset,
            "recipient": recipient,
            "country": event.country,
            "status": status,
            "attempts": 0,
            "last_error": reason[:2000],
            "created_at": now,
            "updated_at": now,
        }
        with transaction(self.sessions) as session:
            session.execute(_insert(session, _DELIVERIES).values(row).on_conflict_do_nothing())
