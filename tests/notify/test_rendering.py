"""Specification of the notify service's email rendering: invitations and press notices."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime, timedelta
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser, Parser
from typing import Any

import icalendar
import pytest

from support.messages import event_published
from tacso_notify.addressing import UnsendableAddress
from tacso_notify.domain import PUBLICATION_KINDS, MessageKind, Recipient, Sender
from tacso_notify.rendering import PreparedMessage, build_calendar, ical_uid, prepare_message
from tacso_shared.contracts import EventPublished

#: The kinds of mail a published event's fan-out renders with ``prepare_message``.

SENDER = Sender(address="events@tacso.example")
DOMAIN = "tacso.example"
STARTS = datetime(2026, 5, 12, 8, 0, tzinfo=UTC)
ENDS = datetime(2026, 5, 12, 14, 0, tzinfo=UTC)
TRICKY_NAME = 'Žene & "Mladi" <BiH>'


def make_event(**changes: Any) -> EventPublished:
    """An event as ``EventPublishedV1`` loads it; ``changes`` replace fields."""
    event: dict[str, Any] = {
        "event_id": "ev-42",
        "revision": 3,
        "title": "Ljudska prava — radionica, Čapljina",
        "description": "A day on monitoring human rights.\n\nBring your laptop.",
        "type": "workshop",
        "country": "BA",
        "topics": ["human-rights", "youth"],
        "starts_at": STARTS,
        "ends_at": ENDS,
        "venue": {"name": "Dom kulture", "address": "Trg kralja Tomislava 1", "city": "Čapljina"},
        "online_url": None,
        "capacity": 30,
        "organiser_id": "org-rc-ba",
        "organiser_name": "TACSO Resource Centre BiH",
        "organiser_email": "rc@tacso-ba.example",
        "url": "https://events.tacso.example/events/ev-42",
    }
    event.update(changes)
    return event_published(**event)


def recipient(
    name: str = "Udruženje Zdravo",
    organisation_id: str = "org-7",
    email: str = "info@zdravo.example",
) -> Recipient:
    """A CSO to send to."""
    return Recipient(organisation_id=organisation_id, name=name, email=email)


def render(
    kind: MessageKind = MessageKind.INVITATION,
    to: Recipient | None = None,
    **changes: Any,
) -> EmailMessage:
    """Prepare ``kind`` for an event and parse what one recipient receives."""
    raw = prepare_message(make_event(**changes), kind, SENDER, DOMAIN).for_recipient(
        to or recipient()
    )
    return parse(raw)


def parse(raw: bytes) -> EmailMessage:
    """The message as a receiving mail client reads it."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def body(message: EmailMessage, subtype: str) -> str:
    """The decoded text of the ``text/<subtype>`` part."""
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content


def calendar_part(message: EmailMessage) -> EmailMessage | None:
    """The text/calendar part, if any."""
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            assert isinstance(part, EmailMessage)
            return part
    return None


def vevent_of(data: bytes | str) -> icalendar.Calendar:
    """The parsed iCalendar object."""
    calendar = icalendar.Calendar.from_ical(data)
    assert isinstance(calendar, icalendar.Calendar)
    return calendar


def the_vevent(calendar: icalendar.Calendar) -> icalendar.Event:
    """The one VEVENT in ``calendar``."""
    events = calendar.walk("VEVENT")
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, icalendar.Event)
    return event


class TestSubject:
    def test_invitation_subject_says_invitation(self) -> None:
        message = render(MessageKind.INVITATION, title="Youth forum")
        assert message["Subject"] == "Invitation: Youth forum"

    def test_press_notice_subject_says_press_notice(self) -> None:
        message = render(MessageKind.PRESS_NOTICE, title="Youth forum")
        assert message["Subject"] == "Press notice: Youth forum"

    @pytest.mark.parametrize(
        "title",
        ["Ljudska prava — radionica, Čapljina", "İnsan hakları atölyesi, Şanlıurfa"],
    )
    def test_non_ascii_title_is_rfc2047_encoded_and_round_trips(self, title: str) -> None:
        raw = prepare_message(
            make_event(title=title), MessageKind.INVITATION, SENDER
        ).for_recipient(recipient())
        header_block = raw.split(b"\r\n\r\n", 1)[0]
        assert header_block.isascii()
        assert b"=?utf-8?" in header_block
        assert parse(raw)["Subject"] == f"Invitation: {title}"

    def test_line_breaks_in_title_do_not_break_the_subject(self) -> None:
        message = render(title="Two\nlines")
        assert message["Subject"] == "Invitation: Two lines"

    def test_prepared_message_exposes_kind_and_subject(self) -> None:
        prepared = prepare_message(make_event(title="Expo"), MessageKind.PRESS_NOTICE, SENDER)
        assert isinstance(prepared, PreparedMessage)
        assert prepared.kind is MessageKind.PRESS_NOTICE
        assert prepared.subject == "Press notice: Expo"


