"""Registrations: seats, the waitlist and freed-seat offers, as plain functions over a session.

Every function that changes registrations first takes the event's lock (:func:`lock_event`): on
PostgreSQL ``SELECT ... FOR UPDATE`` on the event row, on SQLite the database's write lock
(taken at once by a no-op write, like ``BEGIN IMMEDIATE``). Registrations of one event are
therefore changed one transaction at a time, and the seats counted under the lock are the seats
there are: the capacity is never exceeded, however many requests arrive at once.

Each status change bumps the registration's ``sequence`` and enqueues, in the same transaction,
its ``RegistrationChanged`` message (routing key ``registration.<status>.<country>``), and keeps
the registration's scheduled jobs (offer expiry, reminders) in step.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tacso_events.models import (
    ACTIVE_STATUSES,
    CANCELLED,
    CONFIRMED,
    DECLINED,
    EXPIRED,
    OFFERED,
    PUBLISHED,
    WAITLISTED,
    Event,
    Registration,
    ScheduledJob,
    outbox,
)
from tacso_events.operations import SOURCE, event_published
from tacso_shared import outbox as outbox_ops
from tacso_shared.config import ConfigError
from tacso_shared.contracts import RegistrationChanged, ReminderDue, envelope_of

DEFAULT_CLAIM_HOURS = 48.0
DEFAULT_MAX_SEATS = 3
DEFAULT_REMINDER_OFFSETS = "7d,1d"

OFFER_EXPIRY = "offer_expiry"
REMINDER = "reminder"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_OFFSET = re.compile(r"^([1-9][0-9]*)([smhd])$")


@dataclass(frozen=True)
class ReminderOffset:
    """How long before the start a reminder is due: ``label`` as configured (``7d``)."""

    label: str
    delta: timedelta


def parse_reminder_offsets(raw: str) -> tuple[ReminderOffset, ...]:
    """``7d,1d`` as offsets (units s, m, h, d); :class:`ConfigError` naming a bad one."""
    offsets: list[ReminderOffset] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        match = _OFFSET.match(part)
        if match is None:
            raise ConfigError(
                f"REMINDER_OFFSETS: {part!r} is not an offset like 7d, 12h, 30m or 45s"
            )
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
        if seconds > 3650 * 86400:
            raise ConfigError(f"REMINDER_OFFSETS: {part!r} is longer than ten years")
        offsets.append(ReminderOffset(part, timedelta(seconds=seconds)))
    labels = [o.label for o in offsets]
    if len(set(labels)) != len(labels):
        raise ConfigError("REMINDER_OFFSETS: an offset is named twice")
    return tuple(offsets)


@dataclass(frozen=True)
class Policy:
    """The rules registrations follow, from the settings."""

    public_base_url: str
    #: How long a freed seat is held for the organisation it is offered to.
    claim_window: timedelta = timedelta(hours=DEFAULT_CLAIM_HOURS)
    max_seats: int = DEFAULT_MAX_SEATS
    reminder_offsets: tuple[ReminderOffset, ...] = field(
        default_factory=lambda: parse_reminder_offsets(DEFAULT_REMINDER_OFFSETS)
    )


class RegistrationRefused(Exception):
    """A registration cannot be made or changed; ``reason`` says why, for people (409)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EventClosed(RegistrationRefused):
    """The event takes no registrations: a draft, cancelled, or already started."""


class AlreadyRegistered(RegistrationRefused):
    """The organisation has an active registration for the event already."""

    def __init__(self, registration: Registration) -> None:
        super().__init__(
            f"This organisation is registered already (registration {registration.id}, "
            f"{registration.status})."
        )
        # Plain values: the transaction that raises this is rolled back, expiring the row.
        self.registration_id = registration.id
        self.status = registration.status


class NoOpenOffer(RegistrationRefused):
    """There is no seat offer open to claim."""


class NotEnoughSeats(RegistrationRefused):
    """A confirmed registration cannot grow: the seats are taken."""


class CapacityBelowTaken(RegistrationRefused):
    """The capacity would be lower than the seats confirmed and offered."""

    def __init__(self, requested: int, confirmed: int, offered: int) -> None:
        super().__init__(
            f"The capacity cannot be {requested}: {confirmed} seats are confirmed and "
            f"{offered} offered."
        )
        self.requested = requested
        self.confirmed = confirmed
        self.offered = offered


