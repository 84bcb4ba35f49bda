"""Specification of the fan-out's isolation rule, through real rendering and a real SMTP server.

Whatever concerns one recipient (their address, their name, a refusal of their mailbox, a server
that cannot carry their UTF-8 address) fails that delivery alone, with the reason in the ledger;
the page, the event and the worker go on. The property test at the end generates organisations
that registry accepts and checks every message that reaches the server.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

import icalendar
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from support.messages import event_published
from support.smtp import RecordingSMTPServer
from tacso_devtools.smtp_catcher import ReceivedMail
from tacso_notify.domain import MessageKind, Recipient, Sender
from tacso_notify.handlers import Dependencies, fan_out
from tacso_notify.ledger import DeliveryFilter, DeliveryLedger
from tacso_notify.mailer import SmtpMailer, SmtpSettings
from tacso_notify.models import FAILED, SENT
from tacso_notify.sending import SenderPool
from tacso_registry.schemas import OrganisationCreateSchema
from tacso_shared.contracts import EventPublished
from tacso_shared.vocabulary import LANGUAGES

# Not a unit test: real SMTP servers and a property test of 40 fan-outs (make unit stays quick).
pytestmark = pytest.mark.integration

SENDER = Sender(address="events@tacso.example", name="TACSO Events")

#: Every header notify writes; anything else in a received message was injected.
OUR_HEADERS = {
    "to",
    "message-id",
    "x-tacso-organisation-id",
    "from",
    "subject",
    "date",
    "mime-version",
    "x-tacso-event-id",
    "x-tacso-revision",
    "x-tacso-kind",
    "content-type",
}


def make_event(**changes: Any) -> EventPublished:
    """An event as ``EventPublishedV1`` loads it, with a fresh id (the ledger is shared)."""
    event_id = str(uuid.uuid4())
    event: dict[str, Any] = {
        "event_id": event_id,
        "revision": 1,
        "title": "Ljudska prava u praksi",
        "description": "Radionica za organizacije civilnog društva.",
        "type": "workshop",
        "country": "BA",
        "topics": ["human-rights"],
        "starts_at": datetime(2026, 12, 15, 9, 0, tzinfo=UTC),
        "ends_at": datetime(2026, 12, 15, 15, 0, tzinfo=UTC),
        "venue": {"name": "Hotel Europe", "address": None, "city": "Sarajevo"},
        "online_url": None,
        "capacity": 30,
        "organiser_id": "org-vesta",
        "organiser_name": "VESTA",
        "organiser_email": "rc@vesta.example",
        "url": f"https://events.tacso.example/events/{event_id}",
    }
    event.update(changes)
    return event_published(**event)


class ListDirectory:
    """The audience as one list, in pages of ``page_size``."""

    def __init__(self, organisations: list[Recipient], page_size: int = 50) -> None:
        self.organisations = organisations
        self.page_size = page_size

    def pages(self, country: str, kind: str, topics: Any, **_: Any) -> Iterator[list[Recipient]]:
        for start in range(0, len(self.organisations), self.page_size):
            yield self.organisations[start : start + self.page_size]

    def page(
        self, country: str, kind: str, topics: Any, after: str | None, size: int, **_: Any
    ) -> tuple[list[Recipient], str | None]:
        raise NotImplementedError("these tests fan out in one pass")


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[bool, RecordingSMTPServer]]:
    """Two real SMTP servers: one offering SMTPUTF8, one without it."""
    with (
        RecordingSMTPServer(smtputf8=True) as with_utf8,
        RecordingSMTPServer(smtputf8=False) as without_utf8,
    ):
        yield {True: with_utf8, False: without_utf8}


@pytest.fixture
def send_through(ledger: DeliveryLedger, servers: dict[bool, RecordingSMTPServer]) -> Iterator[Any]:
    """Make fan-out dependencies that send through one of ``servers`` on two connections."""
    pools: list[SenderPool] = []

    def make(organisations: list[Recipient], smtputf8: bool) -> Dependencies:
        server = servers[smtputf8]
        pool = SenderPool(
            lambda: SmtpMailer(SmtpSettings(host=server.host, port=server.port, timeout=10)),
            connections=2,
        )
        pools.append(pool)
        return Dependencies(
            ledger=ledger,
            directory=ListDirectory(organisations, page_size=7),
            pool=pool,
            sender=SENDER,
            domain="tacso.example",
        )

    yield make
    for pool in pools:
        pool.close()


def outcome(ledger: DeliveryLedger, event_id: str) -> dict[str, tuple[str, str | None]]:
    """Organisation id -> (status, last error) of the event's deliveries."""
    items, _ = ledger.list(DeliveryFilter(event_id=event_id), page_size=1000)
    return {d.organisation_id: (d.status, d.last_error) for d in items}


