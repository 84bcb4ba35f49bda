"""Specification of registration mail: one mail per registration status change, exactly once.

Real RabbitMQ (the registrations worker as ``tacso-notify worker --queue registrations`` builds
it), a real registry over HTTP, the recording SMTP server, the real ledger on SQLite.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import icalendar
import pika
import pytest
from kombu import Connection

from support.messages import event_published
from support.smtp import RecordingSMTPServer
from support.waiting import wait_until
from tacso_notify.bootstrap import Notify, NotifySettings, apply_migrations, bootstrap
from tacso_notify.domain import MessageKind, Recipient, Sender
from tacso_notify.ledger import DeliveryFilter
from tacso_notify.models import FAILED, SENT
from tacso_notify.rendering import RsvpLinks, ical_uid, prepare_message
from tacso_notify.subscriptions import REGISTRATIONS
from tacso_notify.workers import NotifyWorker, build_worker
from tacso_registry import operations
from tacso_registry.bootstrap import Registry
from tacso_shared.contracts import EventPublished, RegistrationChanged, envelope_of
from tacso_shared.db import transaction
from tacso_shared.envelope import Envelope
from tacso_shared.links import LinkSigner
from tacso_shared.topology import declare_topology

KEYS = ("test-link-key-new", "test-link-key-old")
PUBLIC = "https://events.tacso.example"
DOMAIN = "tacso.example"


def make_event(**changes: Any) -> EventPublished:
    fields: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "revision": 3,
        "title": "Civil society and EU accession",
        "description": "A day on how CSOs take part in the accession talks.",
        "type": "conference",
        "country": "BA",
        "topics": ["youth"],
        "starts_at": datetime(2027, 5, 4, 7, 0, tzinfo=UTC),
        "ends_at": datetime(2027, 5, 4, 15, 0, tzinfo=UTC),
        "venue": {"name": "Hotel Europe", "city": "Sarajevo"},
        "capacity": 3,
        "organiser_id": "org-rc-ba",
        "organiser_name": "VESTA",
        "organiser_email": "rc@vesta.example",
        "url": f"{PUBLIC}/events/ev",
        **changes,
    }
    return event_published(**fields)


def change(
    event: EventPublished,
    organisation_id: str,
    status: str,
    sequence: int,
    registration_id: str = "reg-1",
    **fields: Any,
) -> RegistrationChanged:
    return RegistrationChanged(
        registration_id=registration_id,
        organisation_id=organisation_id,
        status=status,
        seats=fields.pop("seats", 2),
        sequence=sequence,
        changed_at=datetime.now(UTC),
        event=event,
        **fields,
    )


@pytest.fixture
def organisation(registry: Registry) -> Callable[..., str]:
    """Register an organisation in the real registry; return its id."""

    def add(**fields: Any) -> str:
        data: dict[str, Any] = {
            "name": "Udruženje Zdravo",
            "kind": "cso",
            "country": "BA",
            "email": f"{uuid.uuid4().hex[:10]}@zdravo.example",
            "language": "bs",
            "topics": ["youth"],
            "mailing_consent": True,
            **fields,
        }
        with transaction(registry.sessions) as session:
            return str(operations.register_organisation(session, data).id)

    return add


@pytest.fixture
def wired(
    tmp_path: Path, amqp_url: str, registry_url: str, smtp_server: RecordingSMTPServer
) -> Iterator[Notify]:
    """notify wired as a registrations worker process is, on a fresh ledger."""
    settings = NotifySettings.load(
        {
            "VAR_DIR": str(tmp_path),
            "NOTIFY_DATABASE_URL": f"sqlite:///{tmp_path / 'notify.sqlite3'}",
            "ADMIN_API_KEY": "test-admin-key",
            "AMQP_URL": amqp_url,
            "REGISTRY_URL": registry_url,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_server.port),
            "MAIL_FROM": f"events@{DOMAIN}",
            "PUBLIC_BASE_URL": PUBLIC,
            "LINK_SIGNING_KEYS": ",".join(KEYS),
            "RETRY_DELAYS": "1",
            "SMTP_CONNECTIONS": "1",
        }
    )
    apply_migrations(settings.common)
    notify = bootstrap(settings)
    with Connection(amqp_url) as connection:
        # What `tacso-notify migrate` declares; earlier tests may have left messages behind.
        declare_topology(connection, (1,), REGISTRATIONS.queues(["BA"]))
        channel = connection.channel()
        for queue in (REGISTRATIONS.queue_for("BA").name, REGISTRATIONS.dead_letter_name):
            channel.queue_purge(queue)
    yield notify
    notify.engine.dispose()


@pytest.fixture
def worker(wired: Notify) -> Iterator[NotifyWorker]:
    """The registrations worker for BA, running in a thread."""
    built = build_worker(wired, "registrations", ["BA"])
    assert isinstance(built, NotifyWorker)
    thread = threading.Thread(target=built.run, daemon=True)
    thread.start()
    yield built
    built.stop()
    thread.join(timeout=15)


def publish(amqp_url: str, *items: RegistrationChanged | Envelope | bytes, key: str = "") -> None:
    """Publish registration messages to the ``tacso`` exchange as the events relay does."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for item in items:
            if isinstance(item, RegistrationChanged):
                item = envelope_of(item, "/test/events")
            if isinstance(item, Envelope):
                routing_key = key or f"registration.{item.data['status']}.BA"
                body, message_id = item.to_json().encode(), item.id
            else:
                routing_key, body, message_id = key, item, str(uuid.uuid4())
            channel.basic_publish(
                "tacso",
                routing_key,
                body,
                pika.BasicProperties(message_id=message_id, delivery_mode=2),
                mandatory=True,
            )
    finally:
        connection.close()