class RegistrationNotFound(LookupError):
    """No such registration for this event."""


class EventNotFound(LookupError):
    """No such event."""


@dataclass(frozen=True)
class Occupancy:
    """How full an event is."""

    confirmed_seats: int
    offered_seats: int
    waitlist_length: int
    capacity: int | None

    @property
    def seats_taken(self) -> int:
        """Seats confirmed, plus seats held for an open offer."""
        return self.confirmed_seats + self.offered_seats

    @property
    def seats_left(self) -> int | None:
        """Seats still free (``None``: no limit)."""
        if self.capacity is None:
            return None
        return max(self.capacity - self.seats_taken, 0)


@dataclass(frozen=True)
class Outcome:
    """A registration after a change, with its waitlist place (1-based) if waitlisted."""

    registration: Registration
    position: int | None
    changed: bool = True


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def lock_event(session: Session, event_id: str) -> Event | None:
    """The event, locked for this transaction (see the module docstring); ``None`` if unknown."""
    if session.get_bind().dialect.name == "sqlite":
        # The first write of a SQLite transaction takes the database's write lock; a no-op one
        # takes it now, so every reader below sees the latest data and nobody writes meanwhile.
        session.execute(
            sa.update(Event).where(Event.id == event_id).values(revision=Event.revision)
        )
    return session.get(Event, event_id, with_for_update=True, populate_existing=True)


def occupancy(session: Session, event: Event) -> Occupancy:
    """How many seats ``event`` has confirmed and offered, and how long its waitlist is."""
    rows = session.execute(
        sa.select(
            Registration.status,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(Registration.seats), 0),
        )
        .where(Registration.event_id == event.id, Registration.status.in_(ACTIVE_STATUSES))
        .group_by(Registration.status)
    ).all()
    counts = {status: (int(n), int(seats)) for status, n, seats in rows}
    return Occupancy(
        confirmed_seats=counts.get(CONFIRMED, (0, 0))[1],
        offered_seats=counts.get(OFFERED, (0, 0))[1],
        waitlist_length=counts.get(WAITLISTED, (0, 0))[0],
        capacity=event.capacity,
    )


def occupancies(session: Session, events: Iterable[Event]) -> dict[str, Occupancy]:
    """:func:`occupancy` of several events in one query."""
    by_id = {event.id: event for event in events}
    if not by_id:
        return {}
    rows = session.execute(
        sa.select(
            Registration.event_id,
            Registration.status,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(Registration.seats), 0),
        )
        .where(Registration.event_id.in_(by_id), Registration.status.in_(ACTIVE_STATUSES))
        .group_by(Registration.event_id, Registration.status)
    ).all()
    counts: dict[tuple[str, str], tuple[int, int]] = {
        (event_id, status): (int(n), int(seats)) for event_id, status, n, seats in rows
    }
    return {
        event_id: Occupancy(
            confirmed_seats=counts.get((event_id, CONFIRMED), (0, 0))[1],
            offered_seats=counts.get((event_id, OFFERED), (0, 0))[1],
            waitlist_length=counts.get((event_id, WAITLISTED), (0, 0))[0],
            capacity=event.capacity,
        )
        for event_id, event in by_id.items()
    }


def position_of(session: Session, registration: Registration) -> int | None:
    """The registration's 1-based place on the waitlist, if it is waitlisted."""
    if registration.status != WAITLISTED or registration.waitlist_order is None:
        return None
    ahead = session.scalar(
        sa.select(sa.func.count()).where(
            Registration.event_id == registration.event_id,
            Registration.status == WAITLISTED,
            Registration.waitlist_order < registration.waitlist_order,
        )
    )
    return int(ahead or 0) + 1


def closed_reason(event: Event, now: datetime) -> str | None:
    """Why ``event`` takes no registrations or answers now, or ``None`` if it does."""
    if event.status == "cancelled":
        return "The event has been cancelled."
    if event.status != PUBLISHED:
        return "The event is not published."
    if event.starts_at <= now:
        return "The event has already started."
    return None


def _open_event(session: Session, event_id: str, now: datetime) -> Event:
    event = lock_event(session, event_id)
    if event is None:
        raise EventNotFound(event_id)
    reason = closed_reason(event, now)
    if reason is not None:
        raise EventClosed(reason)
    return event