class TestHeaders:
    def test_from_is_the_sender(self) -> None:
        assert render()["From"] == "TACSO Events <events@tacso.example>"

    def test_to_is_the_recipient(self) -> None:
        to = render(to=recipient("Udruženje Zdravo"))["To"]
        assert to.addresses[0].display_name == "Udruženje Zdravo"
        assert to.addresses[0].addr_spec == "info@zdravo.example"

    def test_to_with_special_characters_round_trips(self) -> None:
        to = render(to=recipient(TRICKY_NAME))["To"]
        assert len(to.addresses) == 1
        assert to.addresses[0].display_name == TRICKY_NAME
        assert to.addresses[0].addr_spec == "info@zdravo.example"

    @pytest.mark.parametrize(
        "name",
        [
            "Udruženje građana za zaštitu ljudskih prava i sloboda Čapljina " * 3,
            "Удружење грађана за заштиту људских права и слобода Скопје",
        ],
    )
    def test_long_non_ascii_name_is_folded_into_encoded_words(self, name: str) -> None:
        raw = prepare_message(make_event(), MessageKind.INVITATION, SENDER).for_recipient(
            recipient(name)
        )
        header_lines = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        assert max(len(line) for line in header_lines) <= 78
        # Checked with the RFC 2047 decoder of email.header: CPython's policy.default parser
        # puts a space between adjacent encoded words of a display name (its own folder's
        # output reads back the same way), while RFC 2047 says to join them.
        to = email.message_from_bytes(raw)["To"]
        assert str(make_header(decode_header(str(to)))) == f"{name.strip()} <info@zdravo.example>"

    def test_ascii_name_with_quotes_round_trips(self) -> None:
        to = render(to=recipient('Youth "Forward", Mostar'))["To"]
        assert to.addresses[0].display_name == 'Youth "Forward", Mostar'

    def test_line_breaks_in_recipient_name_cannot_inject_headers(self) -> None:
        message = render(to=recipient("Evil\r\nBcc: victim@example.com"))
        assert message["Bcc"] is None
        assert message["To"].addresses[0].display_name == "Evil Bcc: victim@example.com"

    @pytest.mark.parametrize(
        "mailbox",
        [
            "a@b.example>\r\nBcc: victim@example.com",
            "no-at-sign",
            '"a\\"b"@example.org',
            "a@[127.0.0.1]",
            "a b@example.org",
            "a@exa mple.org",
        ],
    )
    def test_unusable_mailbox_is_refused(self, mailbox: str) -> None:
        prepared = prepare_message(make_event(), MessageKind.INVITATION, SENDER)
        with pytest.raises(UnsendableAddress):
            prepared.for_recipient(Recipient(organisation_id="org-1", name="X", email=mailbox))

    def test_an_idn_domain_is_addressed_in_its_ascii_form(self) -> None:
        message = render(to=recipient("Žene za prava", email="info@žene.example.ba"))
        assert message["To"].addresses[0].addr_spec == "info@xn--ene-b3a.example.ba"
        assert message["To"].addresses[0].display_name == "Žene za prava"

    def test_a_utf8_local_part_goes_into_the_header_as_utf8(self) -> None:
        raw = prepare_message(make_event(), MessageKind.INVITATION, SENDER).for_recipient(
            Recipient(organisation_id="org-1", name="Udruženje", email="žena@example.ba")
        )
        to_line = next(line for line in raw.split(b"\r\n") if line.startswith(b"To: "))
        assert to_line.endswith(" <žena@example.ba>".encode())
        # An RFC 6532 reader decodes the header as UTF-8.
        headers = Parser(policy=policy.default).parsestr(raw.decode("utf-8"))
        assert headers["To"].addresses[0].addr_spec == "žena@example.ba"

    def test_a_long_name_is_wrapped_with_crlf_only(self) -> None:
        raw = prepare_message(make_event(), MessageKind.INVITATION, SENDER).for_recipient(
            recipient("Udruženje građana " * 12)
        )
        assert b"\n" not in raw.replace(b"\r\n", b"")

    def test_recipient_without_a_name_is_addressed_and_greeted_by_mailbox(self) -> None:
        message = render(to=recipient(""))
        assert message["To"] == "info@zdravo.example"
        assert "Dear info@zdravo.example," in body(message, "plain")

    def test_message_id_is_unique_per_recipient_and_in_the_domain(self) -> None:
        prepared = prepare_message(make_event(), MessageKind.INVITATION, SENDER, DOMAIN)
        ids = {parse(prepared.for_recipient(recipient()))["Message-ID"] for _ in range(3)}
        assert len(ids) == 3
        assert all(re.fullmatch(r"<[0-9a-f]{32}@tacso\.example>", i) for i in ids)

    def test_date_and_mime_version_are_set(self) -> None:
        message = render()
        assert message["MIME-Version"] == "1.0"
        assert abs(message["Date"].datetime - datetime.now(UTC)) < timedelta(minutes=5)

    @pytest.mark.parametrize("kind", PUBLICATION_KINDS)
    def test_tacso_headers_identify_event_revision_kind_and_organisation(
        self, kind: MessageKind
    ) -> None:
        message = render(kind, to=recipient(organisation_id="org-99"))
        assert message["X-TACSO-Event-Id"] == "ev-42"
        assert message["X-TACSO-Revision"] == "3"
        assert message["X-TACSO-Kind"] == kind.value
        assert message["X-TACSO-Organisation-Id"] == "org-99"

    @pytest.mark.parametrize("kind", PUBLICATION_KINDS)
    def test_is_crlf_terminated_with_lines_under_998_bytes(self, kind: MessageKind) -> None:
        raw = prepare_message(make_event(), kind, SENDER).for_recipient(recipient(TRICKY_NAME))
        assert b"\n" not in raw.replace(b"\r\n", b"")
        assert b"\r" not in raw.replace(b"\r\n", b"")
        assert max(len(line) for line in raw.split(b"\r\n")) < 998


