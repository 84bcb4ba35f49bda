"""Registrations as plain functions on real databases: seats, waitlist, offers, jobs, messages."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tacso_events import operations
from tacso_events import registrations as regs
from tacso_events.bootstrap import Events, load_settings
from tacso_events.models import Registration, ScheduledJob, outbox
from tacso_events.scheduler import Scheduler
from tacso_shared.config import ConfigError
from tacso_shared.contracts import EventText
from tacso_shared.db import transaction

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
STARTS = NOW + timedelta(days=14)
BA_CENTRE_ID = "6b1d3a52-2f0e-4c55-9d3a-0d3c7f1f0a01"

Make = Callable[..., str]


def policy(**changes: Any) -> regs.Policy:
    return regs.Policy(public_base_url="https://events.example.org", **changes)


@pytest.fixture
def make_event(any_events: Events) -> Make:
    def make(capacity: int | None = 5, status: str = "published", starts: datetime = STARTS) -> str:
        command = operations.CreateEvent(
            title="Seats for all",
            type="workshop",
            country="BA",
            topics=("youth",),
            starts_at=starts,
            ends_at=starts + timedelta(hours=3),
            organiser_id=BA_CENTRE_ID,
            online_url="https://meet.example.org/x",
            capacity=capacity,
            status=status,
            translations=(EventText("bs", "Mjesta za sve", None),),
        )
        with transaction(any_events.sessions) as session:
            event = operations.create_event(
                session, command, any_events.registry, "https://events.example.org"
            )
            return event.id

    return make


def run(events: Events, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    with transaction(events.sessions) as session:
        return fn(session, *args, **kwargs)


def statuses(events: Events, event_id: str) -> dict[str, tuple[str, int]]:
    with events.sessions() as session:
        rows = session.scalars(sa.select(Registration).where(Registration.event_id == event_id))
        return {r.organisation_id: (r.status, r.seats) for r in rows}


def messages(events: Events) -> list[tuple[str, dict[str, Any]]]:
    with events.engine.connect() as conn:
        rows = conn.execute(
            sa.select(outbox.c.routing_key, outbox.c.body).order_by(outbox.c.created_at)
        ).all()
    return [(key, json.loads(body)) for key, body in rows if key.startswith("registration.")]


def jobs(events: Events) -> dict[str, datetime]:
    with events.sessions() as session:
        return {j.key: j.due_at for j in session.scalars(sa.select(ScheduledJob))}


class TestSeatsAndWaitlist:
    def test_confirmed_while_seats_fit_then_waitlisted_in_arrival_order(
        self, any_events: Events, make_event: Make
    ) -> None:
        event_id = make_event(capacity=5)
        p = policy()
        a = run(any_events, regs.register, event_id, "org-a", 3, p, now=NOW)
        b = run(any_events, regs.register, event_id, "org-b", 3, p, now=NOW)
        c = run(any_events, regs.register, event_id, "org-c", 2, p, now=NOW)
        d = run(any_events, regs.register, event_id, "org-d", 1, p, now=NOW)
        assert (a.registration.status, a.position) == ("confirmed", None)
        assert (b.registration.status, b.position) == ("waitlisted", 1)
        assert c.registration.status == "confirmed", "2 seats still fit after the first 3"
        assert (d.registration.status, d.position) == ("waitlisted", 2)
        keys = [key for key, _ in messages(any_events)]
        assert keys == [
            "registration.confirmed.BA",
            "registration.waitlisted.BA",
            "registration.confirmed.BA",
            "registration.waitlisted.BA",
        ]

    def test_a_second_registration_of_one_organisation_is_refused_with_its_id(
        self, any_events: Events, make_event: Make
    ) -> None:
        event_id = make_event()
        first = run(any_events, regs.register, event_id, "org-a", 1, policy(), now=NOW)
        with pytest.raises(regs.AlreadyRegistered) as refused:
            run(any_events, regs.register, event_id, "org-a", 1, policy(), now=NOW)
        assert refused.value.registration_id == first.registration.id

    @pytest.mark.parametrize("seats", [0, -1, 4])
    def test_seats_outside_the_cap_are_refused(
        self, any_events: Events, make_event: Make, seats: int
    ) -> None:
        with pytest.raises(ValueError, match="between 1 and 3"):
            run(any_events, regs.register, make_event(), "org-a", seats, policy(), now=NOW)

    @pytest.mark.parametrize(
        ("status", "starts", "reason"),
        [
            ("draft", STARTS, "not published"),
            ("published", NOW - timedelta(hours=1), "already started"),
        ],
    )
    def test_a_draft_or_started_event_takes_no_registration(
        self, any_events: Events, make_event: Make, status: str, starts: datetime, reason: str
    ) -> None:
        event_id = make_event(status=status, starts=starts)
        with pytest.raises(regs.EventClosed, match=reason):
            run(any_events, regs.register, event_id, "org-a", 1, policy(), now=NOW)

    def test_an_event_without_capacity_confirms_everyone(
        self, any_events: Events, make_event: Make
    ) -> None:
        event_id = make_event(capacity=None)
        for n in range(5):
            run(any_events, regs.register, event_id, f"org-{n}", 3, policy(), now=NOW)
        assert {s for s, _ in statuses(any_events, event_id).values()} == {"confirmed"}


class TestOffers:
    def test_a_cancelled_seat_is_offered_to_the_first_waitlisted_that_fits(
        self, any_events: Events, make_event: Make
    ) -> None:
        event_id = make_event(capacity=3)
        p = policy(claim_window=timedelta(hours=48))
        a = run(any_events, regs.register, event_id, "org-a", 2, p, now=NOW)
        run(any_events, regs.register, event_id, "org-b", 1, p, now=NOW)
        run(any_events, regs.register, event_id, "org-big", 3, p, now=NOW)
        run(any_events, regs.register, event_id, "org-c", 2, p, now=NOW)
        run(any_events, regs.cancel, event_id, a.registration.id, p, now=NOW)
        state = statuses(any_events, event_id)
        assert state["org-a"] == ("cancelled", 2)
        assert state["org-big"] == ("waitlisted", 3), "3 seats do not fit in the 2 freed"
        assert state["org-c"] == ("offered", 2)
        offered = messages(any_events)[-1][1]["data"]
        assert offered["status"] == "offered"
        assert offered["offer_expires_at"].startswith("2026-12-03T09:00:00")
        assert offered["event"]["url"].endswith(f"/events/{event_id}")
        assert f"offer_expiry:{_id(any_events, event_id, 'org-c')}" in jobs(any_events)

    def test_the_claim_window_ends_before_the_event_starts(
        self, any_events: Events, make_event: Make
    ) -> None:
        starts = NOW + timedelta(hours=5)
        event_id = make_event(capacity=1, starts=starts)
        a = run(any_events, regs.register, event_id, "org-a", 1, policy(), now=NOW)
        run(any_events, regs.register, event_id, "org-b", 1, policy(), now=NOW)
        run(any_events, regs.cancel, event_id, a.registration.id, policy(), now=NOW)
        with any_events.sessions() as session:
            b = session.get(Registration, _id(any_events, event_id, "org-b"))
            assert b is not None and b.offer_expires_at == starts

    def test_claiming_confirms_and_an_expired_offer_passes_on(
        self, any_events: Events, make_event: Make
    ) -> None:
        event_id = make_event(capacity=1)
        p = policy(claim_window=timedelta(hours=1))
        a = run(any_events, regs.register, event_id, "org-a", 1, p, now=NOW)
        b = run(any_events, regs.register, event_id, "org-b", 1, p, now=NOW)
        c = run(any_events, regs.register, event_id, "org-c", 1, p, now=NOW)
        run(any_events, regs.cancel, event_id, a.registration.id, p, now=NOW)
        later = NOW + timedelta(hours=2)
        with pytest.raises(regs.NoOpenOffer, match="expired"):
            run(any_events, regs.claim, event_id, b.registration.id, p, now=later)
        with pytest.raises(regs.NoOpenOffer):
            run(any_events, regs.claim, event_id, c.registration.id, p, now=NOW)
        assert run(any_events, regs.expire_offer, event_id, b.registration.id, p, now=later)
        assert statuses(any_events, event_id)["org-b"] == ("expired", 1)
        assert statuses(any_events, event_id)["org-c"] == ("offered", 1)
        claimed = run(any_events, regs.claim, event_id, c.registration.id, p, now=later)
        assert claimed.registration.status == "confirmed"
        sequences = [m["data"]["sequence"] for k, m in messages(any_events) if "org-c" in str(m)]
        assert sequences == [1, 2, 3], "waitlisted, offered, confirmed"

    def test_decline_frees_seats_and_is_idempotent(
        self, any_events: Events, make_event: Make
    ) -> None:
        event_id = make_event(capacity=1)
        run(any_events, regs.attend, event_id, "org-a", 1, policy(), now=NOW)
        run(any_events, regs.attend, event_id, "org-b", 1, policy(), now=NOW)
        first = run(any_events, regs.decline, event_id, "org-a", policy(), now=NOW)
        again = run(any_events, regs.decline, event_id, "org-a", policy(), now=NOW)
        assert first.changed and not again.changed
        assert statuses(any_events, event_id) == {
            "org-a": ("declined", 0),
            "org-b": ("offered", 1),
        }
        # An answer can change: attending again goes to the back of the queue.
        back = run(any_events, regs.attend, event_id, "org-a", 1, policy(), now=NOW)
        assert (back.registration.status, back.position) == ("waitlisted", 1)


class TestCapacityAndEventChanges:
    def test_capacity_cannot_fall_below_the_confirmed_seats_but_a_rise_offers_seats(
        self, any_events: Events, make_event: Make
    ) -> None:
        event_id = make_event(capacity=2)
        run(any_events, regs.register, event_id, "org-a", 2, policy(), now=NOW)
        run(any_events, regs.register, event_id, "org-b", 2, policy(), now=NOW)
        with (
            pytest.raises(regs.CapacityBelowTaken, match="2 seats are confirmed"),
            transaction(any_events.sessions) as session,
        ):
            event = regs.lock_event(session, event_id)
            assert event is not None
            regs.check_capacity_change(session, event, 1)
        with transaction(any_events.sessions) as session:
            event = regs.lock_event(session, event_id)
            assert event is not None
            offered = regs.apply_capacity_change(session, event, 4, policy(), now=NOW)
        assert [r.organisation_id for r in offered] == ["org-b"]

    def test_reminders_follow_confirmations_and_the_event_s_moves(
        self, any_events: Events, make_event: Make
    ) -> None:
        event_id = make_event(capacity=1)
        p = policy(reminder_offsets=regs.parse_reminder_offsets("7d,1d,20d"))
        a = run(any_events, regs.register, event_id, "org-a", 1, p, now=NOW)
        rid = a.registration.id
        assert jobs(any_events) == {
            f"reminder:{rid}:7d": STARTS - timedelta(days=7),
            f"reminder:{rid}:1d": STARTS - timedelta(days=1),
        }, "20d before the start is past already"
        moved = STARTS + timedelta(days=30)
        with transaction(any_events.sessions) as session:
            event = regs.lock_event(session, event_id)
            assert event is not None
            event.starts_at = moved
            regs.reschedule_event_jobs(session, event, p, now=NOW)
        assert jobs(any_events)[f"reminder:{rid}:20d"] == moved - timedelta(days=20)
        run(any_events, regs.cancel, event_id, rid, p, now=NOW)
        assert jobs(any_events) == {}, "a cancelled registration gets no reminder"

    def test_closing_an_event_voids_offers_and_drops_jobs(
        self, any_events: Events, make_event: Make
    ) -> None:
        event_id = make_event(capacity=1)
        a = run(any_events, regs.register, event_id, "org-a", 1, policy(), now=NOW)
        run(any_events, regs.register, event_id, "org-b", 1, policy(), now=NOW)
        run(any_events, regs.cancel, event_id, a.registration.id, policy(), now=NOW)
        with transaction(any_events.sessions) as session:
            event = regs.lock_event(session, event_id)
            assert event is not None
            event.status = "cancelled"
            regs.close_event_registrations(session, event, policy(), now=NOW)
        assert statuses(any_events, event_id)["org-b"] == ("expired", 1)
        assert jobs(any_events) == {}
        with pytest.raises(regs.EventClosed, match="cancelled"):
            run(any_events, regs.register, event_id, "org-c", 1, policy(), now=NOW)


class TestScheduledJobs:
    def test_an_offer_expiry_job_expires_the_offer_and_passes_it_on(
        self, any_events: Events, make_event: Make
    ) -> None:
        event_id = make_event(capacity=1)
        p = policy(claim_window=timedelta(hours=1))
        a = run(any_events, regs.register, event_id, "org-a", 1, p, now=NOW)
        run(any_events, regs.register, event_id, "org-b", 1, p, now=NOW)
        run(any_events, regs.register, event_id, "org-c", 1, p, now=NOW)
        run(any_events, regs.cancel, event_id, a.registration.id, p, now=NOW)
        scheduler = Scheduler(any_events.sessions, p)
        assert scheduler.run_once(NOW) == 0, "not due yet"
        assert scheduler.run_once(NOW + timedelta(hours=1, seconds=1)) == 1
        state = statuses(any_events, event_id)
        assert state["org-b"] == ("expired", 1)
        assert state["org-c"] == ("offered", 1)

    def test_a_reminder_job_publishes_reminder_due_only_while_confirmed(
        self, any_events: Events, make_event: Make
    ) -> None:
        event_id = make_event(capacity=3)
        p = policy(reminder_offsets=regs.parse_reminder_offsets("1d"))
        run(any_events, regs.register, event_id, "org-a", 2, p, now=NOW)
        scheduler = Scheduler(any_events.sessions, p)
        assert scheduler.run_once(STARTS - timedelta(hours=23)) == 1
        with any_events.engine.connect() as conn:
            keys = [k for (k,) in conn.execute(sa.select(outbox.c.routing_key))]
        assert keys.count("registration.reminder.BA") == 1
        assert jobs(any_events) == {}

    def test_a_failing_job_is_kept_and_retried_later(
        self, any_events: Events, make_event: Make
    ) -> None:
        event_id = make_event(capacity=1)
        p = policy(reminder_offsets=regs.parse_reminder_offsets("1d"))
        run(any_events, regs.register, event_id, "org-a", 1, p, now=NOW)

        def broken(*_: Any) -> None:
            raise RuntimeError("boom")

        scheduler = Scheduler(any_events.sessions, p, handlers={"reminder": broken})
        due = STARTS - timedelta(hours=23)
        assert scheduler.run_once(due) == 0
        with any_events.sessions() as session:
            job = session.scalars(sa.select(ScheduledJob)).one()
            assert job.attempts == 1 and "boom" in (job.last_error or "")


class TestSchedulerClaims:
    def test_a_claimed_job_is_not_claimed_again_until_its_claim_lapses_and_runs_once(
        self, any_events: Events
    ) -> None:
        now = datetime.now(UTC)
        with transaction(any_events.sessions) as session:
            for n in range(20):
                session.add(
                    ScheduledJob(
                        id=f"job-{n}",
                        kind="count",
                        key=f"count:{n}",
                        due_at=now - timedelta(seconds=1),
                        payload={"n": n},
                        attempts=0,
                    )
                )
        ran: list[int] = []

        def count(_session: Any, payload: dict[str, Any], *_: Any) -> None:
            ran.append(int(payload["n"]))

        handlers = {"count": count}
        dead = Scheduler(any_events.sessions, policy(), handlers=handlers, batch_size=50)
        other = Scheduler(any_events.sessions, policy(), handlers=handlers, batch_size=50)
        claims = dead.claim(now)
        assert len(claims) == 20
        assert other.claim(now) == [], "claimed jobs are nobody else's"
        # The first scheduler dies (a restart): its claims lapse, the rows are still there.
        restarted = Scheduler(any_events.sessions, policy(), handlers=handlers, batch_size=50)
        assert restarted.run_once(now + dead.lease + timedelta(seconds=1)) == 20
        assert sorted(ran) == list(range(20))
        assert [dead.run_job(job_id, claim, now) for job_id, claim in claims] == [False] * 20
        assert sorted(ran) == list(range(20)), "the dead scheduler's claims run nothing"


class TestConfiguration:
    def test_offsets_parse_with_units(self) -> None:
        parsed = regs.parse_reminder_offsets("7d, 12h,30m,45s")
        assert [o.delta.total_seconds() for o in parsed] == [604800, 43200, 1800, 45]

    @pytest.mark.parametrize("raw", ["7", "1w", "0d", "-1d", "7d,7d", "d"])
    def test_a_bad_offset_is_a_config_error(self, raw: str) -> None:
        with pytest.raises(ConfigError, match="REMINDER_OFFSETS"):
            regs.parse_reminder_offsets(raw)

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("REMINDER_OFFSETS", "7d,tomorrow"),
            ("WAITLIST_CLAIM_HOURS", "0"),
            ("MAX_SEATS_PER_ORGANISATION", "0"),
        ],
    )
    def test_the_service_refuses_to_start_with_a_bad_setting(self, name: str, value: str) -> None:
        with pytest.raises(ConfigError, match=name):
            load_settings({"EVENTS_DATABASE_URL": "sqlite:///:memory:", name: value})

    def test_the_settings_make_the_policy(self, tmp_path: Any) -> None:
        settings = load_settings(
            {
                "EVENTS_DATABASE_URL": f"sqlite:///{tmp_path / 'e.sqlite3'}",
                "WAITLIST_CLAIM_HOURS": "12",
                "MAX_SEATS_PER_ORGANISATION": "5",
                "REMINDER_OFFSETS": "2d,3h",
            }
        )
        assert settings.waitlist_claim_hours == 12
        assert settings.max_seats_per_organisation == 5
        assert [o.label for o in settings.reminder_offsets] == ["2d", "3h"]


def _id(events: Events, event_id: str, organisation_id: str) -> str:
    with events.sessions() as session:
        found = regs.find_registration(session, event_id, organisation_id)
        assert found is not None
        return found.id
