"""The ledger's key for registration mail, on SQLite and PostgreSQL (migrated, not created)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from support.infra import postgres_databases
from support.messages import event_published
from tacso_notify.bootstrap import NotifySettings, apply_migrations, bootstrap
from tacso_notify.domain import Recipient
from tacso_notify.ledger import DeliveryFilter, DeliveryLedger
from tacso_notify.models import SENT
from tacso_shared.contracts import EventPublished, RegistrationChanged

EVENT: EventPublished = event_published(
    event_id="ev-ledger",
    revision=2,
    title="Workshop",
    type="workshop",
    country="BA",
    topics=[],
    starts_at=datetime(2027, 1, 1, 9, tzinfo=UTC),
    ends_at=datetime(2027, 1, 1, 12, tzinfo=UTC),
    organiser_id="rc",
    organiser_name="RC",
    url="https://events.example/events/ev-ledger",
    online_url="https://meet.example/x",
)
ORG = Recipient("org-1", "Org", "org@example.org", "bs")


def change(
    sequence: int, status: str = "confirmed", registration: str = "reg-1"
) -> RegistrationChanged:
    return RegistrationChanged(
        registration, ORG.organisation_id, status, 1, sequence, datetime.now(UTC), EVENT
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DeliveryLedger]:
    def wire(url: str) -> Iterator[DeliveryLedger]:
        settings = NotifySettings.load({"NOTIFY_DATABASE_URL": url, "VAR_DIR": str(tmp_path)})
        apply_migrations(settings.common)
        notify = bootstrap(settings)
        yield notify.ledger
        notify.engine.dispose()

    if request.param == "sqlite":
        yield from wire(f"sqlite:///{tmp_path / 'notify.sqlite3'}")
    else:
        with postgres_databases("notify") as urls:
            yield from wire(urls["notify"])


class TestRegistrationMailKey:
    def test_one_delivery_per_status_change_and_the_same_change_claims_nothing_once_sent(
        self, ledger: DeliveryLedger
    ) -> None:
        first, held = ledger.claim_registration_mail(
            change(1), "registration_confirmed", ORG, "t1", 60
        )
        assert first is not None and not held
        ledger.record([first])
        assert ledger.claim_registration_mail(
            change(1), "registration_confirmed", ORG, "t2", 60
        ) == (None, False)
        assert ledger.registration_mail_status(change(1), "registration_confirmed") == SENT
        # The same kind again, later (re-registered after a cancellation): a mail of its own.
        again, _ = ledger.claim_registration_mail(
            change(3), "registration_confirmed", ORG, "t3", 60
        )
        other, _ = ledger.claim_registration_mail(
            change(1, registration="reg-2"), "registration_confirmed", ORG, "t4", 60
        )
        assert again is not None and other is not None and len({first, again, other}) == 3

    def test_a_pending_one_leased_by_another_worker_is_held(self, ledger: DeliveryLedger) -> None:
        taken, _ = ledger.claim_registration_mail(change(1), "registration_offered", ORG, "a", 60)
        assert taken is not None
        assert ledger.claim_registration_mail(change(1), "registration_offered", ORG, "b", 60) == (
            None,
            True,
        )
        ledger.release("a")
        assert (
            ledger.claim_registration_mail(change(1), "registration_offered", ORG, "b", 60)[0]
            == taken
        )

    def test_invitations_keep_their_key(self, ledger: DeliveryLedger) -> None:
        ledger.ensure(EVENT, "invitation", [ORG])
        ledger.ensure(EVENT, "invitation", [ORG])
        items, total = ledger.list(DeliveryFilter(event_id=EVENT.event_id))
        assert total == 1 and (items[0].registration_id, items[0].sequence) == ("", 0)


def _page(n: int, start: int = 0) -> list[Recipient]:
    return [
        Recipient(f"org-{i:05d}", f"Org {i}", f"org{i}@example.org", "bs")
        for i in range(start, start + n)
    ]


class TestPageClaim:
    """A fan-out page's one transaction: owed rows made claimed, old ones claimed by key."""

    def test_new_rows_are_claimed_old_ones_by_key_held_ones_counted(
        self, ledger: DeliveryLedger
    ) -> None:
        ledger.suppress([("org3@example.org", "550 no such user")])
        # Ten rows exist already: five free, five held by another worker's live lease.
        ledger.ensure(EVENT, "invitation", _page(10))
        held_by_other, _ = ledger.claim(
            EVENT, "invitation", [r.organisation_id for r in _page(5, 5)], "other", 60
        )
        assert len(held_by_other) == 5
        page = _page(500)
        claimed, held, suppressed = ledger.ensure_and_claim(
            EVENT, "invitation", [*page, page[0]], "mine", 60
        )
        assert held == 5
        assert sorted(o for _, o in claimed) == [
            r.organisation_id
            for r in page
            if r.organisation_id not in {o for _, o in held_by_other}
        ]
        assert suppressed == {"org3@example.org": "550 no such user"}
        ledger.record([d for d, _ in claimed])
        # Sent is sent: the same page again claims nothing, only the other worker's are owed.
        again, held_again, _ = ledger.ensure_and_claim(EVENT, "invitation", page, "late", 60)
        assert again == [] and held_again == 5
        assert ledger.summary(EVENT.event_id).counts["invitation"] == {"sent": 495, "pending": 5}

    @pytest.mark.postgres
    def test_on_postgresql_a_page_is_a_statement_of_a_few_parameters(
        self, ledger: DeliveryLedger
    ) -> None:
        """psycopg parses a statement of more than 50 parameters again on every execution:
        a page must not be one placeholder per row (docs/performance.md)."""
        engine = ledger.sessions.kw["bind"]
        if engine.dialect.name != "postgresql":
            pytest.skip("the array form is PostgreSQL's")
        counts: list[int] = []

        def count(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            counts.append(len(parameters) if isinstance(parameters, dict) else 0)

        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            claimed, _, _ = ledger.ensure_and_claim(EVENT, "invitation", _page(500), "t", 60)
            ledger.record([d for d, _ in claimed])
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        assert len(claimed) == 500
        assert counts and max(counts) <= 20, counts