class TestInvitation:
    def test_is_alternative_text_and_html_plus_calendar_attachment(self) -> None:
        message = render(MessageKind.INVITATION)
        assert message.get_content_type() == "multipart/mixed"
        alternative, ics = message.iter_parts()
        assert alternative.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in alternative.iter_parts()] == [
            "text/plain",
            "text/html",
        ]
        assert ics.get_content_type() == "text/calendar"
        assert ics.get_param("method") == "REQUEST"
        assert ics.get_content_charset() == "utf-8"
        assert ics.get_content_disposition() == "attachment"
        assert ics.get_filename() == "invite.ics"

    def test_greets_the_organisation_by_name(self) -> None:
        message = render(to=recipient("Udruženje Zdravo"))
        assert "Dear Udruženje Zdravo," in body(message, "plain")
        assert "Dear Udruženje Zdravo," in body(message, "html")
        assert "you" in body(message, "plain").split("Dear", 1)[1][:200].lower()

    def test_each_recipient_gets_their_own_greeting_from_one_preparation(self) -> None:
        prepared = prepare_message(make_event(), MessageKind.INVITATION, SENDER)
        first = parse(prepared.for_recipient(recipient("Prva")))
        second = parse(prepared.for_recipient(recipient("Druga")))
        assert "Dear Prva," in body(first, "plain")
        assert "Dear Druga," in body(second, "plain")
        assert "Prva" not in body(second, "html")

    def test_greeting_escapes_html_but_not_text(self) -> None:
        message = render(to=recipient(TRICKY_NAME))
        assert f"Dear {TRICKY_NAME}," in body(message, "plain")
        html = body(message, "html")
        assert "Dear Žene &amp; &quot;Mladi&quot; &lt;BiH&gt;," in html
        assert "<BiH>" not in html

    def test_title_is_escaped_in_html_but_not_in_text(self) -> None:
        message = render(title='Budget <script>alert("x")</script> & you')
        assert 'Budget <script>alert("x")</script> & you' in body(message, "plain")
        html = body(message, "html")
        assert "<script>" not in html
        assert "Budget &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; you" in html

    def test_invites_and_says_how_to_register(self) -> None:
        text = body(render(), "plain")
        assert "invites your organisation" in text
        assert "registration" in text
        assert "https://events.tacso.example/events/ev-42" in text
        assert 'href="https://events.tacso.example/events/ev-42"' in body(render(), "html")

    def test_shows_local_time_in_event_country(self) -> None:
        message = render(country="BA")
        expected = (
            "Tuesday, May 12, 2026, 10:00\u202fAM\u20134:00\u202fPM (Central European Summer Time)"
        )
        assert expected in body(message, "plain")
        assert expected in body(message, "html")

    def test_shows_istanbul_time_for_turkey(self) -> None:
        text = body(render(country="TR"), "plain")
        assert (
            "Tuesday, May 12, 2026, 11:00\u202fAM\u20135:00\u202fPM (Türkiye Standard Time)" in text
        )

    def test_shows_both_dates_when_the_event_spans_days(self) -> None:
        text = body(render(ends_at=STARTS + timedelta(days=1, hours=7)), "plain")
        assert (
            "Tuesday, May 12, 2026, 10:00\u202fAM \u2013 Wednesday, May 13, 2026, 5:00\u202fPM "
            "(Central European Summer Time)"
        ) in text

    def test_local_date_can_differ_from_the_utc_date(self) -> None:
        starts = datetime(2026, 5, 11, 22, 30, tzinfo=UTC)
        text = body(render(starts_at=starts, ends_at=starts + timedelta(hours=2)), "plain")
        assert (
            "Tuesday, May 12, 2026, 12:30\u202fAM\u20132:30\u202fAM (Central European Summer"
            in text
        )

    def test_shows_type_and_topic_labels(self) -> None:
        message = render(type="information_event", topics=["human-rights", "gender-equality"])
        for text in (body(message, "plain"), body(message, "html")):
            assert "Information event" in text
            assert "Human rights, Gender equality" in text

    def test_shows_the_venue(self) -> None:
        message = render()
        for text in (body(message, "plain"), body(message, "html")):
            assert "Dom kulture, Trg kralja Tomislava 1, Čapljina" in text

    def test_venue_without_address(self) -> None:
        text = body(
            render(venue={"name": "Dom kulture", "address": None, "city": "Mostar"}), "plain"
        )
        assert "Dom kulture, Mostar" in text

    def test_shows_the_online_link_when_there_is_no_venue(self) -> None:
        message = render(venue=None, online_url="https://meet.example/abc")
        assert "https://meet.example/abc" in body(message, "plain")
        assert 'href="https://meet.example/abc"' in body(message, "html")
        assert "Where:" not in body(message, "plain")

    def test_shows_the_organiser(self) -> None:
        text = body(render(), "plain")
        assert "TACSO Resource Centre BiH <rc@tacso-ba.example>" in text

    def test_shows_the_description_when_there_is_one(self) -> None:
        message = render()
        assert "A day on monitoring human rights." in body(message, "plain")
        assert "Bring your laptop." in body(message, "html")

    def test_leaves_out_a_missing_description(self) -> None:
        assert "None" not in body(render(description=None), "plain")

    def test_long_description_lines_are_wrapped(self) -> None:
        message = render(description="word " * 400)
        assert max(len(line) for line in body(message, "plain").splitlines()) <= 100

    def test_an_absurdly_long_line_still_makes_a_valid_message(self) -> None:
        url = "https://events.tacso.example/events/" + "x" * 2000
        prepared = prepare_message(make_event(url=url), MessageKind.INVITATION, SENDER)
        raw = prepared.for_recipient(recipient(TRICKY_NAME))
        assert max(len(line) for line in raw.split(b"\r\n")) < 998
        message = parse(raw)
        assert url in body(message, "plain")
        assert f"Dear {TRICKY_NAME}," in body(message, "plain")
        assert "Dear Žene &amp; &quot;Mladi&quot; &lt;BiH&gt;," in body(message, "html")
        assert message["X-TACSO-Organisation-Id"] == "org-7"
        assert calendar_part(message) is not None


