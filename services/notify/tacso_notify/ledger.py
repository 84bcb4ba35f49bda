"""The delivery ledger: what is owed, what was sent, what failed, and why."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from tacso_notify.domain import Recipient
from tacso_notify.models import (
    FAILED,
    PENDING,
    SENT,
    Delivery,
    EventSnapshot,
    FanOutContinuation,
    Suppression,
)
from tacso_shared.contracts import EventPublished, RegistrationChanged
from tacso_shared.db import transaction


@dataclass(frozen=True)
class DeliveryFilter:
    """Which deliveries a list returns."""

    event_id: str | None = None
    kind: str | None = None
    status: str | None = None
    organisation_id: str | None = None
    #: Only deliveries of these countries (the caller's scope); empty for all.
    countries: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeliveryPage:
    """One page of the ledger, oldest first, and how many match in all."""

    items: list[Delivery]
    page: int
    page_size: int
    total: int


@dataclass(frozen=True)
class DeliverySummary:
    """One event's deliveries counted by kind and status."""

    event_id: str
    counts: dict[str, dict[str, int]]


@dataclass(frozen=True)
class SuppressionPage:
    """One page of the suppression list, newest first."""

    items: list[Suppression]
    page: int
    page_size: int
    total: int


DELIVERIES = cast(sa.Table, Delivery.__table__)
SUPPRESSIONS = cast(sa.Table, Suppression.__table__)


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _among(
    session: Session, column: sa.ColumnElement[Any], values: Sequence[Any]
) -> sa.ColumnElement[bool]:
    """``column IN values``; on PostgreSQL ``column = ANY(:array)``, one parameter.

    A page's ``IN`` of 500 values is a statement of 500 placeholders that psycopg parses again
    on every execution (it caches only statements of 50 parameters or fewer): that parsing was
    the largest single cost of the fan-out worker (docs/performance.md, "pipelined sender").
    """
    if _is_postgres(session):
        array = postgresql.ARRAY(column.type)
        return column == sa.any_(sa.bindparam(None, list(values), type_=array))
    return column.in_(list(values))


def _insert_ignoring_duplicates(
    session: Session,
    rows: list[dict[str, Any]],
    table: sa.Table = DELIVERIES,
    returning: tuple[sa.ColumnElement[Any], ...] = (),
) -> list[tuple[Any, ...]]:
    """Insert ``rows``, skipping those whose unique key is already there; with ``returning``,
    give those columns of the rows inserted now (the skipped ones are not returned)."""
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - the two databases we support are above
        raise RuntimeError(f"unsupported database {dialect}")
    if not returning:
        session.execute(stmt, rows)
        return []
    return [tuple(row) for row in session.execute(stmt.returning(*returning), rows)]


def _owed(
    event: EventPublished, kind: str, offset: str, token: str | None, now: datetime
) -> dict[str, Any]:
    """The columns every delivery row of one page shares: all but the organisation and address."""
    return {
        "event_id": event.event_id,
        "revision": event.revision,
        "kind": kind,
        "reminder_offset": offset,
        "country": event.country,
        "status": PENDING,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "claim_token": token,
        "claimed_at": now if token is not None else None,
    }


def _ensure_postgres(
    session: Session,
    event: EventPublished,
    kind: str,
    recipients: dict[str, Recipient],
    offset: str,
    token: str | None,
    now: datetime,
) -> dict[str, int]:
    """:meth:`DeliveryLedger._ensure` on PostgreSQL: the page as two arrays, ``unnest``-ed.

    The same statement text for every page (a multi-row ``VALUES`` of 500 rows has 6,500
    placeholders, built by SQLAlchemy and parsed by psycopg on every page); only the
    organisation and the address differ from row to row, the rest are single parameters.
    """
    t = DELIVERIES
    page = (
        sa.func.unnest(
            sa.bindparam(None, list(recipients), type_=postgresql.ARRAY(sa.String)),
            sa.bindparam(
                None, [r.email for r in recipients.values()], type_=postgresql.ARRAY(sa.String)
            ),
        )
        .table_valued("organisation_id", "recipient")
        .render_derived()
    )
    constant = _owed(event, kind, offset, token, now)
    columns = [*constant, "organisation_id", "recipient"]
    values = [sa.literal(v, t.c[name].type) for name, v in constant.items()]
    stmt = (
        postgresql.insert(t)
        .from_select(columns, sa.select(*values, page.c.organisation_id, page.c.recipient))
        .on_conflict_do_nothing()
        .returning(t.c.organisation_id, t.c.id)
    )
    return {str(row[0]): int(row[1]) for row in session.execute(stmt)}