def mails_of(server: RecordingSMTPServer, event_id: str) -> list[ReceivedMail]:
    return [m for m in server.messages if f"X-TACSO-Event-Id: {event_id}".encode() in m.data]


def cso(n: int, email: str, name: str | None = None) -> Recipient:
    return Recipient(f"org-{n}", name or f"Udruženje {n}", email, "bs")


class TestIsolation:
    def test_one_unsendable_address_fails_alone_and_the_page_goes_on(
        self, ledger: DeliveryLedger, send_through: Any, servers: Any
    ) -> None:
        audience = [cso(n, f"cso{n}@example.org") for n in range(20)]
        audience[3] = cso(3, '"a\\"b"@example.org')
        audience[11] = cso(11, "a@[127.0.0.1]")
        event = make_event()

        result = fan_out(event, MessageKind.INVITATION, send_through(audience, smtputf8=False))

        status = outcome(ledger, event.event_id)
        assert result.sent == 18
        assert result.failed == 2
        assert status["org-3"][0] == FAILED
        assert "cannot be sent to this recipient" in (status["org-3"][1] or "")
        assert status["org-11"][0] == FAILED
        assert sum(1 for s, _ in status.values() if s == SENT) == 18
        assert len(mails_of(servers[False], event.event_id)) == 18

    def test_an_idn_domain_is_sent_to_its_punycode_form(
        self, ledger: DeliveryLedger, send_through: Any, servers: Any
    ) -> None:
        event = make_event()
        audience = [cso(1, "info@žene.example.ba"), cso(2, "ured@udruženje.ba")]

        fan_out(event, MessageKind.INVITATION, send_through(audience, smtputf8=False))

        rcpts = sorted(m.rcpt_tos[0] for m in mails_of(servers[False], event.event_id))
        assert rcpts == ["info@xn--ene-b3a.example.ba", "ured@xn--udruenje-p4b.ba"]
        assert {s for s, _ in outcome(ledger, event.event_id).values()} == {SENT}

    def test_a_utf8_local_part_fails_alone_without_smtputf8(
        self, ledger: DeliveryLedger, send_through: Any, servers: Any
    ) -> None:
        event = make_event()
        audience = [cso(n, f"cso{n}@example.org") for n in range(5)] + [cso(9, "žena@example.ba")]

        fan_out(event, MessageKind.INVITATION, send_through(audience, smtputf8=False))

        status = outcome(ledger, event.event_id)
        assert status["org-9"] == (FAILED, "server does not support SMTPUTF8")
        assert [s for o, (s, _) in status.items() if o != "org-9"] == [SENT] * 5
        # A server's missing extension says nothing about the address: it is not suppressed.
        assert ledger.suppressed(["žena@example.ba"]) == {}

    def test_a_utf8_local_part_is_sent_with_smtputf8_when_offered(
        self, ledger: DeliveryLedger, send_through: Any, servers: Any
    ) -> None:
        event = make_event()

        fan_out(event, MessageKind.PRESS_NOTICE, send_through([cso(9, "žena@žene.ba")], True))

        (mail,) = mails_of(servers[True], event.event_id)
        assert mail.rcpt_tos == ("žena@xn--ene-b3a.ba",)
        assert outcome(ledger, event.event_id)["org-9"] == (SENT, None)

    def test_a_name_that_cannot_be_encoded_fails_that_delivery_only(
        self, ledger: DeliveryLedger, send_through: Any
    ) -> None:
        event = make_event()
        audience = [cso(1, "a@example.org", name="lone \udfff surrogate"), cso(2, "b@example.org")]

        fan_out(event, MessageKind.INVITATION, send_through(audience, smtputf8=True))

        status = outcome(ledger, event.event_id)
        assert status["org-1"][0] == FAILED
        assert status["org-2"] == (SENT, None)

    def test_a_refused_mailbox_is_suppressed_but_a_refused_message_is_not(
        self, ledger: DeliveryLedger, send_through: Any, servers: Any
    ) -> None:
        server = servers[True]
        server.fail_recipients({"gone@example.org": (550, "5.1.1 No such user")})
        event = make_event()
        try:
            fan_out(
                event,
                MessageKind.INVITATION,
                send_through([cso(1, "gone@example.org"), cso(2, "ok@example.org")], True),
            )
        finally:
            server.fail_recipients({})

        status = outcome(ledger, event.event_id)
        assert status["org-1"][0] == FAILED
        assert "550" in (status["org-1"][1] or "")
        assert status["org-2"] == (SENT, None)
        assert "gone@example.org" in ledger.suppressed(["gone@example.org"])


# ---- the property: whatever registry accepts, the fan-out copes ---------------------------

