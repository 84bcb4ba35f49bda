"""Transactional outbox: a message is saved with the state change that caused it, then relayed.

``enqueue`` adds the message row inside the caller's transaction, so either both the change and
its message are stored or neither is. ``OutboxRelay`` publishes pending rows with publisher
confirms, a batch at a time, and marks rows published only after the broker confirmed them. A row
that was not confirmed (broker down, relay killed) is simply still pending and goes out on the
next pass.

Several relays may run on one outbox (replicas): on PostgreSQL each pass locks the rows it
publishes (``FOR UPDATE SKIP LOCKED``), so two relays take different rows and neither waits for
the other; on SQLite a pass holds the database's write lock, so relays take turns. Either way a
row is published by one relay; it is published again only if the broker confirmed it and the
relay could not record that (database gone at that instant): at least once, which the
consumers' idempotence absorbs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tacso_shared import correlation
from tacso_shared.config import CommonSettings
from tacso_shared.contracts import CONTRACTS
from tacso_shared.db import UTCDateTime
from tacso_shared.envelope import Envelope
from tacso_shared.messaging import (
    ConfirmingPublisher,
    OutgoingMessage,
    connect,
    ensure_connected,
)
from tacso_shared.topology import declare_topology

log = logging.getLogger(__name__)


def outbox_columns() -> list[sa.Column[Any]]:
    """The outbox table's columns; services and their migrations use the same definition."""
    return [
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("message_type", sa.String(200), nullable=False),
        sa.Column("routing_key", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("correlation_id", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
    ]


OUTBOX_PENDING_INDEX = "ix_outbox_pending"


def outbox_table(metadata: sa.MetaData) -> sa.Table:
    """Attach the ``outbox`` table to a service's metadata."""
    table = sa.Table("outbox", metadata, *outbox_columns())
    sa.Index(OUTBOX_PENDING_INDEX, table.c.published_at, table.c.created_at)
    return table


def enqueue(session: Session, table: sa.Table, envelope: Envelope) -> None:
    """Store ``envelope`` (see ``contracts.envelope_of``) for publishing, in ``session``'s
    transaction; ValueError if its data breaks its contract."""
    contract = CONTRACTS[envelope.type]
    session.execute(
        table.insert().values(
            id=envelope.id,
            message_type=envelope.type,
            routing_key=contract.routing_key(contract.load(envelope.data)),
            body=envelope.to_json(),
            correlation_id=envelope.correlationid,
            created_at=envelope.time,
            attempts=0,
        )
    )


class OutboxRelay:
    """Moves pending outbox rows to the broker, confirmed in batches."""

    def __init__(
        self,
        engine: Engine,
        table: sa.Table,
        amqp_url: str,
        batch_size: int = 500,
        poll_interval: float = 0.2,
    ) -> None:
        self._engine = engine
        self._table = table
        self._amqp_url = amqp_url
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        # No heartbeats: the relay's connection is used in short bursts and would otherwise have
        # to be serviced while it sleeps between polls; a dead one fails the next batch, which
        # is simply retried.
        self._connection = connect(amqp_url, heartbeat=0)
        self._publisher: ConfirmingPublisher | None = None
        self.stopping = threading.Event()
        self.last_error: str | None = None

    @classmethod
    def from_settings(
        cls, engine: Engine, table: sa.Table, settings: CommonSettings
    ) -> OutboxRelay:
        """The relay of a service's outbox, configured from its settings."""
        return cls(
            engine,
            table,
            settings.amqp_url,
            batch_size=settings.relay_batch_size,
            poll_interval=settings.relay_poll_interval,
        )

    def _ensure_publisher(self) -> ConfirmingPublisher:
        if self._publisher is None:
            self._connection = connect(self._amqp_url, heartbeat=0)
            ensure_connected(self._connection)
            declare_topology(self._connection)
            self._publisher = ConfirmingPublisher(self._connection)
        return self._publisher

    def _reset(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
        self._publisher = None
        # A dead connection may not close cleanly; it is dropped either way.
        with contextlib.suppress(Exception):
            self._connection.release()

    def pending_count(self) -> int:
        """How many messages wait to be published."""
        t = self._table
        with self._engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(t).where(t.c.published_at.is_(None))
                ).scalar_one()
            )

    def stats(self) -> tuple[int, float | None]:
        """How many messages wait to be published, and the age in seconds of the oldest."""
        t = self._table
        with self._engine.connect() as conn:
            count, oldest = conn.execute(
                sa.select(sa.func.count(), sa.func.min(t.c.created_at)).where(
                    t.c.published_at.is_(None)
                )
            ).one()
        if oldest is None:
            return int(count), None
        if isinstance(oldest, str) or oldest.tzinfo is None:  # SQLite keeps no zone: UTC
            oldest = datetime.fromisoformat(str(oldest)).replace(tzinfo=UTC)
        return int(count), max(0.0, (datetime.now(UTC) - oldest).total_seconds())

    def run_once(self) -> int:
        """Publish one batch of pending rows; return how many were confirmed."""
        t = self._table
        with self._engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                # SQLite has no row locks (FOR UPDATE is ignored): take the database's write
                # lock first, so a second relay on the same file waits for this pass instead of
                # reading, and publishing, the same rows.
                conn.execute(t.update().where(sa.false()).values(attempts=t.c.attempts))
            rows = conn.execute(
                sa.select(t.c.id, t.c.message_type, t.c.routing_key, t.c.body, t.c.correlation_id)
                .where(t.c.published_at.is_(None))
                .order_by(t.c.created_at, t.c.id)
                .limit(self._batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            self.last_error = None
            if not rows:
                return 0
            messages = [
                OutgoingMessage(
                    message_id=r.id,
                    message_type=r.message_type,
                    routing_key=r.routing_key,
                    body=r.body.encode("utf-8"),
                    correlation_id=r.correlation_id,
                )
                for r in rows
            ]
            try:
                confirmed = self._ensure_publisher().publish_batch(messages)
                error = None
            except Exception as exc:  # noqa: BLE001 - any failure: the rows stay pending
                self._reset()
                confirmed, error = [], str(exc)
                self.last_error = error
            now = datetime.now(UTC)
            by_id = {r.id: r for r in rows}
            for message_id in confirmed:
                # One line per message, under its correlation id: the relay's step in its trace.
                with correlation.bound(by_id[message_id].correlation_id):
                    log.info(
                        "published %s %s (%s)",
                        by_id[message_id].message_type,
                        message_id,
                        by_id[message_id].routing_key,
                    )
            if confirmed:
                conn.execute(
                    t.update()
                    .where(t.c.id.in_(confirmed))
                    .values(published_at=now, attempts=t.c.attempts + 1, last_error=None)
                )
            failed = [r.id for r in rows if r.id not in set(confirmed)]
            if failed:
                conn.execute(
                    t.update()
                    .where(t.c.id.in_(failed))
                    .values(attempts=t.c.attempts + 1, last_error=error or "not confirmed")
                )
                self.last_error = error or "not confirmed"
                log.warning("outbox: %d message(s) not confirmed: %s", len(failed), error)
            return len(confirmed)

    def run_forever(self) -> None:
        """Relay until :attr:`stopping` is set; back off while the broker is unreachable."""
        backoff = self._poll_interval
        log.info("outbox relay started (batch %d)", self._batch_size)
        while not self.stopping.is_set():
            try:
                published = self.run_once()
            except Exception:
                log.exception("outbox relay pass failed")
                self.last_error = "pass failed"
                published = 0
            if published > 0 and self.last_error is None:
                backoff = self._poll_interval
                continue
            # Nothing to do, or the broker refused: wait, longer while failures repeat.
            backoff = min(backoff * 2, 5.0) if self.last_error else self._poll_interval
            self.stopping.wait(backoff)
        self._reset()
        log.info("outbox relay stopped")
