"""notify's registration mirror and newest-revision table, on SQLite and PostgreSQL.

``record_registration`` keeps the newest state of each registration whatever order the messages
arrive in; the migration that makes the tables (0006) runs on both databases.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from support.infra import postgres_databases
from support.messages import event_published
from tacso_notify.bootstrap import Notify, NotifySettings, apply_migrations, bootstrap
from tacso_notify.mirror import LifecycleStore, record_registration, see_revision
from tacso_notify.models import RegistrationState
from tacso_shared.contracts import EventPublished, RegistrationChanged
from tacso_shared.db import transaction

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def event(revision: int = 1, **changes: Any) -> EventPublished:
    fields: dict[str, Any] = {
        "event_id": "ev-mirror",
        "revision": revision,
        "title": "Mirror",
        "type": "workshop",
        "country": "BA",
        "topics": [],
        "starts_at": datetime(2026, 12, 15, 9, 0, tzinfo=UTC),
        "ends_at": datetime(2026, 12, 15, 15, 0, tzinfo=UTC),
        "organiser_id": "rc",
        "organiser_name": "VESTA",
        "url": "https://events.example/e/ev-mirror",
        "online_url": "https://meet.example/ev",
    }
    fields.update(changes)
    return event_published(**fields)


def change(
    status: str, sequence: int, registration_id: str = "reg-1", at: datetime | None = None
) -> RegistrationChanged:
    return RegistrationChanged(
        registration_id=registration_id,
        organisation_id="org-1",
        status=status,
        seats=2,
        sequence=sequence,
        changed_at=at or T0 + timedelta(minutes=sequence),
        event=event(),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def wired(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Notify]:
    """notify on a freshly migrated database of each kind."""
    if request.param == "sqlite":
        urls: Any = None
        url = f"sqlite:///{tmp_path / 'notify.sqlite3'}"
    else:
        urls = postgres_databases("notify")
        url = urls.__enter__()["notify"]
    try:
        settings = NotifySettings.load({"VAR_DIR": str(tmp_path), "NOTIFY_DATABASE_URL": url})
        apply_migrations(settings.common)
        notify = bootstrap(settings)
        yield notify
        notify.engine.dispose()
    finally:
        if urls is not None:
            urls.__exit__(None, None, None)


def stored(notify: Notify) -> RegistrationState | None:
    with notify.sessions() as session:
        return session.get(RegistrationState, ("ev-mirror", "org-1"))


@pytest.mark.postgres
class TestRecordRegistration:
    def test_a_higher_sequence_replaces_the_state(self, wired: Notify) -> None:
        for message in (change("waitlisted", 1), change("offered", 2), change("confirmed", 3)):
            with transaction(wired.sessions) as session:
                record_registration(session, message)
        state = stored(wired)
        assert state is not None
        assert (state.status, state.sequence, state.seats) == ("confirmed", 3, 2)

    def test_an_older_message_arriving_late_changes_nothing(self, wired: Notify) -> None:
        for message in (change("confirmed", 3), change("waitlisted", 1), change("offered", 2)):
            with transaction(wired.sessions) as session:
                record_registration(session, message)
        state = stored(wired)
        assert state is not None
        assert (state.status, state.sequence) == ("confirmed", 3)

    def test_a_new_registration_after_a_cancelled_one_replaces_it(self, wired: Notify) -> None:
        with transaction(wired.sessions) as session:
            record_registration(session, change("cancelled", 4))
        with transaction(wired.sessions) as session:
            later = T0 + timedelta(days=1)
            record_registration(session, change("confirmed", 1, "reg-2", at=later))
        state = stored(wired)
        assert state is not None
        assert (state.registration_id, state.status) == ("reg-2", "confirmed")

    def test_the_newest_revision_seen_is_kept(self, wired: Notify) -> None:
        store = LifecycleStore(wired.sessions)
        for revision in (2, 3, 1):
            with transaction(wired.sessions) as session:
                see_revision(session, event(revision))
        newest = store.newest("ev-mirror")
        assert newest is not None
        assert (newest.revision, newest.cancelled) == (3, False)
        store.see(event(4), cancelled=True)
        newest = store.newest("ev-mirror")
        assert newest is not None and (newest.revision, newest.cancelled) == (4, True)


@pytest.mark.postgres
class TestUpdateAudience:
    def test_invited_not_declined_plus_active_registrants_in_pages(self, wired: Notify) -> None:
        from tacso_notify.domain import Recipient
        from tacso_notify.ledger import DeliveryFilter

        ev = event()
        invited = [Recipient(f"org-{n}", f"Org {n}", f"org{n}@example.org") for n in range(4)]
        wired.ledger.ensure(ev, "invitation", invited)
        rows, _ = wired.ledger.list(DeliveryFilter(event_id=ev.event_id))
        sent = [r.id for r in rows if r.organisation_id != "org-3"]
        failed = [(r.id, "550 no such mailbox") for r in rows if r.organisation_id == "org-3"]
        wired.ledger.record(sent, failed)  # org-3's invitation never arrived

        def registration(org: str, status: str) -> None:
            message = replace_change(org, status)
            with transaction(wired.sessions) as session:
                record_registration(session, message)

        registration("org-1", "declined")
        registration("org-2", "confirmed")
        registration("org-7", "waitlisted")  # not invited
        registration("org-8", "expired")  # not invited, no longer waiting: not told
        store = LifecycleStore(wired.sessions)

        first, more = store.participants(ev.event_id, None, 2)
        second, last = store.participants(ev.event_id, first[-1].organisation_id, 2)

        assert more and not last
        told = [(p.organisation_id, p.registered) for p in [*first, *second]]
        assert told == [("org-0", False), ("org-2", True), ("org-7", True)]


def replace_change(organisation_id: str, status: str) -> RegistrationChanged:
    return RegistrationChanged(
        registration_id=f"reg-{organisation_id}",
        organisation_id=organisation_id,
        status=status,
        seats=1,
        sequence=1,
        changed_at=T0,
        event=event(),
    )