class DeliveryLedger:
    """Reads and writes the ledger in short transactions of its own."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def ensure(self, event: EventPublished, kind: str, recipients: Sequence[Recipient]) -> None:
        """Record that each recipient is owed this mail (rows already there are left alone)."""
        if recipients:
            with transaction(self.sessions) as session:
                self._ensure(session, event, kind, recipients)

    def claim(
        self,
        event: EventPublished,
        kind: str,
        organisation_ids: Sequence[str],
        token: str,
        lease_seconds: float,
    ) -> tuple[list[tuple[int, str]], int]:
        """Take the pending deliveries of these organisations that no live worker holds.

        Returns ``(claimed, held)``: the (delivery id, organisation id) pairs now held under
        ``token``, and how many pending ones another worker's unexpired lease still holds.
        """
        if not organisation_ids:
            return [], 0
        with transaction(self.sessions) as session:
            return self._claim(session, event, kind, organisation_ids, token, lease_seconds)

    def ensure_and_claim(
        self,
        event: EventPublished,
        kind: str,
        recipients: Sequence[Recipient],
        token: str,
        lease_seconds: float,
        offset: str = "",
    ) -> tuple[list[tuple[int, str]], int, dict[str, str]]:
        """:meth:`ensure`, :meth:`claim` and :meth:`suppressed` for one page, in one transaction.

        Returns ``(claimed, held, suppressed)``. ``offset``: a reminder's (part of its key).
        """
        if not recipients:
            return [], 0, {}
        with transaction(self.sessions) as session:
            # The rows made now are made claimed under ``token`` (nobody else can hold a row
            # that did not exist); only rows that were already there (a page sent again) are
            # claimed by their key. Claiming by key reads every row of the event when
            # PostgreSQL's statistics lag behind a big fan-out: the cost per page grew with the
            # event (docs/performance.md, "cost per mail").
            inserted = self._ensure(session, event, kind, recipients, offset, token=token)
            claimed = sorted((inserted[o], o) for o in inserted)
            held = 0
            known = list(
                dict.fromkeys(
                    r.organisation_id for r in recipients if r.organisation_id not in inserted
                )
            )
            if known:
                more, held = self._claim(session, event, kind, known, token, lease_seconds, offset)
                claimed = sorted(claimed + more)
            suppressed = self._suppressed(session, [r.email for r in recipients])
        return claimed, held, suppressed

    @staticmethod
    def _ensure(
        session: Session,
        event: EventPublished,
        kind: str,
        recipients: Sequence[Recipient],
        offset: str = "",
        token: str | None = None,
    ) -> dict[str, int]:
        """Insert the rows owed (claimed under ``token`` if given); return
        ``{organisation id: delivery id}`` of those made now."""
        now = datetime.now(UTC)
        unique = {r.organisation_id: r for r in recipients}
        if _is_postgres(session):
            return _ensure_postgres(session, event, kind, unique, offset, token, now)
        constant = _owed(event, kind, offset, token, now)
        rows = [
            {**constant, "organisation_id": r.organisation_id, "recipient": r.email}
            for r in unique.values()
        ]
        t = DELIVERIES
        made = _insert_ignoring_duplicates(session, rows, returning=(t.c.organisation_id, t.c.id))
        return {str(row[0]): int(row[1]) for row in made}

    @staticmethod
    def _claim(
        session: Session,
        event: EventPublished,
        kind: str,
        organisation_ids: Sequence[str],
        token: str,
        lease_seconds: float,
        offset: str = "",
    ) -> tuple[list[tuple[int, str]], int]:
        now = datetime.now(UTC)
        expired = now - timedelta(seconds=lease_seconds)
        t = DELIVERIES
        scope = sa.and_(
            t.c.event_id == event.event_id,
            t.c.revision == event.revision,
            t.c.kind == kind,
            t.c.reminder_offset == offset,
            _among(session, t.c.organisation_id, organisation_ids),
            t.c.status == PENDING,
        )
        session.execute(
            t.update()
            .where(scope, sa.or_(t.c.claimed_at.is_(None), t.c.claimed_at < expired))
            .values(claim_token=token, claimed_at=now)
        )
        rows = session.execute(
            sa.select(t.c.id, t.c.organisation_id, t.c.claim_token).where(scope)
        ).all()
        claimed = sorted((r.id, r.organisation_id) for r in rows if r.claim_token == token)
        return claimed, len(rows) - len(claimed)

    # ---- registration mail: one delivery per (event, registration, status change) -----------
    @staticmethod
    def _registration_key(change: RegistrationChanged, kind: str) -> Any:
        t = DELIVERIES
        return sa.and_(
            t.c.event_id == change.event.event_id,
            t.c.revision == change.event.revision,
            t.c.organisation_id == change.organisation_id,
            t.c.kind == kind,
            t.c.registration_id == change.registration_id,
            t.c.sequence == change.sequence,
        )

    def registration_mail_status(
        self,
        change: RegistrationChanged,
        kind: str,
        also: Callable[[Session], None] | None = None,
    ) -> str | None:
        """The status of the mail about this status change (None: not owed yet).

        ``also`` runs in the same transaction: what else notify records about the change.
        """
        with transaction(self.sessions) as session:
            if also is not None:
                also(session)
            status: str | None = session.scalar(
                sa.select(DELIVERIES.c.status).where(self._registration_key(change, kind))
            )
        return status

    def claim_registration_mail(
        self,
        change: RegistrationChanged,
        kind: str,
        recipient: Recipient,
        token: str,
        lease_seconds: float,
    ) -> tuple[int | None, bool]:
        """Record that this mail is owed to ``recipient`` and take it under ``token``.

        Returns ``(delivery id, False)`` when taken, ``(None, True)`` when another worker's
        unexpired lease holds it, ``(None, False)`` when it was already sent or failed.
        """
        now = datetime.now(UTC)
        t = DELIVERIES
        key = self._registration_key(change, kind)
        row = {
            "event_id": change.event.event_id,
            "revision": change.event.revision,
            "organisation_id": change.organisation_id,
            "kind": kind,
            "registration_id": change.registration_id,
            "sequence": change.sequence,
            "recipient": recipient.email,
            "country": change.event.country,
            "status": PENDING,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        expired = now - timedelta(seconds=lease_seconds)
        with transaction(self.sessions) as session:
            _insert_ignoring_duplicates(session, [row])
            session.execute(
                t.update()
                .where(
                    key,
                    t.c.status == PENDING,
                    sa.or_(t.c.claimed_at.is_(None), t.c.claimed_at < expired),
                )
                .values(claim_token=token, claimed_at=now)
            )
            found = session.execute(sa.select(t.c.id, t.c.status, t.c.claim_token).where(key)).one()
        if found.status != PENDING:
            return None, False
        if found.claim_token != token:
            return None, True
        return int(found.id), False

    def renew(self, token: str) -> None:
        """Extend the lease of the deliveries still held under ``token``."""
        t = DELIVERIES
        with transaction(self.sessions) as session:
            session.execute(
                t.update()
                .where(t.c.claim_token == token, t.c.status == PENDING)
                .values(claimed_at=datetime.now(UTC))
            )

    def release(self, token: str) -> None:
        """Give back the deliveries held under ``token`` that were not sent."""
        t = DELIVERIES
        with transaction(self.sessions) as session:
            session.execute(
                t.update()
                .where(t.c.claim_token == token, t.c.status == PENDING)
                .values(claim_token=None, claimed_at=None)
            )

    def record(
        self,
        sent: Iterable[int],
        failed: Iterable[tuple[int, str]] = (),
        retrying: Iterable[tuple[int, str]] = (),
    ) -> None:
        """Mark deliveries sent, failed for good (with the reason), or still owed after an error."""
        sent, failed, retrying = list(sent), list(failed), list(retrying)
        if not (sent or failed or retrying):
            return
        now = datetime.now(UTC)
        table = DELIVERIES
        with transaction(self.sessions) as session:
            if sent:
                session.execute(
                    table.update()
                    .where(_among(session, table.c.id, sent))
                    .values(
                        status=SENT,
                        sent_at=now,
                        updated_at=now,
                        attempts=table.c.attempts + 1,
                        last_error=None,
                    )
                )
            for status, items in ((FAILED, failed), (PENDING, retrying)):
                for delivery_id, reason in items:
                    session.execute(
                        table.update()
                        .where(table.c.id == delivery_id)
                        .values(
                            status=status,
                            updated_at=now,
                            attempts=table.c.attempts + 1,
                            last_error=reason[:2000],
                            claim_token=None,
                            claimed_at=None,
                        )
                    )

    # ---- suppression list -----------------------------------------------------------------
    def suppressed(self, emails: Iterable[str]) -> dict[str, str]:
        """Which of these addresses are suppressed, with the reason."""
        emails = list(emails)
        if not emails:
            return {}
        with self.sessions() as session:
            return self._suppressed(session, emails)

    @staticmethod
    def _suppressed(session: Session, emails: list[str]) -> dict[str, str]:
        rows = session.execute(
            sa.select(Suppression.email, Suppression.reason).where(
                _among(session, SUPPRESSIONS.c.email, emails)
            )
        ).all()
        return {r.email: r.reason for r in rows}

    def suppress(self, addresses: Iterable[tuple[str, str]]) -> None:
        """Stop bulk mail to these (address, reason) pairs."""
        rows = [
            {"email": email, "reason": reason[:2000], "created_at": datetime.now(UTC)}
            for email, reason in addresses
        ]
        if not rows:
            return
        with transaction(self.sessions) as session:
            _insert_ignoring_duplicates(session, rows, cast(sa.Table, Suppression.__table__))

    def suppression(self, email: str) -> Suppression | None:
        """The suppression of one address, if it is suppressed."""
        with self.sessions() as session:
            return session.get(Suppression, email)

    def suppressions(
        self, email_contains: str | None = None, page: int = 1, page_size: int = 100
    ) -> SuppressionPage:
        """The suppression list, newest first, optionally only addresses containing a text."""
        query = sa.select(Suppression)
        if email_contains:
            query = query.where(Suppression.email.contains(email_contains.lower(), autoescape=True))
        with self.sessions() as session:
            total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
            items = list(
                session.scalars(
                    query.order_by(Suppression.created_at.desc(), Suppression.email)
                    .offset((page - 1) * page_size)
                    .limit(page_size)
                )
            )
        return SuppressionPage(items, page, page_size, total)

    def unsuppress(self, emails: Iterable[str]) -> int:
        """Allow mail to these addresses again; return how many were suppressed."""
        emails = list(emails)
        if not emails:
            return 0
        with transaction(self.sessions) as session:
            result = session.execute(sa.delete(Suppression).where(Suppression.email.in_(emails)))
        return int(getattr(result, "rowcount", 0) or 0)

    # ---- event snapshots (for operator re-sends) -------------------------------------------
    def save_snapshot(self, event_id: str, revision: int, envelope_json: str) -> None:
        """Keep the envelope of an event revision (the first one received is kept)."""
        row = {
            "event_id": event_id,
            "revision": revision,
            "envelope": envelope_json,
            "received_at": datetime.now(UTC),
        }
        with transaction(self.sessions) as session:
            _insert_ignoring_duplicates(session, [row], cast(sa.Table, EventSnapshot.__table__))

    def snapshot(self, event_id: str, revision: int) -> EventSnapshot | None:
        """The envelope of one event revision, as first received."""
        with self.sessions() as session:
            return session.get(EventSnapshot, (event_id, revision))

    # ---- fan-out chains --------------------------------------------------------------------
    def continuation_due(self, chain: str, after: str) -> bool:
        """Whether the page after ``after`` of fan-out ``chain`` still has to be handed on.

        False once it was handed on (published and recorded): a retried page then does not start
        a second chain. A crash between publishing and :meth:`continuation_done` publishes it once
        more; page tasks are idempotent, so that costs a page of ledger look-ups, never mail.
        """
        row = {"chain": chain, "after": after, "published": False, "created_at": datetime.now(UTC)}
        table = cast(sa.Table, FanOutContinuation.__table__)
        with transaction(self.sessions) as session:
            _insert_ignoring_duplicates(session, [row], table)
            published = session.scalar(
                sa.select(table.c.published).where(table.c.chain == chain, table.c.after == after)
            )
        return not published

    def continuation_done(self, chain: str, after: str) -> None:
        """Record that the page after ``after`` of ``chain`` was handed on."""
        table = cast(sa.Table, FanOutContinuation.__table__)
        with transaction(self.sessions) as session:
            session.execute(
                table.update()
                .where(table.c.chain == chain, table.c.after == after)
                .values(published=True)
            )

    def latest_snapshot(self, event_id: str) -> EventSnapshot | None:
        """The newest revision of an event notify has received, if any."""
        with self.sessions() as session:
            return session.scalars(
                sa.select(EventSnapshot)
                .where(EventSnapshot.event_id == event_id)
                .order_by(EventSnapshot.revision.desc())
                .limit(1)
            ).first()

    def reopen_failed(self, event_id: str, revision: int, kind: str | None = None) -> list[str]:
        """Set an event revision's failed deliveries back to pending; return their addresses."""
        t = DELIVERIES
        scope = [t.c.event_id == event_id, t.c.revision == revision, t.c.status == FAILED]
        if kind:
            scope.append(t.c.kind == kind)
        with transaction(self.sessions) as session:
            emails = list(session.scalars(sa.select(t.c.recipient).where(*scope)))
            session.execute(
                t.update()
                .where(*scope)
                .values(
                    status=PENDING, claim_token=None, claimed_at=None, updated_at=datetime.now(UTC)
                )
            )
        return emails

    def list(
        self, flt: DeliveryFilter, page: int = 1, page_size: int = 100
    ) -> tuple[list[Delivery], int]:
        """One page of deliveries matching ``flt``, oldest first, and the total count."""
        query = sa.select(Delivery)
        if flt.event_id:
            query = query.where(Delivery.event_id == flt.event_id)
        if flt.kind:
            query = query.where(Delivery.kind == flt.kind)
        if flt.status:
            query = query.where(Delivery.status == flt.status)
        if flt.organisation_id:
            query = query.where(Delivery.organisation_id == flt.organisation_id)
        if flt.countries:
            query = query.where(Delivery.country.in_(flt.countries))
        with self.sessions() as session:
            total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
            items = list(
                session.scalars(
                    query.order_by(Delivery.id).offset((page - 1) * page_size).limit(page_size)
                )
            )
        return items, total

    def page(self, flt: DeliveryFilter, page: int = 1, page_size: int = 100) -> DeliveryPage:
        """:meth:`list` as a page."""
        items, total = self.list(flt, page, page_size)
        return DeliveryPage(items, page, page_size, total)

    def summary(self, event_id: str) -> DeliverySummary:
        """:meth:`counts` with the event it is about."""
        return DeliverySummary(event_id, self.counts(event_id))

    def counts(self, event_id: str) -> dict[str, dict[str, int]]:
        """Deliveries of one event by kind and status, e.g. ``{"invitation": {"sent": 10}}``."""
        with self.sessions() as session:
            rows = session.execute(
                sa.select(Delivery.kind, Delivery.status, sa.func.count())
                .where(Delivery.event_id == event_id)
                .group_by(Delivery.kind, Delivery.status)
            ).all()
        out: dict[str, dict[str, int]] = {}
        for kind, status, count in rows:
            out.setdefault(kind, {})[status] = count
        return out
