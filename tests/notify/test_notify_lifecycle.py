"""Update notices, cancellation notices and reminders through the real workers.

Real RabbitMQ (the ``updates`` and ``reminders`` families, their page tasks), a real registry
served over HTTP, a real SMTP server; the ledger and the registration mirror are prepared by the
test as the invitation fan-out and the registration messages would have left them.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
import vobject
from kombu import Connection

from support.messages import event_published
from support.smtp import RecordingSMTPServer
from support.waiting import wait_until
from tacso_devtools.smtp_catcher import ReceivedMail
from tacso_notify import lifecycle
from tacso_notify.bootstrap import Notify, NotifySettings, apply_migrations, bootstrap
from tacso_notify.domain import MessageKind, Recipient, Sender
from tacso_notify.ledger import DeliveryFilter
from tacso_notify.mirror import LifecycleStore, record_registration
from tacso_notify.models import SENT, SKIPPED, SUPERSEDED
from tacso_notify.rendering import prepare_message
from tacso_notify.subscriptions import REMINDERS, UPDATES
from tacso_notify.workers import build_worker
from tacso_registry import operations
from tacso_registry.bootstrap import Registry
from tacso_shared.contracts import (
    EventCancelled,
    EventPublished,
    EventUpdated,
    RegistrationChanged,
    ReminderDue,
    Venue,
    contract_of,
    envelope_of,
)
from tacso_shared.db import transaction
from tacso_shared.messaging import OutgoingMessage, SyncPublisher
from tacso_shared.topology import declare_topology

pytestmark = pytest.mark.integration

ADMIN_KEY = "test-admin-key"
START = datetime(2026, 12, 15, 9, 0, tzinfo=UTC)  # Tuesday 15 December, 10:00 in Sarajevo


def make_event(event_id: str, revision: int = 1, **changes: Any) -> EventPublished:
    fields: dict[str, Any] = {
        "event_id": event_id,
        "revision": revision,
        "title": "Ljudska prava u praksi",
        "type": "workshop",
        "country": "BA",
        "topics": ["human-rights"],
        "starts_at": START,
        "ends_at": START + timedelta(hours=6),
        "venue": {"name": "Hotel Europe", "address": None, "city": "Sarajevo"},
        "organiser_id": "org-vesta",
        "organiser_name": "VESTA",
        "organiser_email": "rc@vesta.example",
        "url": f"https://events.tacso.example/events/{event_id}",
    }
    fields.update(changes)
    return event_published(**fields)


def moved(event: EventPublished, revision: int, days: int = 1) -> EventUpdated:
    """The event moved by ``days``, same time of day."""
    new = replace(
        event,
        revision=revision,
        starts_at=event.starts_at + timedelta(days=days),
        ends_at=event.ends_at + timedelta(days=days),
    )
    return EventUpdated(
        event=new,
        changed=("starts_at", "ends_at"),
        previous_starts_at=event.starts_at,
        previous_ends_at=event.ends_at,
        previous_venue=event.venue,
        previous_online_url=event.online_url,
    )


def parse(mail: ReceivedMail) -> EmailMessage:
    message = BytesParser(policy=default_policy).parsebytes(mail.data)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def ics_of(message: EmailMessage) -> str | None:
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            return str(part.get_content())
    return None


def of_event(event_id: str, kind: str | None = None) -> Callable[[ReceivedMail], bool]:
    def matches(mail: ReceivedMail) -> bool:
        message = parse(mail)
        return message["X-TACSO-Event-Id"] == event_id and (
            kind is None or message["X-TACSO-Kind"] == kind
        )

    return matches


class World:
    """A registry with organisations, notify's database, a broker vhost and an SMTP server."""

    def __init__(
        self, registry: Registry, notify: Notify, amqp_url: str, smtp: RecordingSMTPServer
    ) -> None:
        self.registry = registry
        self.notify = notify
        self.amqp_url = amqp_url
        self.smtp = smtp
        self.store = LifecycleStore(notify.sessions)
        self.publisher = SyncPublisher(amqp_url)
        self._numbers = iter(range(10_000))

    def organisation(self, kind: str = "cso", language: str = "en", **fields: Any) -> Recipient:
        n = next(self._numbers)
        data: dict[str, Any] = {
            "name": f"{kind.upper()} {n}",
            "kind": kind,
            "country": "BA",
            "email": f"{kind}{n}-{uuid.uuid4().hex[:6]}@example.org",
            "language": language,
            "topics": ["human-rights"],
            "mailing_consent": True,
            **fields,
        }
        with transaction(self.registry.sessions) as session:
            org = operations.register_organisation(session, data)
            return Recipient(org.id, org.name, org.email, language)

    def invited(self, event: EventPublished, recipients: list[Recipient]) -> None:
        """As the invitation fan-out leaves the ledger: one ``sent`` invitation each."""
        ledger = self.notify.ledger
        ledger.ensure(event, MessageKind.INVITATION.value, recipients)
        rows, _ = ledger.list(DeliveryFilter(event_id=event.event_id, kind="invitation"))
        ledger.record([row.id for row in rows])

    def registration(
        self, event: EventPublished, organisation: Recipient, status: str, sequence: int = 1
    ) -> None:
        message = RegistrationChanged(
            registration_id=f"reg-{organisation.organisation_id}",
            organisation_id=organisation.organisation_id,
            status=status,
            seats=2,
            sequence=sequence,
            changed_at=datetime.now(UTC),
            event=event,
        )
        with transaction(self.notify.sessions) as session:
            record_registration(session, message)

    def publish(self, message: Any) -> None:
        envelope = envelope_of(message, "/tacso/events/test", subject=message.event.event_id)
        self.publisher.publish(
            [
                OutgoingMessage(
                    message_id=envelope.id,
                    message_type=envelope.type,
                    routing_key=contract_of(message).routing_key(message),
                    body=json.dumps(envelope.to_dict()).encode(),
                )
            ]
        )

    def deliveries(self, event_id: str, kind: str) -> list[Any]:
        rows, _ = self.notify.ledger.list(DeliveryFilter(event_id=event_id, kind=kind))
        return rows