class TestPressNotice:
    def test_is_text_and_html_without_calendar(self) -> None:
        message = render(MessageKind.PRESS_NOTICE)
        assert message.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        assert calendar_part(message) is None

    def test_is_written_for_journalists(self) -> None:
        message = render(MessageKind.PRESS_NOTICE)
        for text in (body(message, "plain"), body(message, "html")):
            assert "for immediate release" in text.lower()
            assert "invites you" not in text
        assert "Media contact: TACSO Resource Centre BiH, rc@tacso-ba.example" in body(
            message, "plain"
        )

    def test_says_what_when_where_and_links_the_event(self) -> None:
        text = body(render(MessageKind.PRESS_NOTICE, country="TR"), "plain")
        assert "Workshop: Ljudska prava — radionica, Čapljina" in text
        assert (
            "Tuesday, May 12, 2026, 11:00\u202fAM\u20135:00\u202fPM (Türkiye Standard Time)" in text
        )
        assert "Dom kulture, Trg kralja Tomislava 1, Čapljina" in text
        assert "https://events.tacso.example/events/ev-42" in text

    def test_greets_the_newsroom_with_escaping(self) -> None:
        message = render(MessageKind.PRESS_NOTICE, to=recipient(TRICKY_NAME))
        assert f"Dear {TRICKY_NAME}," in body(message, "plain")
        assert "Dear Žene &amp; &quot;Mladi&quot; &lt;BiH&gt;," in body(message, "html")


