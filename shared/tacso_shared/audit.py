"""The audit log: who changed what, when, from where; one append-only table per service.

A write records its entry in the same transaction as the change itself, so there is no change
without its entry and no entry without its change. Nothing updates or deletes entries except the
retention purge (``AUDIT_RETENTION_DAYS``). Plain functions (no Flask): the view passes the
request's :class:`Actor`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tacso_shared.db import UTCDateTime
from tacso_shared.identity import Caller

AUDIT_TABLE = "audit_log"
#: Longest ``before``/``after`` document kept (a JSON text); longer is cut and marked so.
MAX_DOCUMENT_LENGTH = 60_000


def audit_columns() -> list[sa.Column[Any]]:
    """The audit table's columns; services and their migrations use the same definition."""
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("role", sa.String(32), nullable=True),
        sa.Column("organisation_id", sa.String(64), nullable=True),
        sa.Column("via", sa.String(16), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=True),
        sa.Column("before", sa.Text, nullable=True),
        sa.Column("after", sa.Text, nullable=True),
        sa.Column("address", sa.String(64), nullable=True),
        sa.Column("correlation_id", sa.String(200), nullable=True),
    ]


AUDIT_INDEXES = (
    ("ix_audit_log_at", ("at",)),
    ("ix_audit_log_actor_at", ("actor", "at")),
    ("ix_audit_log_resource", ("resource_type", "resource_id")),
)


def audit_table(metadata: sa.MetaData) -> sa.Table:
    """Attach the ``audit_log`` table to a service's metadata."""
    table = sa.Table(AUDIT_TABLE, metadata, *audit_columns())
    for name, columns in AUDIT_INDEXES:
        sa.Index(name, *(table.c[c] for c in columns))
    return table


@dataclass(frozen=True)
class Actor:
    """Who made a change and from where: the caller, its address, the correlation id."""

    caller: Caller | None
    address: str | None = None
    correlation_id: str | None = None

    @property
    def subject(self) -> str:
        """The caller's subject, or ``anonymous`` (a public write such as setting a password)."""
        return self.caller.subject if self.caller else "anonymous"


def _document(value: Any) -> str | None:
    if value is None:
        return None
    text = json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)
    if len(text) > MAX_DOCUMENT_LENGTH:
        return json.dumps({"truncated": text[:MAX_DOCUMENT_LENGTH]})
    return text


def record(
    session: Session,
    table: sa.Table,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: str | None,
    before: Any = None,
    after: Any = None,
) -> None:
    """Add one entry to the audit log, in ``session``'s transaction."""
    caller = actor.caller
    session.execute(
        table.insert().values(
            at=datetime.now(UTC),
            actor=actor.subject[:100],
            role=caller.role if caller else None,
            organisation_id=caller.organisation_id if caller else None,
            via=caller.via if caller else None,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            before=_document(before),
            after=_document(after),
            address=(actor.address or None) and actor.address[:64],
            correlation_id=(actor.correlation_id or None) and actor.correlation_id[:200],
        )
    )


@dataclass(frozen=True)
class AuditFilter:
    """Which entries a list returns."""

    actor: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_entries(
    session: Session, table: sa.Table, flt: AuditFilter, page: int = 1, page_size: int = 100
) -> tuple[list[dict[str, Any]], int]:
    """One page of entries matching ``flt``, newest first, and how many match in all."""
    query = sa.select(table)
    for column, value in (
        ("actor", flt.actor),
        ("action", flt.action),
        ("resource_type", flt.resource_type),
        ("resource_id", flt.resource_id),
    ):
        if value is not None:
            query = query.where(table.c[column] == value)
    if flt.since is not None:
        query = query.where(table.c.at >= flt.since)
    if flt.until is not None:
        query = query.where(table.c.at < flt.until)
    total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
    rows = session.execute(
        query.order_by(table.c.at.desc(), table.c.id.desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).mappings()
    items = []
    for row in rows:
        entry = dict(row)
        for key in ("before", "after"):
            entry[key] = None if entry[key] is None else json.loads(entry[key])
        items.append(entry)
    return items, total


def purge(session: Session, table: sa.Table, retention_days: int) -> int:
    """Delete the entries older than ``retention_days``; return how many (0 keeps all)."""
    if retention_days <= 0:
        return 0
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    result = session.execute(table.delete().where(table.c.at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
