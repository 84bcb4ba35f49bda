"""The registrations API on SQLite and PostgreSQL: register, list, cancel, claim, and refusals."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask.testing import FlaskClient

from tacso_events import registrations as regs
from tacso_events.app import create_app
from tacso_events.bootstrap import Events
from tacso_events.models import Event, ScheduledJob
from tacso_events.registry_client import Organisation
from tacso_events.scheduler import Scheduler
from tacso_shared.db import transaction

ADMIN = {"Authorization": "Bearer test-admin-key"}
BA_CENTRE_ID = "6b1d3a52-2f0e-4c55-9d3a-0d3c7f1f0a01"
BA_CSO_ID = "6b1d3a52-2f0e-4c55-9d3a-0d3c7f1f0a03"
RS_OFFICE_ID = "6b1d3a52-2f0e-4c55-9d3a-0d3c7f1f0a02"
SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=20)


def event_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Seats and waitlists",
        "type": "workshop",
        "country": "BA",
        "topics": ["youth"],
        "starts_at": SOON.isoformat(),
        "ends_at": (SOON + timedelta(hours=4)).isoformat(),
        "online_url": "https://meet.example.org/seats",
        "capacity": 3,
        "organiser_id": BA_CENTRE_ID,
    }
    body.update(overrides)
    return body


@pytest.fixture
def api(any_events: Events) -> FlaskClient:
    return create_app(any_events).test_client()


@pytest.fixture
def new_event(api: FlaskClient) -> Callable[..., str]:
    def make(**overrides: Any) -> str:
        response = api.post("/api/v1/events", json=event_body(**overrides), headers=ADMIN)
        assert response.status_code == 201, response.get_json()
        event_id: str = response.get_json()["id"]
        return event_id

    return make


def register(api: FlaskClient, event_id: str, organisation_id: str, **body: Any) -> Any:
    return api.post(
        f"/api/v1/events/{event_id}/registrations",
        json={"organisation_id": organisation_id, **body},
        headers=ADMIN,
    )


class TestRegistering:
    def test_register_waitlist_cancel_claim_and_the_event_s_counts(
        self, api: FlaskClient, new_event: Callable[..., str]
    ) -> None:
        event_id = new_event(capacity=3)
        first = register(api, event_id, BA_CENTRE_ID, seats=3, note="Three trainers")
        assert first.status_code == 201
        assert first.get_json()["status"] == "confirmed"
        second = register(api, event_id, BA_CSO_ID, seats=2)
        assert (second.get_json()["status"], second.get_json()["position"]) == ("waitlisted", 1)
        event = api.get(f"/api/v1/events/{event_id}").get_json()
        assert (event["seats_taken"], event["seats_left"], event["waitlist_length"]) == (3, 0, 1)
        listed = api.get(
            f"/api/v1/events/{event_id}/registrations?status=waitlisted", headers=ADMIN
        )
        assert [r["id"] for r in listed.get_json()["items"]] == [second.get_json()["id"]]
        cancelled = api.delete(
            f"/api/v1/events/{event_id}/registrations/{first.get_json()['id']}", headers=ADMIN
        )
        assert cancelled.status_code == 204
        claimed = api.post(
            f"/api/v1/events/{event_id}/registrations/{second.get_json()['id']}/claim",
            headers=ADMIN,
        )
        assert claimed.status_code == 200 and claimed.get_json()["status"] == "confirmed"
        page = api.get("/api/v1/events?country=BA").get_json()
        listed_event = next(e for e in page["items"] if e["id"] == event_id)
        assert (listed_event["seats_taken"], listed_event["seats_left"]) == (2, 1)

    def test_the_second_registration_of_an_organisation_is_a_409_naming_the_first(
        self, api: FlaskClient, new_event: Callable[..., str]
    ) -> None:
        event_id = new_event()
        first = register(api, event_id, BA_CSO_ID)
        again = register(api, event_id, BA_CSO_ID)
        assert again.status_code == 409
        assert again.get_json()["registration_id"] == first.get_json()["id"]


class TestBadInput:
    @pytest.mark.parametrize(
        ("seats", "status"),
        [(0, 422), (-1, 422), (4, 422), ("two", 422), (True, 422), (1.5, 422), (None, 422)],
    )
    def test_seats_outside_1_to_the_cap_are_a_422_naming_seats(
        self, api: FlaskClient, new_event: Callable[..., str], seats: Any, status: int
    ) -> None:
        response = register(api, new_event(), BA_CSO_ID, seats=seats)
        assert response.status_code == status
        assert "seats" in response.get_json()["errors"]["json"]

    def test_an_unknown_or_foreign_organisation_is_a_422(
        self, api: FlaskClient, new_event: Callable[..., str]
    ) -> None:
        event_id = new_event()
        unknown = register(api, event_id, "no-such-org")
        assert (
            unknown.status_code == 422 and "No such organisation" in unknown.get_json()["message"]
        )
        foreign = register(api, event_id, RS_OFFICE_ID)
        assert foreign.status_code == 422 and "belongs to RS" in foreign.get_json()["message"]

    @pytest.mark.parametrize(
        ("overrides", "reason"),
        [
            ({"status": "draft"}, "not published"),
            (
                {
                    "starts_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
                    "ends_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
                },
                "already started",
            ),
        ],
    )
    def test_a_draft_or_started_event_is_a_409_with_the_reason(
        self,
        api: FlaskClient,
        new_event: Callable[..., str],
        overrides: dict[str, Any],
        reason: str,
    ) -> None:
        response = register(api, new_event(**overrides), BA_CSO_ID)
        assert response.status_code == 409
        assert reason in response.get_json()["message"]

    def test_unknown_ids_are_404(self, api: FlaskClient, new_event: Callable[..., str]) -> None:
        event_id = new_event()
        assert register(api, "no-such-event", BA_CSO_ID).status_code == 404
        base = f"/api/v1/events/{event_id}/registrations/no-such-registration"
        assert api.delete(base, headers=ADMIN).status_code == 404
        assert api.post(f"{base}/claim", headers=ADMIN).status_code == 404

    def test_claiming_without_an_offer_or_after_it_expired_is_a_409(
        self, api: FlaskClient, any_events: Events, new_event: Callable[..., str]
    ) -> None:
        event_id = new_event(capacity=1)
        confirmed = register(api, event_id, BA_CENTRE_ID).get_json()
        waiting = register(api, event_id, BA_CSO_ID).get_json()
        claim = f"/api/v1/events/{event_id}/registrations/{waiting['id']}/claim"
        assert api.post(claim, headers=ADMIN).status_code == 409, "waitlisted: nothing to claim"
        api.delete(f"/api/v1/events/{event_id}/registrations/{confirmed['id']}", headers=ADMIN)
        with transaction(any_events.sessions) as session:
            session.execute(
                sa.text("UPDATE registrations SET offer_expires_at = :t WHERE id = :id"),
                {"t": datetime.now(UTC) - timedelta(seconds=1), "id": waiting["id"]},
            )
        expired = api.post(claim, headers=ADMIN)
        assert expired.status_code == 409 and "expired" in expired.get_json()["message"]

    def test_lowering_the_capacity_below_the_confirmed_seats_is_refused_with_the_numbers(
        self, api: FlaskClient, any_events: Events, new_event: Callable[..., str]
    ) -> None:
        event_id = new_event(capacity=3)
        register(api, event_id, BA_CENTRE_ID, seats=3)
        with (
            pytest.raises(regs.CapacityBelowTaken) as refused,
            transaction(any_events.sessions) as session,
        ):
            event = regs.lock_event(session, event_id)
            assert event is not None
            regs.check_capacity_change(session, event, 2)
        assert (refused.value.confirmed, refused.value.requested) == (3, 2)
        assert "3 seats are confirmed" in refused.value.reason

    def test_a_bad_status_filter_is_a_422(
        self, api: FlaskClient, new_event: Callable[..., str]
    ) -> None:
        response = api.get(
            f"/api/v1/events/{new_event()}/registrations?status=maybe", headers=ADMIN
        )
        assert response.status_code == 422


@pytest.mark.postgres
class TestConcurrency:
    @pytest.fixture
    def pg_events(
        self, tmp_path: Any, fake_registry: Any, request: pytest.FixtureRequest
    ) -> Iterator[Events]:
        from support.infra import postgres_databases
        from tacso_events.bootstrap import apply_migrations, bootstrap

        events_settings = request.getfixturevalue("events_settings_factory")
        with postgres_databases("events") as urls:
            settings = events_settings(tmp_path, EVENTS_DATABASE_URL=urls["events"])
            apply_migrations(settings.common)
            wired = bootstrap(settings, registry=fake_registry)
            try:
                yield wired
            finally:
                wired.engine.dispose()

    def test_200_concurrent_registrations_for_50_seats(
        self,
        pg_events: Events,
        fake_registry: Any,
        serve_wsgi: Callable[[Any], str],
    ) -> None:
        for n in range(200):
            org = Organisation(f"race-{n:03d}", f"CSO {n}", "cso", "BA", f"cso{n}@example.org")
            fake_registry.organisations[org.id] = org
        base = serve_wsgi(create_app(pg_events))
        created = requests.post(
            f"{base}/api/v1/events", json=event_body(capacity=50), headers=ADMIN, timeout=30
        )
        assert created.status_code == 201, created.text
        event_id = created.json()["id"]
        start = threading.Barrier(32)

        def one(n: int) -> tuple[int, dict[str, Any]]:
            if n < 32:
                start.wait(timeout=30)
            response = requests.post(
                f"{base}/api/v1/events/{event_id}/registrations",
                json={"organisation_id": f"race-{n:03d}", "seats": 1},
                headers=ADMIN,
                timeout=60,
            )
            return response.status_code, response.json()

        with ThreadPoolExecutor(max_workers=32) as pool:
            answers = list(pool.map(one, range(200)))
        assert Counter(status for status, _ in answers) == {201: 200}
        by_status = Counter(body["status"] for _, body in answers)
        assert by_status == {"confirmed": 50, "waitlisted": 150}
        positions = sorted(
            body["position"] for _, body in answers if body["status"] == "waitlisted"
        )
        assert positions == list(range(1, 151))
        event = requests.get(f"{base}/api/v1/events/{event_id}", timeout=30).json()
        assert (event["seats_taken"], event["seats_left"], event["waitlist_length"]) == (50, 0, 150)

    def test_two_schedulers_never_run_a_job_twice_and_jobs_survive_a_restart(
        self, pg_events: Events
    ) -> None:
        now = datetime.now(UTC)
        with transaction(pg_events.sessions) as session:
            for n in range(60):
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
        lock = threading.Lock()

        def count(_session: Any, payload: dict[str, Any], *_: Any) -> None:
            with lock:
                ran.append(int(payload["n"]))

        policy = pg_events.policy
        # A scheduler that claims and dies before running: its claim lapses, the job stays.
        crashed = Scheduler(pg_events.sessions, policy, handlers={"count": count}, batch_size=5)
        crashed.lease = timedelta(seconds=0)
        claimed = crashed.claim()
        assert len(claimed) == 5
        first = Scheduler(pg_events.sessions, policy, handlers={"count": count}, batch_size=7)
        second = Scheduler(pg_events.sessions, policy, handlers={"count": count}, batch_size=7)
        threads = [
            threading.Thread(target=lambda s=s: [s.run_once() for _ in range(15)])
            for s in (first, second)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(ran) == list(range(60)), "every job once, the crashed claims included"
        assert first.runs > 0 and second.runs > 0, "both took part"
        with pg_events.sessions() as session:
            assert session.scalar(sa.select(sa.func.count()).select_from(ScheduledJob)) == 0

    def test_an_offer_expires_through_the_scheduler_on_postgresql(self, pg_events: Events) -> None:
        api = create_app(pg_events).test_client()
        event_id = api.post(
            "/api/v1/events", json=event_body(capacity=1), headers=ADMIN
        ).get_json()["id"]
        first = register(api, event_id, BA_CENTRE_ID).get_json()
        register(api, event_id, BA_CSO_ID)
        api.delete(f"/api/v1/events/{event_id}/registrations/{first['id']}", headers=ADMIN)
        later = datetime.now(UTC) + timedelta(hours=49)
        assert Scheduler(pg_events.sessions, pg_events.policy).run_once(later) == 1
        with pg_events.sessions() as session:
            event = session.get(Event, event_id)
            assert event is not None
            occupancy = regs.occupancy(session, event)
        assert (occupancy.seats_taken, occupancy.waitlist_length) == (0, 0)