@pytest.fixture(scope="module")
def smtp() -> Iterator[RecordingSMTPServer]:
    with RecordingSMTPServer() as server:
        yield server


@pytest.fixture
def world(
    tmp_path: Path,
    registry: Registry,
    registry_url: str,
    amqp_url: str,
    smtp: RecordingSMTPServer,
) -> Iterator[World]:
    settings = NotifySettings.load(
        {
            "VAR_DIR": str(tmp_path),
            "NOTIFY_DATABASE_URL": f"sqlite:///{tmp_path / 'notify-worker.sqlite3'}",
            "AMQP_URL": amqp_url,
            "ADMIN_API_KEY": ADMIN_KEY,
            "REGISTRY_URL": registry_url,
            "SMTP_HOST": smtp.host,
            "SMTP_PORT": str(smtp.port),
            "RETRY_DELAYS": "1",
            "SMTP_CONNECTIONS": "1",
        }
    )
    apply_migrations(settings.common)
    notify = bootstrap(settings)
    with Connection(amqp_url) as connection:
        declare_topology(connection, (1,), [*UPDATES.queues(["BA"]), *REMINDERS.queues(["BA"])])
        channel = connection.channel()
        for family in (UPDATES, REMINDERS):
            channel.queue_purge(family.queue_for("BA").name)
    made = World(registry, notify, amqp_url, smtp)
    yield made
    made.publisher.close()
    notify.engine.dispose()


@pytest.fixture
def run_worker(world: World) -> Iterator[Callable[[str], None]]:
    """Start a real worker of a family (``updates``, ``reminders``) on the BA queue."""
    running: list[tuple[Any, threading.Thread]] = []

    def start(queue: str) -> None:
        worker = build_worker(world.notify, queue, ["BA"])
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        running.append((worker, thread))

    yield start
    for worker, thread in running:
        worker.stop()
        thread.join(timeout=15)