def mails_about(
    server: RecordingSMTPServer, event: EventPublished, count: int, timeout: float = 30.0
) -> list[EmailMessage]:
    received = server.wait_for(
        count,
        timeout=timeout,
        predicate=lambda mail: mail.header("X-TACSO-Event-Id") == event.event_id,
    )
    return [mail.message for mail in received]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def html_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content())


def calendar_of(message: EmailMessage) -> icalendar.Event | None:
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            calendar = icalendar.Calendar.from_ical(part.get_content())
            (vevent,) = calendar.walk("VEVENT")
            assert calendar["METHOD"] == "REQUEST"
            assert isinstance(vevent, icalendar.Event)
            return vevent
    return None


def rsvp_token(url: str) -> str:
    path = urlsplit(url).path
    assert path.startswith("/rsvp/"), url
    return path.removeprefix("/rsvp/")


def links_in(text: str) -> list[str]:
    return [word for word in text.split() if word.startswith(f"{PUBLIC}/rsvp/")]


class TestRegistrationMail:
    def test_each_status_sends_its_own_mail_once_in_the_recipients_language(
        self,
        amqp_url: str,
        wired: Notify,
        worker: NotifyWorker,
        organisation: Callable[..., str],
        smtp_server: RecordingSMTPServer,
    ) -> None:
        org = organisation()
        event = make_event()
        deadline = datetime(2027, 4, 30, 16, 0, tzinfo=UTC)
        publish(
            amqp_url,
            change(event, org, "waitlisted", 1, position=4),
            change(event, org, "offered", 2, offer_expires_at=deadline),
            change(event, org, "expired", 3),
            change(event, org, "confirmed", 4),
            change(event, org, "cancelled", 5),
            change(event, org, "declined", 6),
        )
        mails = mails_about(smtp_server, event, 6)
        kinds = [m["X-TACSO-Kind"] for m in mails]
        assert kinds == [
            "registration_waitlisted",
            "registration_offered",
            "registration_expired",
            "registration_confirmed",
            "registration_cancelled",
            "registration_declined",
        ]
        subjects = [str(m["Subject"]) for m in mails]
        title = "Civil society and EU accession"
        assert subjects == [
            f"Na listi čekanja: {title}",
            f"Slobodno mjesto za vas: {title}",  # codespell:ignore vas
            f"Ponuda mjesta je istekla: {title}",
            f"Prijava potvrđena: {title}",
            f"Prijava otkazana: {title}",
            f"Vaš odgovor je zabilježen: {title}",
        ]
        waitlisted, offered, _, confirmed, _, _ = mails
        assert "Vaše mjesto na listi čekanja: 4" in text_of(waitlisted)
        # The claim deadline in the reader's local time (Sarajevo, summer time), in Bosnian.
        assert "Mjesto preuzmite do: petak, 30. april 2027., 18:00" in text_of(offered)
        assert "Centralnoevropsko ljetno vrijeme" in text_of(offered)
        assert "Preuzmi svoje mjesto" in html_of(offered)
        assert "Rezervisana mjesta: 2" in text_of(confirmed)
        for mail in mails:
            assert mail["Reply-To"].addresses[0].addr_spec == "rc@vesta.example"
            assert mail["To"].addresses[0].display_name == "Udruženje Zdravo"
            assert calendar_of(mail) is None or mail is confirmed
        expected = sorted((kind, n, SENT, "reg-1") for n, kind in enumerate(kinds, start=1))

        def recorded() -> list[tuple[str, int, str, str]]:
            deliveries, _ = wired.ledger.list(DeliveryFilter(event_id=event.event_id))
            return sorted((d.kind, d.sequence, d.status, d.registration_id) for d in deliveries)

        wait_until(lambda: recorded() == expected, timeout=10)

    def test_the_confirmation_carries_the_invitations_calendar_entry_accepted(
        self,
        amqp_url: str,
        worker: NotifyWorker,
        organisation: Callable[..., str],
        smtp_server: RecordingSMTPServer,
    ) -> None:
        email = f"{uuid.uuid4().hex[:8]}@zdravo.example"
        org = organisation(email=email)
        event = make_event()
        publish(amqp_url, change(event, org, "confirmed", 1))
        (mail,) = mails_about(smtp_server, event, 1)
        vevent = calendar_of(mail)
        assert vevent is not None
        assert str(vevent["UID"]) == ical_uid(event.event_id, DOMAIN)
        assert vevent["SEQUENCE"] == event.revision - 1
        assert str(vevent["ORGANIZER"]) == "mailto:rc@vesta.example"
        attendee = vevent["ATTENDEE"]
        assert str(attendee) == f"mailto:{email}"
        assert attendee.params["PARTSTAT"] == "ACCEPTED"
        assert attendee.params["CN"] == "Udruženje Zdravo"

    def test_every_registration_mail_links_to_the_registrants_rsvp_page(
        self,
        amqp_url: str,
        worker: NotifyWorker,
        organisation: Callable[..., str],
        smtp_server: RecordingSMTPServer,
    ) -> None:
        org = organisation(language="sq")
        event = make_event()
        deadline = datetime(2027, 4, 30, 16, 0, tzinfo=UTC)
        publish(amqp_url, change(event, org, "offered", 1, offer_expires_at=deadline))
        (mail,) = mails_about(smtp_server, event, 1)
        (link,) = set(links_in(text_of(mail)))
        token = LinkSigner(KEYS).load(rsvp_token(link), ["rsvp"])
        assert (token.organisation_id, token.event_id) == (org, event.event_id)
        assert token.language == "sq"
        assert token.expires_at == event.ends_at
        assert f'href="{link}"' in html_of(mail)

    def test_a_redelivered_message_sends_nothing_twice(
        self,
        amqp_url: str,
        wired: Notify,
        worker: NotifyWorker,
        organisation: Callable[..., str],
        smtp_server: RecordingSMTPServer,
    ) -> None:
        org = organisation()
        event = make_event()
        first = envelope_of(change(event, org, "confirmed", 1), "/test/events")
        publish(amqp_url, first)
        mails_about(smtp_server, event, 1)
        # The same envelope again (a relay resending it), then a later change as a marker: one
        # worker, prefetch 1, so the duplicate is handled before the marker's mail is sent.
        publish(amqp_url, first, change(event, org, "cancelled", 2))
        mails = mails_about(smtp_server, event, 2)
        assert [m["X-TACSO-Kind"] for m in mails] == [
            "registration_confirmed",
            "registration_cancelled",
        ]

        def recorded() -> list[tuple[str, int]]:
            deliveries, _ = wired.ledger.list(DeliveryFilter(event_id=event.event_id))
            return [(d.status, d.attempts) for d in deliveries]

        # Recorded just after the SMTP server accepted it: wait for the ledger to catch up.
        wait_until(lambda: recorded() == [(SENT, 1), (SENT, 1)], timeout=10)

    def test_an_organisation_unknown_to_the_registry_is_a_failed_delivery_not_a_retry(
        self,
        amqp_url: str,
        wired: Notify,
        worker: NotifyWorker,
        organisation: Callable[..., str],
        smtp_server: RecordingSMTPServer,
    ) -> None:
        event = make_event()
        known = organisation()
        publish(
            amqp_url,
            change(event, "no-such-organisation", "confirmed", 1, registration_id="reg-x"),
            change(event, known, "confirmed", 1, registration_id="reg-y"),
        )
        (mail,) = mails_about(smtp_server, event, 1)
        assert mail["X-TACSO-Organisation-Id"] == known
        failed = wait_until(
            lambda: wired.ledger.list(DeliveryFilter(event_id=event.event_id, status=FAILED))[0]
        )
        assert failed[0].organisation_id == "no-such-organisation"
        assert "not in the registry" in (failed[0].last_error or "")

    def test_a_message_breaking_the_contract_goes_to_the_dead_letter_queue(
        self, amqp_url: str, worker: NotifyWorker
    ) -> None:
        bad = Envelope(
            type="org.tacso.events.registration.confirmed.v1",
            source="/test/events",
            data={"registration_id": "reg-1", "status": "confirmed"},
        )
        publish(amqp_url, bad, key="registration.confirmed.BA")

        def dead() -> int:
            connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
            try:
                channel = connection.channel()
                declared = channel.queue_declare(REGISTRATIONS.dead_letter_name, passive=True)
                return int(declared.method.message_count)
            finally:
                connection.close()

        wait_until(lambda: dead() == 1, timeout=20)

    def test_reminders_are_not_this_familys_work(self) -> None:
        keys = REGISTRATIONS.queue_for("BA").routing_keys
        assert set(keys) == {
            f"registration.{status}.BA"
            for status in ("confirmed", "waitlisted", "offered", "expired", "cancelled", "declined")
        }