def _check_seats(seats: int, policy: Policy) -> None:
    if not 1 <= seats <= policy.max_seats:
        raise ValueError(f"seats must be between 1 and {policy.max_seats}")


def find_registration(session: Session, event_id: str, organisation_id: str) -> Registration | None:
    """The organisation's registration for the event (whatever its status), if any."""
    return session.scalar(
        sa.select(Registration).where(
            Registration.event_id == event_id, Registration.organisation_id == organisation_id
        )
    )


def _registration(session: Session, event_id: str, registration_id: str) -> Registration:
    registration = session.get(Registration, registration_id, populate_existing=True)
    if registration is None or registration.event_id != event_id:
        raise RegistrationNotFound(registration_id)
    return registration


# ---- status changes --------------------------------------------------------------------------


def _next_waitlist_order(session: Session, event_id: str) -> int:
    highest = session.scalar(
        sa.select(sa.func.max(Registration.waitlist_order)).where(Registration.event_id == event_id)
    )
    return int(highest or 0) + 1


def _change(
    session: Session,
    event: Event,
    registration: Registration,
    status: str,
    policy: Policy,
    now: datetime,
    correlation_id: str | None,
) -> int | None:
    """Move ``registration`` to ``status``: sequence, message and jobs; its waitlist place."""
    registration.status = status
    registration.sequence += 1
    registration.updated_at = now
    if status == WAITLISTED:
        registration.waitlist_order = _next_waitlist_order(session, event.id)
    elif status != OFFERED:
        registration.waitlist_order = None
    if status != OFFERED:
        registration.offer_expires_at = None
    if status == DECLINED:
        registration.seats = 0
    session.flush()
    position = position_of(session, registration)
    _drop_jobs(session, registration.id)
    if status == CONFIRMED:
        _schedule_reminders(session, event, registration, policy, now)
    elif status == OFFERED and registration.offer_expires_at is not None:
        _schedule(
            session,
            OFFER_EXPIRY,
            f"{OFFER_EXPIRY}:{registration.id}",
            registration.offer_expires_at,
            {"event_id": event.id, "registration_id": registration.id},
        )
    message = RegistrationChanged(
        registration_id=registration.id,
        organisation_id=registration.organisation_id,
        status=status,
        seats=registration.seats,
        sequence=registration.sequence,
        changed_at=now,
        event=event_published(event, policy.public_base_url),
        position=position,
        offer_expires_at=registration.offer_expires_at if status == OFFERED else None,
        note=registration.note,
    )
    outbox_ops.enqueue(
        session, outbox, envelope_of(message, SOURCE, registration.id, correlation_id)
    )
    return position


def _place(
    session: Session,
    event: Event,
    registration: Registration,
    policy: Policy,
    now: datetime,
    correlation_id: str | None,
) -> int | None:
    """Confirm ``registration`` if its seats fit, else put it at the end of the waitlist."""
    left = occupancy(session, event).seats_left
    fits = left is None or registration.seats <= left
    return _change(
        session,
        event,
        registration,
        CONFIRMED if fits else WAITLISTED,
        policy,
        now,
        correlation_id,
    )


def promote(
    session: Session,
    event: Event,
    policy: Policy,
    now: datetime | None = None,
    correlation_id: str | None = None,
) -> list[Registration]:
    """Offer free seats down the waitlist: each waitlisted registration that fits, in order.

    The claim window ends ``policy.claim_window`` from now, and always before the event starts.
    The caller holds the event's lock.
    """
    now = _now(now)
    if event.status != PUBLISHED or event.starts_at <= now:
        return []
    left = occupancy(session, event).seats_left
    if left == 0:
        return []
    offered: list[Registration] = []
    waiting = session.scalars(
        sa.select(Registration)
        .where(Registration.event_id == event.id, Registration.status == WAITLISTED)
        .order_by(Registration.waitlist_order, Registration.created_at)
    ).all()
    for registration in waiting:
        if left is not None and registration.seats > left:
            continue
        registration.offer_expires_at = min(now + policy.claim_window, event.starts_at)
        _change(session, event, registration, OFFERED, policy, now, correlation_id)
        offered.append(registration)
        if left is not None:
            left -= registration.seats
            if left <= 0:
                break
    return offered


