"""Specification of notify's fan-out: who gets which mail, exactly once, and what failures do.

The directory and the mailer are fakes; the delivery ledger is the real one on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from prometheus_client import REGISTRY

from support.messages import event_published
from tacso_notify.audience import AudienceUnavailable
from tacso_notify.domain import MessageKind, Recipient, Sender
from tacso_notify.handlers import Dependencies, SendingPaused, fan_out, make_handler
from tacso_notify.ledger import DeliveryFilter, DeliveryLedger
from tacso_notify.mailer import PermanentSendError, TransientSendError
from tacso_notify.models import FAILED, PENDING, SENT
from tacso_notify.prefetch import PagePrefetcher
from tacso_notify.sending import SenderPool
from tacso_notify.tasks import PageTask
from tacso_shared.consumer import Requeue, TransientError
from tacso_shared.contracts import EventPublished, envelope_of
from tacso_shared.envelope import Envelope

SENDER = Sender(address="events@tacso.example", name="TACSO Events")
INVITATION = MessageKind.INVITATION
PRESS_NOTICE = MessageKind.PRESS_NOTICE


def make_event(**changes: Any) -> EventPublished:
    """An event as ``EventPublishedV1`` loads it; ``changes`` replace fields."""
    event: dict[str, Any] = {
        "event_id": "ev-1",
        "revision": 1,
        "title": "Civil society and EU accession",
        "description": "A day on how CSOs take part in the accession talks.",
        "type": "conference",
        "country": "BA",
        "topics": ["human-rights", "youth"],
        "starts_at": datetime(2026, 5, 4, 7, 0, tzinfo=UTC),
        "ends_at": datetime(2026, 5, 4, 15, 0, tzinfo=UTC),
        "venue": {"name": "Hotel Europe", "address": "Vladislava Skarića 5", "city": "Sarajevo"},
        "online_url": None,
        "capacity": 120,
        "organiser_id": "org-rc-ba",
        "organiser_name": "VESTA",
        "organiser_email": "rc@vesta.example",
        "url": "https://events.tacso.example/events/ev-1",
    }
    event.update(changes)
    return event_published(**event)


def recipients(count: int, prefix: str = "cso") -> list[Recipient]:
    return [
        Recipient(
            organisation_id=f"{prefix}-{n}",
            name=f"Organisation {n}",
            email=f"{prefix}{n}@example.org",
            language="bs",
        )
        for n in range(count)
    ]


class FakeDirectory:
    """Yields the organisations it was given in pages, and remembers what it was asked."""

    def __init__(self, organisations: Sequence[Recipient], page_size: int = 3) -> None:
        self.organisations = list(organisations)
        self.page_size = page_size
        self.asked: list[tuple[str, str, list[str]]] = []
        self.unavailable = False

    def pages(
        self, country: str, kind: str, topics: Sequence[str], **_: Any
    ) -> Iterator[list[Recipient]]:
        self.asked.append((country, kind, list(topics)))
        if self.unavailable:
            raise AudienceUnavailable("registry answered 503: down for maintenance")
        for start in range(0, len(self.organisations), self.page_size):
            yield self.organisations[start : start + self.page_size]

    def page(
        self,
        country: str,
        kind: str,
        topics: Sequence[str],
        after: str | None,
        size: int,
        **_: Any,
    ) -> tuple[list[Recipient], str | None]:
        self.asked.append((country, kind, list(topics)))
        if self.unavailable:
            raise AudienceUnavailable("registry answered 503: down for maintenance")
        ids = [o.organisation_id for o in self.organisations]
        start = 0 if after is None else ids.index(after) + 1
        page = self.organisations[start : start + size]
        more = start + size < len(self.organisations)
        return page, page[-1].organisation_id if page and more else None


class FakeMailer:
    """Records every accepted send; refuses chosen addresses for good or for now."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []
        self.refused_for_good: dict[str, str] = {}
        self.refused_for_now: dict[str, str] = {}
        self.attempts: list[str] = []

    def send(self, mail_from: str, recipient: str, message: bytes, smtputf8: bool = False) -> None:
        self.attempts.append(recipient)
        if recipient in self.refused_for_good:
            raise PermanentSendError(self.refused_for_good[recipient])
        if recipient in self.refused_for_now:
            raise TransientSendError(self.refused_for_now[recipient])
        self.sent.append((mail_from, recipient, message))

    def close(self) -> None:
        pass

    @property
    def recipients(self) -> list[str]:
        return [to for _, to, _ in self.sent]


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