class TestInvitationAnswers:
    """The invitation is the start of a registration: two personal links and a reply address."""

    def render(self, **changes: Any) -> tuple[EmailMessage, Recipient]:
        recipient = Recipient("org-42", "Žene za prava", "info@zene.example.ba", "bs")
        links = RsvpLinks(LinkSigner(KEYS), PUBLIC)
        prepared = prepare_message(
            make_event(**changes),
            MessageKind.INVITATION,
            Sender(f"events@{DOMAIN}"),
            DOMAIN,
            "bs",
            links=links,
        )
        parsed = BytesParser(policy=policy.default).parsebytes(prepared.for_recipient(recipient))
        assert isinstance(parsed, EmailMessage)
        return parsed, recipient

    def test_the_invitation_carries_attend_and_decline_links_with_a_working_token(self) -> None:
        message, recipient = self.render()
        text = text_of(message)
        links = links_in(text)
        assert {urlsplit(link).query for link in links} == {"answer=attend", "answer=decline"}
        assert "Prisustvovat ću" in text and "Ne mogu prisustvovati" in text
        for link in links:
            # Signed with the first key: a signer knowing only that one accepts it.
            token = LinkSigner(KEYS[:1]).load(rsvp_token(link), ["rsvp"])
            assert token.organisation_id == recipient.organisation_id
            assert token.language == "bs"
            assert f'href="{link}"' in html_of(message)
        assert f"{PUBLIC}/events/ev" in text, "the event page link"

    def test_reply_to_is_the_organising_rc_and_absent_when_unknown(self) -> None:
        message, _ = self.render()
        assert message["Reply-To"].addresses[0].addr_spec == "rc@vesta.example"
        message, _ = self.render(organiser_email=None)
        assert message["Reply-To"] is None

    def test_the_ics_names_the_recipient_as_an_attendee_asked_to_answer(self) -> None:
        message, recipient = self.render()
        vevent = calendar_of(message)
        assert vevent is not None
        attendee = vevent["ATTENDEE"]
        assert str(attendee) == f"mailto:{recipient.email}"
        assert attendee.params["RSVP"] == "TRUE"
        assert attendee.params["PARTSTAT"] == "NEEDS-ACTION"
        assert attendee.params["CN"] == recipient.name

    def test_a_message_too_wide_for_8bit_still_gets_its_links_and_attendee(self) -> None:
        # A 1,200-character event URL forces the per-recipient assembly (no byte splicing).
        message, recipient = self.render(url=f"{PUBLIC}/events/{'x' * 1200}")
        links = links_in(text_of(message))
        assert len(links) == 2
        token = LinkSigner(KEYS).load(rsvp_token(links[0]), ["rsvp"])
        assert token.organisation_id == recipient.organisation_id
        vevent = calendar_of(message)
        assert vevent is not None and str(vevent["ATTENDEE"]) == f"mailto:{recipient.email}"

    def test_each_recipient_gets_their_own_token(self) -> None:
        links = RsvpLinks(LinkSigner(KEYS), PUBLIC)
        prepared = prepare_message(
            make_event(),
            MessageKind.INVITATION,
            Sender(f"events@{DOMAIN}"),
            DOMAIN,
            "bs",
            None,
            links=links,
        )
        tokens: set[str] = set()
        for n in range(3):
            raw = prepared.for_recipient(Recipient(f"org-{n}", f"Org {n}", f"o{n}@example.org"))
            tokens.update(rsvp_token(link) for link in links_in(raw.decode("utf-8")))
        assert {LinkSigner(KEYS).load(t, ["rsvp"]).organisation_id for t in tokens} == {
            "org-0",
            "org-1",
            "org-2",
        }

    def test_a_press_notice_has_the_event_page_but_no_rsvp_links(self) -> None:
        links = RsvpLinks(LinkSigner(KEYS), PUBLIC)
        prepared = prepare_message(
            make_event(),
            MessageKind.PRESS_NOTICE,
            Sender(f"events@{DOMAIN}"),
            DOMAIN,
            "bs",
            links=links,
        )
        raw = prepared.for_recipient(Recipient("media-1", "Radio", "news@radio.example")).decode()
        assert "/rsvp/" not in raw
        assert f"{PUBLIC}/events/ev" in raw