class TestCalendar:
    def attached(self, **changes: Any) -> icalendar.Calendar:
        """The calendar attached to the invitation for an event with ``changes``."""
        part = calendar_part(render(MessageKind.INVITATION, **changes))
        assert part is not None
        return vevent_of(part.get_content())

    def test_attachment_is_a_request(self) -> None:
        calendar = self.attached()
        assert calendar["METHOD"] == "REQUEST"
        assert calendar["VERSION"] == "2.0"
        assert calendar["PRODID"]

    def test_uid_is_stable_per_event(self) -> None:
        event = the_vevent(self.attached())
        assert event["UID"] == ical_uid("ev-42", DOMAIN) == "event-ev-42@tacso.example"
        later = the_vevent(self.attached(revision=4))
        assert later["UID"] == event["UID"]

    def test_times_are_the_utc_times(self) -> None:
        event = the_vevent(self.attached(country="TR"))
        assert event.decoded("DTSTART") == STARTS
        assert event.decoded("DTEND") == ENDS
        assert event["DTSTART"].to_ical() == b"20260512T080000Z"
        assert event["DTEND"].to_ical() == b"20260512T140000Z"

    def test_sequence_is_revision_minus_one(self) -> None:
        assert the_vevent(self.attached(revision=1))["SEQUENCE"] == 0
        assert the_vevent(self.attached(revision=5))["SEQUENCE"] == 4

    def test_describes_the_event(self) -> None:
        event = the_vevent(self.attached())
        assert event["SUMMARY"] == "Ljudska prava — radionica, Čapljina"
        assert "A day on monitoring human rights." in str(event["DESCRIPTION"])
        assert event["URL"] == "https://events.tacso.example/events/ev-42"
        assert event["STATUS"] == "CONFIRMED"
        assert isinstance(event.decoded("DTSTAMP"), datetime)

    def test_location_is_the_venue(self) -> None:
        event = the_vevent(self.attached())
        assert event["LOCATION"] == "Dom kulture, Trg kralja Tomislava 1, Čapljina"

    def test_location_is_the_online_link_without_venue(self) -> None:
        event = the_vevent(self.attached(venue=None, online_url="https://meet.example/abc"))
        assert event["LOCATION"] == "https://meet.example/abc"

    def test_organizer_is_the_organiser(self) -> None:
        organizer = the_vevent(self.attached())["ORGANIZER"]
        assert organizer == "mailto:rc@tacso-ba.example"
        assert organizer.params["CN"] == "TACSO Resource Centre BiH"

    def test_organizer_falls_back_to_the_sender(self) -> None:
        organizer = the_vevent(self.attached(organiser_email=None))["ORGANIZER"]
        assert organizer == "mailto:events@tacso.example"
        assert organizer.params["CN"] == "TACSO Resource Centre BiH"

    def test_build_calendar_alone_matches_the_attachment_but_for_the_attendee(self) -> None:
        def content_lines(calendar: icalendar.Calendar) -> list[bytes]:
            # Unfolded, without DTSTAMP: the one line that says when it was built, not what;
            # without ATTENDEE: the recipient's own line, only in their copy.
            unfolded = calendar.to_ical().replace(b"\r\n ", b"")
            return [
                line
                for line in unfolded.split(b"\r\n")
                if not line.startswith((b"DTSTAMP", b"ATTENDEE"))
            ]

        alone = vevent_of(build_calendar(make_event(), DOMAIN))
        attached = self.attached()
        assert content_lines(alone) == content_lines(attached)
        assert "ATTENDEE" not in the_vevent(alone)
        assert b"UID:event-ev-42@tacso.example" in content_lines(alone)


class TestCorrelationId:
    def test_every_copy_carries_the_correlation_id_of_its_event(self) -> None:
        prepared = prepare_message(
            make_event(), MessageKind.INVITATION, SENDER, DOMAIN, correlation_id="req-1"
        )
        for who in (recipient(), recipient(organisation_id="org-8", email="b@zdravo.example")):
            assert parse(prepared.for_recipient(who))["X-Correlation-ID"] == "req-1"

    def test_a_message_without_one_has_no_such_header(self) -> None:
        assert render()["X-Correlation-ID"] is None

    def test_a_forged_id_never_reaches_a_header(self) -> None:
        prepared = prepare_message(
            make_event(), MessageKind.INVITATION, SENDER, DOMAIN, correlation_id="a\r\nBcc: x@y"
        )
        message = parse(prepared.for_recipient(recipient()))
        assert message["Bcc"] is None
        assert "\n" not in message["X-Correlation-ID"]