def register(
    session: Session,
    event_id: str,
    organisation_id: str,
    seats: int,
    policy: Policy,
    note: str | None = None,
    now: datetime | None = None,
    correlation_id: str | None = None,
) -> Outcome:
    """Register an organisation: confirmed while its seats fit, else waitlisted in arrival order.

    An organisation that cancelled, declined or let an offer expire registers again on the same
    row. :class:`AlreadyRegistered` if it holds an active registration; :class:`EventClosed`
    if the event takes none; ``ValueError`` for seats outside ``1..policy.max_seats``.
    """
    _check_seats(seats, policy)
    now = _now(now)
    event = _open_event(session, event_id, now)
    registration = find_registration(session, event_id, organisation_id)
    if registration is not None and registration.status in ACTIVE_STATUSES:
        raise AlreadyRegistered(registration)
    if registration is None:
        registration = Registration(
            id=str(uuid.uuid4()),
            event_id=event_id,
            organisation_id=organisation_id,
            status="new",
            seats=seats,
            note=note,
            sequence=0,
            created_at=now,
            updated_at=now,
        )
        session.add(registration)
    else:
        registration.seats = seats
        registration.note = note if note is not None else registration.note
    position = _place(session, event, registration, policy, now, correlation_id)
    return Outcome(registration, position)


def _release(
    session: Session,
    event_id: str,
    registration: Registration,
    status: str,
    policy: Policy,
    now: datetime,
    correlation_id: str | None,
) -> Outcome:
    event = _open_event(session, event_id, now)
    held = registration.status in (CONFIRMED, OFFERED)
    _change(session, event, registration, status, policy, now, correlation_id)
    if held:
        promote(session, event, policy, now, correlation_id)
    return Outcome(registration, None)


def cancel(
    session: Session,
    event_id: str,
    registration_id: str,
    policy: Policy,
    now: datetime | None = None,
    correlation_id: str | None = None,
) -> Outcome:
    """Cancel a registration: its seats go to the waitlist (see :func:`promote`).

    Cancelling one that is not active changes nothing. :class:`RegistrationNotFound`,
    :class:`EventClosed` once the event has started.
    """
    now = _now(now)
    event = _open_event(session, event_id, now)
    registration = _registration(session, event.id, registration_id)
    if registration.status not in ACTIVE_STATUSES:
        return Outcome(registration, None, changed=False)
    return _release(session, event_id, registration, CANCELLED, policy, now, correlation_id)


def decline(
    session: Session,
    event_id: str,
    organisation_id: str,
    policy: Policy,
    now: datetime | None = None,
    correlation_id: str | None = None,
) -> Outcome:
    """Record an invitee's "I can't attend": status ``declined``, no seats (idempotent).

    A confirmed registration's seats, or an open offer, pass down the waitlist.
    """
    now = _now(now)
    event = _open_event(session, event_id, now)
    registration = find_registration(session, event_id, organisation_id)
    if registration is not None and registration.status == DECLINED:
        return Outcome(registration, None, changed=False)
    if registration is None:
        registration = Registration(
            id=str(uuid.uuid4()),
            event_id=event_id,
            organisation_id=organisation_id,
            status="new",
            seats=0,
            note=None,
            sequence=0,
            created_at=now,
            updated_at=now,
        )
        session.add(registration)
        _change(session, event, registration, DECLINED, policy, now, correlation_id)
        return Outcome(registration, None)
    return _release(session, event_id, registration, DECLINED, policy, now, correlation_id)


def claim(
    session: Session,
    event_id: str,
    registration_id: str,
    policy: Policy,
    now: datetime | None = None,
    correlation_id: str | None = None,
) -> Outcome:
    """Take an offered seat: ``offered`` becomes ``confirmed`` while the claim window is open.

    Claiming a confirmed registration again changes nothing; :class:`NoOpenOffer` otherwise.
    """
    now = _now(now)
    event = _open_event(session, event_id, now)
    registration = _registration(session, event.id, registration_id)
    if registration.status == CONFIRMED:
        return Outcome(registration, None, changed=False)
    if registration.status != OFFERED:
        raise NoOpenOffer(
            f"There is no seat offer to claim (the registration is {registration.status})."
        )
    if registration.offer_expires_at is None or registration.offer_expires_at <= now:
        raise NoOpenOffer("The seat offer has expired.")
    _change(session, event, registration, CONFIRMED, policy, now, correlation_id)
    return Outcome(registration, None)


