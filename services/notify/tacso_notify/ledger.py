"""The delivery ledger: what is owed, what was sent, what failed, and why."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from tacso_notify.models import FAILED, PENDING, SENT, Delivery
from tacso_notify.rendering import Recipient
from tacso_shared.db import transaction


@dataclass(frozen=True)
class DeliveryFilter:
    """Which deliveries a list returns."""

    event_id: str | None = None
    kind: str | None = None
    status: str | None = None
    organisation_id: str | None = None


DELIVERIES = cast(sa.Table, Delivery.__table__)


def _insert_ignoring_duplicates(session: Session, rows: list[dict[str, Any]]) -> None:
    dialect = session.get_bind().dialect.name
    table = DELIVERIES
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).on_conflict_do_nothing(constraint="uq_deliveries_once")
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - the two databases we support are above
        raise RuntimeError(f"unsupported database {dialect}")
    session.execute(stmt, rows)


class DeliveryLedger:
    """Reads and writes the ledger in short transactions of its own."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def claim(
        self, event: Mapping[str, Any], kind: str, recipients: Sequence[Recipient]
    ) -> list[tuple[int, Recipient]]:
        """Record that each recipient is owed this mail; return those not yet sent or failed."""
        if not recipients:
            return []
        now = datetime.now(UTC)
        by_org = {r.organisation_id: r for r in recipients}
        rows = [
            {
                "event_id": event["event_id"],
                "revision": event["revision"],
                "organisation_id": r.organisation_id,
                "kind": kind,
                "recipient": r.email,
                "country": event["country"],
                "status": PENDING,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for r in by_org.values()
        ]
        with transaction(self.sessions) as session:
            _insert_ignoring_duplicates(session, rows)
            owed = session.execute(
                sa.select(Delivery.id, Delivery.organisation_id).where(
                    Delivery.event_id == event["event_id"],
                    Delivery.revision == event["revision"],
                    Delivery.kind == kind,
                    Delivery.status == PENDING,
                    Delivery.organisation_id.in_(list(by_org)),
                )
            ).all()
        return sorted(((row.id, by_org[row.organisation_id]) for row in owed), key=lambda x: x[0])

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
                    .where(table.c.id.in_(sent))
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
                        )
                    )

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
        with self.sessions() as session:
            total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
            items = list(
                session.scalars(
                    query.order_by(Delivery.id).offset((page - 1) * page_size).limit(page_size)
                )
            )
        return items, total

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