def settle(world: World) -> None:
    """Wait until the updates queue has handled everything before now: a sentinel update to one
    registrant of an event of its own arrives last."""
    sentinel = make_event(str(uuid.uuid4()))
    someone = world.organisation()
    world.registration(sentinel, someone, "confirmed")
    world.publish(moved(sentinel, 2))
    world.smtp.wait_for(1, predicate=of_event(sentinel.event_id))


class TestWhoIsToldOfAnUpdate:
    def test_invitees_who_did_not_decline_registrants_and_media_once_each(
        self, world: World, run_worker: Callable[[str], None]
    ) -> None:
        event = make_event(str(uuid.uuid4()))
        invitees = [world.organisation(language="bs" if n == 0 else "en") for n in range(5)]
        world.invited(event, invitees)
        world.registration(event, invitees[4], "declined")
        world.registration(event, invitees[3], "waitlisted")  # invited and registered: once
        walk_in = world.organisation()  # registered without an invitation
        world.registration(event, walk_in, "confirmed")
        bystander = world.organisation()  # same topics, never invited: not invited by an update
        lapsed = world.organisation()  # registered, then cancelled
        world.registration(event, lapsed, "confirmed", 1)
        world.registration(event, lapsed, "cancelled", 2)
        media = [world.organisation("media", language="en") for _ in range(2)]
        run_worker("updates")

        world.publish(moved(event, 2))

        expected = {r.email for r in [*invitees[:4], walk_in, *media]}
        mails = world.smtp.wait_for(len(expected), predicate=of_event(event.event_id))
        settle(world)
        mails = [m for m in world.smtp.messages if of_event(event.event_id)(m)]
        received = [to for mail in mails for to in mail.rcpt_tos]
        assert sorted(received) == sorted(expected)  # one each, nobody else
        assert bystander.email not in received and invitees[4].email not in received
        by_address = {mail.rcpt_tos[0]: parse(mail) for mail in mails}
        for organisation in [*invitees[:4], walk_in]:
            message = by_address[organisation.email]
            assert message["X-TACSO-Kind"] == "update"
            assert message["X-TACSO-Revision"] == "2"
            ics = ics_of(message)
            assert ics is not None and "METHOD:REQUEST" in ics and "SEQUENCE:1" in ics
        english = text_of(by_address[invitees[1].email])
        assert "moves from Tuesday, December 15 to Wednesday, December 16, same time" in (
            " ".join(english.split())
        )
        bosnian = " ".join(text_of(by_address[invitees[0].email]).split())
        assert (
            "Novi datum: srijeda, 16. decembar (ranije: utorak, 15. decembar), u isto vrijeme."
            in bosnian
        )
        for organisation in media:
            message = by_address[organisation.email]
            assert message["Subject"].startswith("Press notice, change:")
            assert "FOR IMMEDIATE RELEASE" in text_of(message)
            assert ics_of(message) is None
        sent = world.deliveries(event.event_id, "update")
        assert len(sent) == len(expected) and {d.status for d in sent} == {SENT}

    def test_a_redelivered_update_sends_nothing_more(
        self, world: World, run_worker: Callable[[str], None]
    ) -> None:
        event = make_event(str(uuid.uuid4()))
        invitees = [world.organisation() for _ in range(3)]
        world.invited(event, invitees)
        run_worker("updates")
        update = moved(event, 2)

        world.publish(update)
        world.smtp.wait_for(3, predicate=of_event(event.event_id))
        world.publish(update)  # the same update again (a replay, a relay that published twice)
        settle(world)

        assert len([m for m in world.smtp.messages if of_event(event.event_id)(m)]) == 3

    def test_a_notice_outdated_when_its_turn_comes_is_not_sent(
        self, world: World, run_worker: Callable[[str], None], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(lifecycle, "PAGE_SIZE", 2)
        event = make_event(str(uuid.uuid4()))
        invitees = sorted((world.organisation() for _ in range(5)), key=lambda r: r.organisation_id)
        world.invited(event, invitees)
        second = moved(event, 2)
        third = moved(second.event, 3)
        # Two quick edits queued before the worker takes either.
        world.publish(second)
        world.publish(third)

        run_worker("updates")

        world.smtp.wait_for(5, predicate=of_event(event.event_id, "update"))
        settle(world)
        mails = [parse(m) for m in world.smtp.messages if of_event(event.event_id)(m)]
        by_revision: dict[str, list[str]] = {}
        for message in mails:
            by_revision.setdefault(message["X-TACSO-Revision"], []).append(message["To"])
        # Revision 2's first page went out before revision 3 was seen; its later pages, whose
        # turn came after revision 3's message, were not sent. Revision 3 reached everyone.
        assert len(by_revision["3"]) == 5
        assert len(by_revision.get("2", [])) == 2
        assert len(set(by_revision["3"])) == 5
        # The ledger accounts for everyone: revision 2 sent to two, superseded for three.
        statuses = sorted(
            d.status for d in world.deliveries(event.event_id, "update") if d.revision == 2
        )
        assert statuses == [SENT, SENT, SUPERSEDED, SUPERSEDED, SUPERSEDED]

    def test_an_update_older_than_a_revision_seen_elsewhere_is_not_sent(
        self, world: World, run_worker: Callable[[str], None]
    ) -> None:
        event = make_event(str(uuid.uuid4()))
        registrant = world.organisation()
        second = moved(event, 2)
        # A registration message already carried revision 3 (on another queue).
        world.registration(replace(event, revision=3), registrant, "confirmed")
        run_worker("updates")

        world.publish(second)
        settle(world)

        assert not [m for m in world.smtp.messages if of_event(event.event_id)(m)]
        [row] = world.deliveries(event.event_id, "update")
        assert (row.organisation_id, row.status) == (registrant.organisation_id, SUPERSEDED)
        assert "revision 3" in (row.last_error or "")


class TestCancellation:
    def test_the_calendar_moves_then_cancels_the_one_entry(
        self, world: World, run_worker: Callable[[str], None]
    ) -> None:
        event = make_event(str(uuid.uuid4()))
        registrant = world.organisation()
        media = world.organisation("media")
        world.invited(event, [registrant])
        run_worker("updates")
        update = moved(event, 2)
        cancelled = EventCancelled(
            event=replace(update.event, revision=3),
            reason="The trainer fell ill.",
            cancelled_at=datetime.now(UTC),
        )

        world.publish(update)
        world.smtp.wait_for(2, predicate=of_event(event.event_id, "update"))
        world.publish(cancelled)
        mails = world.smtp.wait_for(2, predicate=of_event(event.event_id, "cancellation"))

        notice = next(parse(m) for m in mails if registrant.email in m.rcpt_tos)
        assert "The trainer fell ill." in text_of(notice)
        press = next(parse(m) for m in mails if media.email in m.rcpt_tos)
        assert press["Subject"].startswith("Press notice, cancellation:")
        update_mail = next(
            parse(m)
            for m in world.smtp.messages
            if of_event(event.event_id, "update")(m) and registrant.email in m.rcpt_tos
        )
        invitation = BytesParser(policy=default_policy).parsebytes(
            prepare_message(
                event, MessageKind.INVITATION, Sender("events@tacso.local")
            ).for_recipient(registrant)
        )
        assert isinstance(invitation, EmailMessage)
        # A second, independent parser reads the three calendar objects in order.
        calendars = [ics_of(m) for m in (invitation, update_mail, notice)]
        assert all(calendars)
        parsed = [vobject.readOne(text) for text in calendars if text]
        methods = [c.method.value for c in parsed]
        uids = {c.vevent.uid.value for c in parsed}
        sequences = [int(c.vevent.sequence.value) for c in parsed]
        starts = [c.vevent.dtstart.value for c in parsed]
        statuses = [c.vevent.status.value for c in parsed]
        assert methods == ["REQUEST", "REQUEST", "CANCEL"]
        assert len(uids) == 1  # one entry, moved then cancelled, never duplicated
        assert sequences == [0, 1, 2]
        assert starts[0] == START and starts[1] == START + timedelta(days=1)
        assert statuses == ["CONFIRMED", "CONFIRMED", "CANCELLED"]


class TestReminders:
    def reminder(self, event: EventPublished, organisation: Recipient) -> ReminderDue:
        return ReminderDue(
            registration_id=f"reg-{organisation.organisation_id}",
            organisation_id=organisation.organisation_id,
            offset="1d",
            due_at=event.starts_at - timedelta(days=1),
            event=event,
            seats=3,
        )

    def test_a_reminder_tells_the_registrant_their_places_and_the_page_once(
        self, world: World, run_worker: Callable[[str], None]
    ) -> None:
        event = make_event(str(uuid.uuid4()), starts_at=datetime.now(UTC) + timedelta(days=1))
        event = replace(event, ends_at=event.starts_at + timedelta(hours=2))
        registrant = world.organisation()
        world.registration(event, registrant, "confirmed")
        run_worker("reminders")
        reminder = self.reminder(event, registrant)

        world.publish(reminder)
        world.publish(reminder)  # redelivered
        [mail] = world.smtp.wait_for(1, predicate=of_event(event.event_id, "reminder"))
        message = parse(mail)
        text = text_of(message)
        assert message["Subject"].startswith("Reminder:")
        assert "Your places: 3" in text and event.url in text
        wait_until(
            lambda: len(world.deliveries(event.event_id, "reminder")) == 1,
            timeout=10,
            message="the reminder in the ledger",
        )
        [row] = world.deliveries(event.event_id, "reminder")
        assert (row.status, row.reminder_offset) == (SENT, "1d")
        # The second copy was handled (and sent nothing): the log shows it handled before a
        # later reminder of another event arrives.
        later = make_event(str(uuid.uuid4()), starts_at=datetime.now(UTC) + timedelta(days=2))
        later = replace(later, ends_at=later.starts_at + timedelta(hours=1))
        world.publish(self.reminder(later, registrant))
        world.smtp.wait_for(1, predicate=of_event(later.event_id))
        assert len([m for m in world.smtp.messages if of_event(event.event_id)(m)]) == 1

    def test_no_reminder_after_the_event_started(
        self, world: World, run_worker: Callable[[str], None]
    ) -> None:
        event = make_event(str(uuid.uuid4()), starts_at=datetime.now(UTC) - timedelta(minutes=5))
        registrant = world.organisation()
        run_worker("reminders")

        world.publish(self.reminder(event, registrant))

        wait_until(
            lambda: len(world.deliveries(event.event_id, "reminder")) == 1,
            timeout=15,
            message="the skipped reminder in the ledger",
        )
        [row] = world.deliveries(event.event_id, "reminder")
        assert row.status == SKIPPED
        assert "already started" in (row.last_error or "")
        assert not [m for m in world.smtp.messages if of_event(event.event_id)(m)]


def test_the_venue_sentence_names_both_venues() -> None:
    """A unit check of the wording when the venue changes."""
    from tacso_notify.rendering import describe_changes

    event = make_event("ev-venue")
    update = EventUpdated(
        event=replace(event, revision=2, venue=Venue("Hotel Bristol", "Sarajevo")),
        changed=("venue",),
        previous_starts_at=event.starts_at,
        previous_ends_at=event.ends_at,
        previous_venue=event.venue,
    )
    assert describe_changes(update, "en") == [
        "The venue changes from Hotel Europe, Sarajevo to Hotel Bristol, Sarajevo."
    ]