def attend(
    session: Session,
    event_id: str,
    organisation_id: str,
    seats: int,
    policy: Policy,
    now: datetime | None = None,
    correlation_id: str | None = None,
) -> Outcome:
    """An invitee's "I will attend" with ``seats``: idempotent, and answers may change.

    No registration (or a cancelled, declined, expired one): as :func:`register`. Waitlisted:
    its seats change, its place stays. Offered: the offer is claimed. Confirmed: its seats
    change if the new number fits (:class:`NotEnoughSeats` otherwise).
    """
    _check_seats(seats, policy)
    now = _now(now)
    event = _open_event(session, event_id, now)
    registration = find_registration(session, event_id, organisation_id)
    if registration is None or registration.status not in ACTIVE_STATUSES:
        return register(
            session,
            event_id,
            organisation_id,
            seats,
            policy,
            now=now,
            correlation_id=correlation_id,
        )
    if registration.status == OFFERED:
        return claim(session, event_id, registration.id, policy, now, correlation_id)
    if registration.seats == seats:
        return Outcome(registration, position_of(session, registration), changed=False)
    if registration.status == CONFIRMED:
        left = occupancy(session, event).seats_left
        if left is not None and seats - registration.seats > left:
            raise NotEnoughSeats(
                f"Only {left} more seats are free: your registration keeps "
                f"{registration.seats} seats."
            )
        registration.seats = seats
        registration.updated_at = now
        session.flush()
        promote(session, event, policy, now, correlation_id)
        return Outcome(registration, None)
    registration.seats = seats
    registration.updated_at = now
    session.flush()
    promote(session, event, policy, now, correlation_id)
    return Outcome(registration, position_of(session, registration))


def expire_offer(
    session: Session,
    event_id: str,
    registration_id: str,
    policy: Policy,
    now: datetime | None = None,
) -> bool:
    """End an offer whose claim window is over and pass its seats on; False if nothing to do."""
    now = _now(now)
    event = lock_event(session, event_id)
    if event is None:
        return False
    registration = session.get(Registration, registration_id, populate_existing=True)
    if (
        registration is None
        or registration.status != OFFERED
        or registration.offer_expires_at is None
        or registration.offer_expires_at > now
    ):
        return False
    _change(session, event, registration, EXPIRED, policy, now, None)
    promote(session, event, policy, now)
    return True


# ---- capacity and event changes (called by the event update and cancel paths) ---------------


def check_capacity_change(session: Session, event: Event, new_capacity: int | None) -> None:
    """Refuse a capacity below the seats confirmed and offered (:class:`CapacityBelowTaken`).

    For the event update path (``PATCH``): call it with the event locked (:func:`lock_event`)
    before setting ``event.capacity``, answer 409 with the exception's ``reason`` (it names the
    numbers), and after the change call :func:`promote` so a raised capacity is offered to the
    waitlist (:func:`apply_capacity_change` does all three).
    """
    if new_capacity is None:
        return
    taken = occupancy(session, event)
    if new_capacity < taken.seats_taken:
        raise CapacityBelowTaken(new_capacity, taken.confirmed_seats, taken.offered_seats)


def apply_capacity_change(
    session: Session,
    event: Event,
    new_capacity: int | None,
    policy: Policy,
    now: datetime | None = None,
    correlation_id: str | None = None,
) -> list[Registration]:
    """Set the capacity of a locked event: refuse below the taken seats, offer new seats."""
    check_capacity_change(session, event, new_capacity)
    event.capacity = new_capacity
    session.flush()
    return promote(session, event, policy, now, correlation_id)


