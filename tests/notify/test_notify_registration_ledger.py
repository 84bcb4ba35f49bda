"""The ledger's key for registration mail, on SQLite and PostgreSQL (migrated, not created)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

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