@pytest.fixture
def pools() -> Iterator[Callable[[FakeMailer], SenderPool]]:
    """Make sender pools of one connection (so sends keep their order) over a fake mailer."""
    made: list[SenderPool] = []

    def make(mailer: FakeMailer) -> SenderPool:
        pool = SenderPool(lambda: mailer, connections=1)
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.close()


DepsFactory = Callable[..., Dependencies]


@pytest.fixture
def deps_for(ledger: DeliveryLedger, pools: Callable[[FakeMailer], SenderPool]) -> DepsFactory:
    """Wire fan-out dependencies around a directory and a mailer (one pool per call)."""

    def make(directory: FakeDirectory, mailer: FakeMailer, **options: Any) -> Dependencies:
        # Flushing only at the end of a pass keeps the ledger writes predictable.
        options.setdefault("flush_every", 1000)
        options.setdefault("flush_seconds", 3600.0)
        return Dependencies(
            ledger=ledger,
            directory=directory,
            pool=pools(mailer),
            sender=SENDER,
            domain="tacso.example",
            **options,
        )

    return make


def statuses(ledger: DeliveryLedger, **filters: Any) -> dict[str, str]:
    """Recipient address -> delivery status, for the deliveries matching ``filters``."""
    items, _ = ledger.list(DeliveryFilter(**filters), page_size=1000)
    return {d.recipient: d.status for d in items}