def reschedule_event_jobs(
    session: Session, event: Event, policy: Policy, now: datetime | None = None
) -> None:
    """After an event moved: recompute its reminders, and end open offers before the new start.

    For the event update path (``PATCH`` of ``starts_at``): call it in the same transaction,
    after the new times are set, with the event locked (:func:`lock_event`). Reminders already
    past for the new time are dropped, not sent late.
    """
    now = _now(now)
    for registration in session.scalars(
        sa.select(Registration).where(
            Registration.event_id == event.id, Registration.status.in_((CONFIRMED, OFFERED))
        )
    ):
        if registration.status == CONFIRMED:
            _drop_jobs(session, registration.id)
            _schedule_reminders(session, event, registration, policy, now)
        elif (
            registration.offer_expires_at is not None
            and registration.offer_expires_at > event.starts_at
        ):
            registration.offer_expires_at = event.starts_at
            _schedule(
                session,
                OFFER_EXPIRY,
                f"{OFFER_EXPIRY}:{registration.id}",
                event.starts_at,
                {"event_id": event.id, "registration_id": registration.id},
            )


def close_event_registrations(
    session: Session,
    event: Event,
    policy: Policy,
    now: datetime | None = None,
    correlation_id: str | None = None,
) -> None:
    """After an event was cancelled: void its open offers (``expired``) and drop all its jobs.

    For the cancel path: call it in the same transaction that sets the cancelled status, with the
    event locked. Confirmed and waitlisted registrations keep their status (the event's own
    cancellation message tells them); no reminder is sent any more.
    """
    now = _now(now)
    for registration in session.scalars(
        sa.select(Registration).where(
            Registration.event_id == event.id, Registration.status == OFFERED
        )
    ).all():
        _change(session, event, registration, EXPIRED, policy, now, correlation_id)
    ids = sa.select(Registration.id).where(Registration.event_id == event.id)
    for registration_id in session.scalars(ids).all():
        _drop_jobs(session, registration_id)


# ---- scheduled jobs ---------------------------------------------------------------------------


def _schedule(
    session: Session, kind: str, key: str, due_at: datetime, payload: dict[str, Any]
) -> None:
    """Add the job ``key`` (replacing one of the same key)."""
    session.execute(sa.delete(ScheduledJob).where(ScheduledJob.key == key))
    session.add(
        ScheduledJob(
            id=str(uuid.uuid4()),
            kind=kind,
            key=key,
            due_at=due_at,
            payload=payload,
            attempts=0,
            locked_until=None,
        )
    )
    session.flush()


def _drop_jobs(session: Session, registration_id: str) -> None:
    session.execute(
        sa.delete(ScheduledJob).where(
            sa.or_(
                ScheduledJob.key == f"{OFFER_EXPIRY}:{registration_id}",
                ScheduledJob.key.like(f"{REMINDER}:{registration_id}:%"),
            )
        )
    )


def _schedule_reminders(
    session: Session, event: Event, registration: Registration, policy: Policy, now: datetime
) -> None:
    for offset in policy.reminder_offsets:
        due_at = event.starts_at - offset.delta
        if due_at <= now:
            continue
        _schedule(
            session,
            REMINDER,
            f"{REMINDER}:{registration.id}:{offset.label}",
            due_at,
            {
                "event_id": event.id,
                "registration_id": registration.id,
                "offset": offset.label,
                "due_at": due_at.isoformat(),
            },
        )


def run_offer_expiry(
    session: Session, payload: dict[str, Any], policy: Policy, now: datetime
) -> None:
    """The ``offer_expiry`` job: expire the offer if still open and pass the seats on."""
    expire_offer(session, str(payload["event_id"]), str(payload["registration_id"]), policy, now)


def run_reminder(session: Session, payload: dict[str, Any], policy: Policy, now: datetime) -> None:
    """The ``reminder`` job: publish ``ReminderDue`` if the event and registration still hold."""
    event = lock_event(session, str(payload["event_id"]))
    if event is None or event.status != PUBLISHED or event.starts_at <= now:
        return
    registration = session.get(Registration, str(payload["registration_id"]))
    if registration is None or registration.status != CONFIRMED:
        return
    message = ReminderDue(
        registration_id=registration.id,
        organisation_id=registration.organisation_id,
        offset=str(payload["offset"]),
        due_at=datetime.fromisoformat(str(payload["due_at"])),
        event=event_published(event, policy.public_base_url),
        seats=registration.seats,
    )
    outbox_ops.enqueue(session, outbox, envelope_of(message, SOURCE, registration.id))


JobHandler = Callable[[Session, dict[str, Any], Policy, datetime], None]

#: What each kind of scheduled job does.
JOB_HANDLERS: dict[str, JobHandler] = {
    OFFER_EXPIRY: run_offer_expiry,
    REMINDER: run_reminder,
}