_ATEXT = st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~-")
_UNICODE_LETTER = st.characters(categories=["Ll", "Lu", "Lo"], max_codepoint=0x2FFFF)
_LOCAL = st.one_of(
    st.text(_ATEXT, min_size=1, max_size=20),
    st.text(st.one_of(_ATEXT, _UNICODE_LETTER), min_size=1, max_size=20),
)
_LABEL = st.one_of(
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True),
    st.text(st.sampled_from("abcčćdđšžеђжљњћџşğıöüçëαβ"), min_size=1, max_size=12),
)
_DOMAIN = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(_LABEL, min_size=1, max_size=3),
    st.sampled_from(["ba", "rs", "org", "com", "mk", "me", "al", "tr", "example", "срб"]),
)
_NAME = st.one_of(
    st.text(min_size=1, max_size=200),
    st.text(
        st.sampled_from('Udruženje građana\u200f\u202e\u2028\r\n\t 🙂ЖшﺏﻻİıŞ"<>,;\\'), max_size=200
    ),
    st.just("X" * 199 + "y"),
    st.just("Организација за човекови права " * 6),
)


@st.composite
def accepted_organisations(draw: st.DrawFn) -> Recipient:
    """An organisation as registry stores it, of those registry's schema accepts."""
    body = {
        "name": draw(_NAME),
        "kind": "cso",
        "country": "BA",
        "email": f"{draw(_LOCAL)}@{draw(_DOMAIN)}",
        "language": draw(st.sampled_from(sorted(LANGUAGES))),
        "topics": ["human-rights"],
    }
    try:
        data = OrganisationCreateSchema().load(body)
    except ValidationError:
        data = None
    if data is None:
        # Registry refuses it: notify never sees it. Use a plain one instead of rejecting the
        # whole example, so hypothesis does not starve on rare accepts.
        data = {"name": "Plain", "email": "plain@example.org", "language": "en"}
    return Recipient(
        organisation_id=str(uuid.uuid4()),
        name=data["name"],
        email=data["email"],
        language=data["language"],
    )


def check_message(mail: ReceivedMail) -> None:
    """What every delivered message must be: CRLF only, parseable, our headers, a valid .ics."""
    lines = mail.data.split(b"\r\n")
    assert all(b"\n" not in line and b"\r" not in line for line in lines), "bare CR or LF"
    assert all(len(line) <= 998 for line in lines), "line over 998 octets"
    head = mail.data.split(b"\r\n\r\n", 1)[0]
    names = {
        line.split(b":", 1)[0].decode("ascii").lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    }
    # Reply-To (the organising RC) only when the event names its address.
    assert OUR_HEADERS <= names <= OUR_HEADERS | {"reply-to"}, f"headers {names ^ OUR_HEADERS}"
    message = BytesParser(policy=default_policy).parsebytes(mail.data)
    assert isinstance(message, EmailMessage)
    assert message.get_body(preferencelist=("plain",)) is not None
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            calendar = icalendar.Calendar.from_ical(part.get_content())
            assert calendar.walk("VEVENT")[0]["UID"]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    organisations=st.lists(accepted_organisations(), min_size=1, max_size=6),
    smtputf8=st.booleans(),
    kind=st.sampled_from([MessageKind.INVITATION, MessageKind.PRESS_NOTICE]),
    title=st.text(min_size=1, max_size=300).filter(lambda t: t.strip() != ""),
)
def test_any_accepted_audience_ends_sent_or_failed_with_a_reason_and_mail_is_well_formed(
    ledger: DeliveryLedger,
    send_through: Any,
    servers: dict[bool, RecordingSMTPServer],
    organisations: list[Recipient],
    smtputf8: bool,
    kind: MessageKind,
    title: str,
) -> None:
    event = make_event(title=title)

    result = fan_out(event, kind, send_through(organisations, smtputf8))

    status = outcome(ledger, event.event_id)
    assert len(status) == len(organisations)
    assert result.sent + result.failed == len(organisations)
    for state, reason in status.values():
        assert state in (SENT, FAILED)
        if state == FAILED:
            assert reason
    delivered = mails_of(servers[smtputf8], event.event_id)
    assert len(delivered) == result.sent
    for mail in delivered:
        check_message(mail)
    if smtputf8:
        # With SMTPUTF8 offered, only an address with no SMTP form at all can fail.
        for organisation in organisations:
            state, reason = status[organisation.organisation_id]
            assert state == SENT or "cannot be sent" in (reason or ""), reason


def test_the_property_test_really_meets_idn_and_utf8_addresses() -> None:
    """Guard against a generator that silently stopped producing the interesting cases."""
    seen = {"idn": False, "utf8": False}

    @settings(max_examples=300, deadline=None)
    @given(accepted_organisations())
    def probe(recipient: Recipient) -> None:
        local, _, domain = recipient.email.rpartition("@")
        seen["idn"] |= not domain.isascii() and re.fullmatch(r"[ -~]+", local) is not None
        seen["utf8"] |= not local.isascii()

    probe()
    assert seen["idn"] and seen["utf8"], seen