class TestAudience:
    def test_invitations_go_to_csos_working_on_the_event_topics(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        directory = FakeDirectory(recipients(2))

        fan_out(make_event(), INVITATION, deps_for(directory, FakeMailer()))

        assert directory.asked == [("BA", "cso", ["human-rights", "youth"])]

    def test_press_notices_go_to_all_media_of_the_country_whatever_the_topics(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        directory = FakeDirectory(recipients(2, "media"))

        fan_out(make_event(country="RS"), PRESS_NOTICE, deps_for(directory, FakeMailer()))

        assert directory.asked == [("RS", "media", [])]

    def test_an_event_without_topics_invites_every_cso_of_the_country(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        directory = FakeDirectory(recipients(2))

        fan_out(make_event(topics=[]), INVITATION, deps_for(directory, FakeMailer()))

        assert directory.asked == [("BA", "cso", [])]


class TestFanOut:
    def test_every_recipient_gets_exactly_one_mail_of_the_kind(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        audience = recipients(7)
        mailer = FakeMailer()

        result = fan_out(make_event(), INVITATION, deps_for(FakeDirectory(audience), mailer))

        assert sorted(mailer.recipients) == sorted(r.email for r in audience)
        assert (result.sent, result.failed, result.skipped) == (7, 0, 0)
        for mail_from, to, raw in mailer.sent:
            message = parse(raw)
            assert mail_from == SENDER.address
            assert to in message["To"]
            assert message["X-TACSO-Kind"] == "invitation"
            assert message["X-TACSO-Event-Id"] == "ev-1"
        assert ledger.counts("ev-1") == {"invitation": {SENT: 7}}

    def test_a_second_fan_out_of_the_same_revision_sends_nothing(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        mailer = FakeMailer()
        deps = deps_for(FakeDirectory(recipients(7)), mailer)
        fan_out(make_event(), INVITATION, deps)

        again = fan_out(make_event(), INVITATION, deps)

        assert len(mailer.sent) == 7
        assert (again.sent, again.failed, again.skipped) == (0, 0, 7)
        assert ledger.counts("ev-1") == {"invitation": {SENT: 7}}

    def test_invitation_and_press_notice_of_one_event_are_separate_deliveries(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        both = recipients(2)
        mailer = FakeMailer()
        fan_out(make_event(), INVITATION, deps_for(FakeDirectory(both), mailer))

        result = fan_out(make_event(), PRESS_NOTICE, deps_for(FakeDirectory(both), mailer))

        assert result.sent == 2
        assert ledger.counts("ev-1") == {"invitation": {SENT: 2}, "press_notice": {SENT: 2}}

    def test_a_permanent_failure_is_recorded_as_failed_with_its_reason_and_never_retried(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        audience = recipients(5)
        mailer = FakeMailer()
        mailer.refused_for_good["cso2@example.org"] = "550 5.1.1 mailbox does not exist"
        deps = deps_for(FakeDirectory(audience), mailer)

        result = fan_out(make_event(), INVITATION, deps)

        assert (result.sent, result.failed) == (4, 1)
        assert "cso2@example.org" not in mailer.recipients
        [failed] = ledger.list(DeliveryFilter(status=FAILED))[0]
        assert failed.recipient == "cso2@example.org"
        assert failed.last_error == "550 5.1.1 mailbox does not exist"
        assert failed.attempts == 1
        assert failed.sent_at is None

        mailer.attempts.clear()
        again = fan_out(make_event(), INVITATION, deps)

        assert mailer.attempts == []
        assert (again.sent, again.failed, again.skipped) == (0, 0, 5)
        assert ledger.counts("ev-1") == {"invitation": {SENT: 4, FAILED: 1}}

    def test_an_address_that_failed_for_good_is_not_mailed_about_later_events(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        audience = recipients(3)
        mailer = FakeMailer()
        mailer.refused_for_good["cso1@example.org"] = "550 5.1.1 mailbox does not exist"
        deps = deps_for(FakeDirectory(audience), mailer)
        fan_out(make_event(), INVITATION, deps)
        mailer.attempts.clear()

        result = fan_out(make_event(event_id="ev-2"), INVITATION, deps)

        assert mailer.attempts == ["cso0@example.org", "cso2@example.org"]
        assert (result.sent, result.failed) == (2, 1)
        [failed] = ledger.list(DeliveryFilter(event_id="ev-2", status=FAILED))[0]
        assert failed.recipient == "cso1@example.org"
        assert failed.last_error is not None
        assert failed.last_error.startswith("suppressed: 550")

    def test_a_transient_failure_stops_the_pass_and_keeps_what_was_sent(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        # Pages of 3: cso0-2, then cso3-5, then cso6; cso4 fails in the middle of page two.
        audience = recipients(7)
        mailer = FakeMailer()
        mailer.refused_for_now["cso4@example.org"] = "451 4.3.0 try again later"
        deps = deps_for(FakeDirectory(audience), mailer)

        with pytest.raises(SendingPaused, match="451") as paused:
            fan_out(make_event(), INVITATION, deps)

        assert paused.value.progress is True

        assert mailer.recipients == [f"cso{n}@example.org" for n in range(4)]
        assert statuses(ledger) == {
            **{f"cso{n}@example.org": SENT for n in range(4)},
            "cso4@example.org": PENDING,
            "cso5@example.org": PENDING,
        }
        [retrying] = ledger.list(DeliveryFilter(organisation_id="cso-4"))[0]
        assert retrying.last_error == "451 4.3.0 try again later"
        assert retrying.attempts == 1

    def test_the_pass_after_a_transient_failure_sends_only_the_rest(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        audience = recipients(7)
        mailer = FakeMailer()
        mailer.refused_for_now["cso4@example.org"] = "451 4.3.0 try again later"
        deps = deps_for(FakeDirectory(audience), mailer)
        with pytest.raises(SendingPaused):
            fan_out(make_event(), INVITATION, deps)
        mailer.refused_for_now.clear()
        mailer.sent.clear()

        result = fan_out(make_event(), INVITATION, deps)

        assert mailer.recipients == ["cso4@example.org", "cso5@example.org", "cso6@example.org"]
        assert (result.sent, result.failed, result.skipped) == (3, 0, 4)
        assert ledger.counts("ev-1") == {"invitation": {SENT: 7}}
        [retried] = ledger.list(DeliveryFilter(organisation_id="cso-4"))[0]
        assert retried.attempts == 2
        assert retried.last_error is None

    def test_a_new_revision_is_a_separate_set_of_deliveries(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        audience = recipients(4)
        mailer = FakeMailer()
        deps = deps_for(FakeDirectory(audience), mailer)
        fan_out(make_event(revision=1), INVITATION, deps)

        result = fan_out(make_event(revision=2, title="Moved to Mostar"), INVITATION, deps)

        assert result.sent == 4
        assert len(mailer.sent) == 8
        assert [parse(raw)["X-TACSO-Revision"] for _, _, raw in mailer.sent[4:]] == ["2"] * 4
        items, total = ledger.list(DeliveryFilter(event_id="ev-1"))
        assert total == 8
        assert sorted({d.revision for d in items}) == [1, 2]
        assert ledger.counts("ev-1") == {"invitation": {SENT: 8}}


class TestMailMetrics:
    def test_mails_are_counted_sent_failed_and_suppressed_by_kind_and_country(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        def count(outcome: str) -> float:
            value = REGISTRY.get_sample_value(
                "tacso_mails_total",
                {"kind": "invitation", "country": "BA", "outcome": outcome},
            )
            return value or 0.0

        before = {o: count(o) for o in ("sent", "failed", "suppressed")}
        mailer = FakeMailer()
        mailer.refused_for_good["cso1@example.org"] = "550 5.1.1 mailbox does not exist"
        deps = deps_for(FakeDirectory(recipients(3)), mailer)
        fan_out(make_event(), INVITATION, deps)
        fan_out(make_event(event_id="ev-2"), INVITATION, deps)

        after = {o: count(o) - before[o] for o in before}
        assert after == {"sent": 4.0, "failed": 1.0, "suppressed": 1.0}


class TestDeliveryLedger:
    def owe(
        self, ledger: DeliveryLedger, to: list[Recipient], kind: str = "invitation", **event: Any
    ) -> list[int]:
        """Put pending, unleased deliveries in the ledger; return their ids."""
        ev = make_event(**event)
        ledger.ensure(ev, kind, to)
        claimed, _ = ledger.claim(ev, kind, [r.organisation_id for r in to], "setup", 60.0)
        ledger.release("setup")
        return [delivery_id for delivery_id, _ in claimed]

    def test_ensure_records_each_organisation_once_however_often_it_is_asked(
        self, ledger: DeliveryLedger
    ) -> None:
        alice, bob = recipients(2)

        ledger.ensure(make_event(), "invitation", [alice, bob, alice])
        ledger.ensure(make_event(), "invitation", [bob])

        assert statuses(ledger) == {alice.email: PENDING, bob.email: PENDING}

    def test_claim_takes_the_owed_deliveries_in_id_order(self, ledger: DeliveryLedger) -> None:
        audience = recipients(3)
        ledger.ensure(make_event(), "invitation", audience)

        claimed, held = ledger.claim(make_event(), "invitation", ["cso-2", "cso-0"], "w1", 60.0)

        assert [org for _, org in claimed] == ["cso-0", "cso-2"]
        assert [i for i, _ in claimed] == sorted(i for i, _ in claimed)
        assert held == 0

    def test_claim_of_nobody_is_nothing(self, ledger: DeliveryLedger) -> None:
        assert ledger.claim(make_event(), "invitation", [], "w1", 60.0) == ([], 0)

    def test_claim_leaves_out_deliveries_already_sent_or_failed(
        self, ledger: DeliveryLedger
    ) -> None:
        sent_id, failed_id, pending_id = self.owe(ledger, recipients(3))
        ledger.record([sent_id], [(failed_id, "550 no such user")])

        claimed, held = ledger.claim(
            make_event(), "invitation", ["cso-0", "cso-1", "cso-2"], "w1", 60.0
        )

        assert (claimed, held) == ([(pending_id, "cso-2")], 0)

    def test_a_delivery_leased_by_another_worker_is_held_until_released(
        self, ledger: DeliveryLedger
    ) -> None:
        [delivery_id] = self.owe(ledger, recipients(1))
        ledger.claim(make_event(), "invitation", ["cso-0"], "w1", 60.0)

        assert ledger.claim(make_event(), "invitation", ["cso-0"], "w2", 60.0) == ([], 1)
        ledger.release("w1")
        assert ledger.claim(make_event(), "invitation", ["cso-0"], "w2", 60.0) == (
            [(delivery_id, "cso-0")],
            0,
        )

    def test_an_expired_lease_can_be_taken_over(self, ledger: DeliveryLedger) -> None:
        [delivery_id] = self.owe(ledger, recipients(1))
        ledger.claim(make_event(), "invitation", ["cso-0"], "dead-worker", 60.0)

        # A lease of zero seconds: every earlier claim has run out.
        claimed, held = ledger.claim(make_event(), "invitation", ["cso-0"], "w2", 0.0)

        assert (claimed, held) == ([(delivery_id, "cso-0")], 0)

    def test_suppressed_addresses_are_remembered_with_their_reason(
        self, ledger: DeliveryLedger
    ) -> None:
        ledger.suppress([("gone@example.org", "550 no such user")])
        ledger.suppress([("gone@example.org", "550 again")])

        assert ledger.suppressed(["gone@example.org", "here@example.org"]) == {
            "gone@example.org": "550 no such user"
        }
        assert ledger.unsuppress(["gone@example.org"]) == 1
        assert ledger.suppressed(["gone@example.org"]) == {}

    def test_counts_groups_one_event_by_kind_and_status(self, ledger: DeliveryLedger) -> None:
        invited = self.owe(ledger, recipients(4))
        noticed = self.owe(ledger, recipients(2, "media"), kind="press_notice")
        self.owe(ledger, recipients(3), event_id="ev-2")
        ledger.record([invited[0], invited[1], noticed[0]], [(invited[2], "550 refused")])

        assert ledger.counts("ev-1") == {
            "invitation": {SENT: 2, FAILED: 1, PENDING: 1},
            "press_notice": {SENT: 1, PENDING: 1},
        }
        assert ledger.counts("ev-2") == {"invitation": {PENDING: 3}}
        assert ledger.counts("ev-unknown") == {}

    def test_list_filters_by_event_kind_status_and_organisation(
        self, ledger: DeliveryLedger
    ) -> None:
        invited = self.owe(ledger, recipients(4))
        self.owe(ledger, recipients(2, "media"), kind="press_notice")
        self.owe(ledger, recipients(3), event_id="ev-2")
        ledger.record([invited[0]], [(invited[1], "550 refused")])

        def orgs(**filters: Any) -> list[str]:
            items, total = ledger.list(DeliveryFilter(**filters))
            assert total == len(items)
            return [d.organisation_id for d in items]

        assert len(orgs()) == 9
        assert orgs(event_id="ev-2") == ["cso-0", "cso-1", "cso-2"]
        assert orgs(kind="press_notice") == ["media-0", "media-1"]
        assert orgs(status=SENT) == ["cso-0"]
        assert orgs(status=FAILED) == ["cso-1"]
        assert orgs(event_id="ev-1", kind="invitation", status=PENDING) == ["cso-2", "cso-3"]
        assert orgs(organisation_id="cso-0") == ["cso-0", "cso-0"]

    def test_list_pages_oldest_first_with_the_total(self, ledger: DeliveryLedger) -> None:
        ids = self.owe(ledger, recipients(5))

        pages = [ledger.list(DeliveryFilter(), page=n, page_size=2) for n in (1, 2, 3)]

        assert [[d.id for d in items] for items, _ in pages] == [ids[0:2], ids[2:4], ids[4:5]]
        assert {total for _, total in pages} == {5}


class TestMakeHandler:
    def envelope(self, event: EventPublished) -> Envelope:
        """The envelope the event arrived in (its data as it travels: JSON values only)."""
        return envelope_of(event, "/tacso/events")

    def test_fans_out_the_message(self, ledger: DeliveryLedger, deps_for: DepsFactory) -> None:
        mailer = FakeMailer()
        handle = make_handler(INVITATION, deps_for(FakeDirectory(recipients(3)), mailer))
        event = make_event()

        handle(self.envelope(event), event)

        assert len(mailer.sent) == 3

    def test_turns_an_unavailable_audience_into_a_transient_error(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        directory = FakeDirectory(recipients(3))
        directory.unavailable = True
        handle = make_handler(INVITATION, deps_for(directory, FakeMailer()))
        event = make_event()

        with pytest.raises(TransientError, match="503") as caught:
            handle(self.envelope(event), event)

        causes = []
        cause: BaseException | None = caught.value
        while cause is not None:
            causes.append(cause)
            cause = cause.__cause__
        assert any(isinstance(c, AudienceUnavailable) for c in causes)
        assert caught.value.progress is False

    def test_turns_a_transient_send_failure_into_a_transient_error(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        mailer = FakeMailer()
        mailer.refused_for_now["cso1@example.org"] = "421 4.4.2 closing connection"
        handle = make_handler(INVITATION, deps_for(FakeDirectory(recipients(3)), mailer))
        event = make_event()

        with pytest.raises(TransientError, match="421") as caught:
            handle(self.envelope(event), event)

        assert isinstance(caught.value.__cause__, SendingPaused)
        assert caught.value.progress is True

    def test_a_permanent_send_failure_is_recorded_not_raised(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        mailer = FakeMailer()
        mailer.refused_for_good["cso1@example.org"] = "550 5.1.1 unknown user"
        handle = make_handler(INVITATION, deps_for(FakeDirectory(recipients(3)), mailer))
        event = make_event()

        handle(self.envelope(event), event)

        assert ledger.counts("ev-1") == {"invitation": {SENT: 2, FAILED: 1}}

    def test_keeps_a_snapshot_of_the_event_for_later_re_sends(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        handle = make_handler(INVITATION, deps_for(FakeDirectory(recipients(1)), FakeMailer()))
        event = make_event(revision=2)
        envelope = self.envelope(event)

        handle(envelope, event)

        snapshot = ledger.latest_snapshot("ev-1")
        assert snapshot is not None
        assert (snapshot.revision, snapshot.envelope) == (2, envelope.to_json())

    def test_a_shutdown_hands_the_message_back(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        mailer = FakeMailer()
        deps = deps_for(FakeDirectory(recipients(3)), mailer)
        deps.stopping.set()
        handle = make_handler(INVITATION, deps)
        event = make_event()

        with pytest.raises(Requeue):
            handle(self.envelope(event), event)

        assert mailer.sent == []
        assert ledger.counts("ev-1") == {"invitation": {PENDING: 3}}


class FailingAfterFirstPage(FakeDirectory):
    """Yields one page, then the registry goes away."""

    def pages(
        self, country: str, kind: str, topics: Sequence[str], **_: Any
    ) -> Iterator[list[Recipient]]:
        yield self.organisations[: self.page_size]
        raise AudienceUnavailable("registry unreachable: connection refused")


class FlakyLedger(DeliveryLedger):
    """A ledger whose first writes of sent mail fail, as when the database restarts."""

    def __init__(self, inner: DeliveryLedger, failures: int) -> None:
        super().__init__(inner.sessions)
        self.failures = failures

    def record(self, *args: Any, **kwargs: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database restarting")
        super().record(*args, **kwargs)


class TestPassingFailuresMidPass:
    def test_a_registry_outage_after_some_mail_records_it_and_reports_progress(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        mailer = FakeMailer()
        handle = make_handler(INVITATION, deps_for(FailingAfterFirstPage(recipients(6)), mailer))
        event = make_event()

        with pytest.raises(TransientError) as caught:
            handle(TestMakeHandler().envelope(event), event)

        assert caught.value.progress is True, "the retry schedule starts over"
        assert len(mailer.sent) == 3
        assert sorted(statuses(ledger).values()) == ["sent"] * 3

    def test_a_failed_ledger_write_is_retried_so_sent_mail_is_never_forgotten(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        mailer = FakeMailer()
        deps = deps_for(FakeDirectory(recipients(4)), mailer)
        deps.ledger = FlakyLedger(ledger, failures=2)

        fan_out(make_event(), INVITATION, deps)

        assert len(mailer.sent) == 4
        assert sorted(statuses(ledger).values()) == ["sent"] * 4


class TestReadingAhead:
    """A page task reads the next page while it sends (prefetch.PagePrefetcher)."""

    def chain(
        self, deps: Dependencies, event: EventPublished
    ) -> tuple[Callable[[Envelope, object], None], list[PageTask], Envelope]:
        tasks: list[PageTask] = []
        deps.hand_on = tasks.append
        envelope = envelope_of(event, "/tacso/events")
        return make_handler(INVITATION, deps), tasks, envelope

    def test_the_worker_that_takes_its_own_next_page_reads_it_ahead(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        organisations = recipients(1_120)
        own, ahead = FakeDirectory(organisations), FakeDirectory(organisations)
        mailer = FakeMailer()
        prefetcher = PagePrefetcher(ahead)
        deps = deps_for(own, mailer, prefetcher=prefetcher)
        handle, tasks, envelope = self.chain(deps, make_event())
        try:
            handle(envelope, make_event())
            while tasks:  # this worker takes every page it handed on
                handle(envelope, tasks.pop(0))
        finally:
            prefetcher.close()

        # 50 + 500 + 500 + 70: only the first page was read by the page itself.
        assert len(own.asked) == 1 and len(ahead.asked) == 3
        assert sorted(mailer.recipients) == sorted(o.email for o in organisations)
        assert ledger.counts("ev-1") == {"invitation": {SENT: 1_120}}

    def test_a_page_read_ahead_for_another_task_or_too_long_ago_is_read_again(
        self, ledger: DeliveryLedger, deps_for: DepsFactory
    ) -> None:
        organisations = recipients(550)  # two pages: 50 and 500
        own, ahead = FakeDirectory(organisations), FakeDirectory(organisations)
        now = [0.0]
        prefetcher = PagePrefetcher(ahead, max_age=5.0, clock=lambda: now[0])
        mailer = FakeMailer()
        deps = deps_for(own, mailer, prefetcher=prefetcher)
        event = make_event()
        handle, tasks, envelope = self.chain(deps, event)
        try:
            handle(envelope, event)
            (second,) = tasks
            # Another fan-out's page comes first: what was read ahead is not for it.
            assert prefetcher.take(("another chain", second.after or "")) is None
            # The worker takes its own page, but only after the read-ahead went stale.
            now[0] = 6.0
            handle(envelope, second)
        finally:
            prefetcher.close()

        assert len(own.asked) == 2 and len(ahead.asked) == 1
        assert len(mailer.sent) == 550

    def test_a_failed_read_ahead_is_read_again_by_the_page(self) -> None:
        def fail(directory: Any) -> Any:
            raise AudienceUnavailable("registry answered 503")

        prefetcher = PagePrefetcher(FakeDirectory([]))
        try:
            prefetcher.start(("chain", "org-9"), fail)
            assert prefetcher.take(("chain", "org-9")) is None
            # A page is taken once: asking again is reading it again.
            prefetcher.start(("chain", "org-9"), lambda d: ([], None))
            assert prefetcher.take(("chain", "org-9")) == ([], None)
            assert prefetcher.take(("chain", "org-9")) is None
        finally:
            prefetcher.close()
