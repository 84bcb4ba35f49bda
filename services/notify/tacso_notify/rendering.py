"""Email rendering for published events: invitations to CSOs and press notices to the media.

A message is rendered and flattened once per (event, kind) by :func:`prepare_message`; the
result is personalised per recipient by splicing bytes (:meth:`PreparedMessage.for_recipient`),
because a mailing goes to tens of thousands of organisations and must run at thousands per
second. To make the splice safe the text and HTML parts travel as 8bit UTF-8, so the
placeholders in them survive flattening verbatim and the recipient's name can be dropped in
as plain UTF-8 bytes.
"""

from __future__ import annotations

import binascii
import functools
import html
import re
import secrets
import textwrap
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from typing import Any

import icalendar
import jinja2

from tacso_notify.addressing import SmtpAddress, UnsendableAddress, smtp_address
from tacso_notify.domain import MessageKind, Recipient, Sender
from tacso_notify.i18n import (
    DEFAULT_LANGUAGE,
    LOCALES,
    N_,
    country_name,
    format_when,
    gettext_for,
    language_name,
    language_of,
    translations,
)
from tacso_notify.unsubscribe import UnsubscribeLinks
from tacso_shared import correlation
from tacso_shared.contracts import EventPublished, Venue
from tacso_shared.vocabulary import COUNTRIES, EVENT_TYPES, TOPICS

__all__ = [
    "PreparedMessage",
    "build_calendar",
    "ical_uid",
    "prepare_message",
]

PRODID = "-//TACSO//Events//EN"

# RFC 5322 hard limit is 998 octets per line without CRLF; stay clear of it.
_MAX_LINE = 990
# Names longer than this are wrapped in the body so the greeting line stays short.
_GREETING_WRAP = 120
# Longest name sent through formataddr unfolded; longer ones go through encoded words, which fold.
_ASCII_NAME_UNFOLDED = 200
# Bytes of UTF-8 per RFC 2047 encoded word: 45 bytes -> 60 base64 chars -> a 72-char word,
# under the 75 the RFC allows.
_ENCODED_WORD_BYTES = 45

_EN_DASH = "\u2013"  # spelled as an escape: ruff flags the literal character as ambiguous
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# A plain addr-spec: nothing that could end the address or start another header.
_MAILBOX = re.compile(r"[^\s<>()\[\],;:\\\"@]+@[^\s<>()\[\],;:\\\"@]+")

# Placeholders for the greeting name: random so no event text can contain them, and letters and
# digits only so neither autoescaping nor any header/body encoding alters them.
_TEXT_TOKEN = f"TACSO{secrets.token_hex(12)}TEXTNAME"
_HTML_TOKEN = f"TACSO{secrets.token_hex(12)}HTMLNAME"
# The recipient's preferences link (text and HTML alike: a signed token needs no escaping).
_LINK_TOKEN = f"TACSO{secrets.token_hex(12)}PREFLINK"
_TEXT_TOKEN_BYTES = _TEXT_TOKEN.encode("ascii")
_HTML_TOKEN_BYTES = _HTML_TOKEN.encode("ascii")
_TOKENS = re.compile(
    b"(" + _TEXT_TOKEN_BYTES + b"|" + _HTML_TOKEN_BYTES + b"|" + _LINK_TOKEN.encode("ascii") + b")"
)
_SLOTS = {_TEXT_TOKEN_BYTES: 0, _HTML_TOKEN_BYTES: 1}
# The longest a preferences URL may add to a line over its placeholder (base URL + token).
_LINK_ALLOWANCE = 400


class PreparedMessage:
    """A message rendered once per (event, kind); personalised cheaply per recipient."""

    __slots__ = (
        "_expires_at",
        "_id_suffix",
        "_links",
        "_segments",
        "_slots",
        "_slow",
        "event_id",
        "kind",
        "revision",
        "sender",
        "subject",
    )

    kind: MessageKind
    subject: str
    sender: Sender
    event_id: str
    revision: int

    def __init__(
        self,
        *,
        kind: MessageKind,
        subject: str,
        sender: Sender,
        event_id: str,
        revision: int,
        domain: str,
        segments: Sequence[bytes] = (b"",),
        slots: Sequence[int] = (),
        slow: _Parts | None = None,
        links: UnsubscribeLinks | None = None,
    ) -> None:
        """Hold the flattened message split at the greeting placeholders (see ``prepare_message``).

        ``slots[i]`` says which name goes between ``segments[i]`` and ``segments[i + 1]``: 0 the
        plain one (text part), 1 the HTML-escaped one, 2 the preferences link. With ``slow`` the
        message is instead assembled per recipient from those parts. With ``links`` every copy
        carries its recipient's ``List-Unsubscribe`` headers and preferences link.
        """
        self.kind = kind
        self.subject = subject
        self.sender = sender
        self.event_id = event_id
        self.revision = revision
        self._id_suffix = f"@{domain}>\r\nX-TACSO-Organisation-Id: ".encode()
        self._segments = tuple(segments)
        self._slots = tuple(slots)
        self._slow = slow
        self._links = links
        self._expires_at = links.expiry() if links is not None else None

    def for_recipient(self, recipient: Recipient, address: SmtpAddress | None = None) -> bytes:
        """The full RFC 5322 message for ``recipient``, CRLF line endings, ready for SMTP.

        ``address`` is the recipient's SMTP form (computed from ``recipient.email`` if not
        given). Raises (``UnsendableAddress``, ``ValueError``, ``UnicodeError``) when this
        recipient's copy cannot be made; the fan-out fails that delivery alone.
        """
        if address is None:
            address = smtp_address(recipient.email)
        name = _clean(recipient.name)
        # Header order carries no meaning, so the personal headers simply go first.
        head = (
            b"To: "
            + _address_header(name, address.mailbox)
            + b"\r\nMessage-ID: <"
            + uuid.uuid4().hex.encode("ascii")
            + self._id_suffix
            + _ascii_header_value(recipient.organisation_id)
            + b"\r\n"
        )
        preferences = ""
        if self._links is not None and self._expires_at is not None:
            links = self._links
            token = links.token(recipient.organisation_id, recipient.language, self._expires_at)
            preferences = links.preferences_url(token)
            head += (
                b"List-Unsubscribe: <"
                + links.unsubscribe_url(token).encode("ascii")
                + b">\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            )
        name = name or recipient.email
        if len(name) > _GREETING_WRAP:
            name = textwrap.fill(name, 76, break_long_words=True)
        escaped = html.escape(name)
        if self._slow is not None:
            parts = self._slow
            text = parts.text.replace(_TEXT_TOKEN, name).replace(_LINK_TOKEN, preferences)
            body = parts.html.replace(_HTML_TOKEN, escaped).replace(_LINK_TOKEN, preferences)
            message = _assemble(parts.headers, text, body, cte=None, calendar=parts.calendar)
            return head + message.as_bytes(policy=SMTP)
        # The spliced name lands in a CRLF message: its own line breaks must be CRLF too.
        values = (
            name.replace("\n", "\r\n").encode("utf-8"),
            escaped.replace("\n", "\r\n").encode("utf-8"),
            preferences.encode("ascii"),
        )
        segments = self._segments
        out = [head, segments[0]]
        for index, slot in enumerate(self._slots, start=1):
            out.append(values[slot])
            out.append(segments[index])
        return b"".join(out)


@dataclass(frozen=True)
class _Parts:
    """A rendered message before MIME assembly: its common headers and its body parts."""

    headers: EmailMessage
    text: str
    html: str
    calendar: str | None


def ical_uid(event_id: str, domain: str = "tacso.local") -> str:
    """The iCalendar UID of an event: stable over revisions so calendars update, not duplicate."""
    return f"event-{event_id}@{domain}"


def build_calendar(
    event: EventPublished,
    domain: str = "tacso.local",
    *,
    sender: Sender | None = None,
    language: str = DEFAULT_LANGUAGE,
) -> bytes:
    """The iCalendar ``METHOD:REQUEST`` object for an event, as attached to invitations.

    The organiser is the event's organiser; without an organiser email it is ``sender`` (or
    ``events@<domain>``), because iTIP requests must name an organiser.
    """
    start = _aware(event.starts_at).astimezone(UTC)
    end = _aware(event.ends_at).astimezone(UTC)
    text = event.text_in(language_of(language))
    description = text.description or ""
    details = f"{gettext_for(language, 'More information and registration:')} {event.url}"

    vevent = icalendar.Event()
    vevent.add("uid", ical_uid(str(event.event_id), domain))
    # SEQUENCE starts at 0 while revisions start at 1; each new revision supersedes the last.
    vevent.add("sequence", int(event.revision) - 1)
    vevent.add("dtstamp", datetime.now(UTC).replace(microsecond=0))
    vevent.add("dtstart", start)
    vevent.add("dtend", end)
    vevent.add("summary", text.title)
    vevent.add("description", f"{description}\n\n{details}" if description else details)
    location = _location(event)
    if location:
        vevent.add("location", location)
    vevent.add("url", event.url)
    organiser_email = event.organiser_email
    if not organiser_email:
        organiser_email = sender.address if sender is not None else f"events@{domain}"
    vevent.add("organizer", f"mailto:{organiser_email}", parameters={"CN": event.organiser_name})
    vevent.add("status", "CONFIRMED")

    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "REQUEST")
    calendar.add_component(vevent)
    result: bytes = calendar.to_ical()
    return result


def prepare_message(
    event: EventPublished,
    kind: MessageKind,
    sender: Sender,
    domain: str = "tacso.local",
    language: str = DEFAULT_LANGUAGE,
    correlation_id: str | None = None,
    links: UnsubscribeLinks | None = None,
) -> PreparedMessage:
    """Render ``kind`` for ``event`` in ``language`` once; ``for_recipient`` personalises it.

    ``correlation_id``: the id of the request that published the event, set as
    ``X-Correlation-ID`` on every copy so a mail can be traced back through the logs.
    ``links``: each copy gets its recipient's unsubscribe headers and preferences link.
    """
    kind = MessageKind(kind)
    language = language_of(language)
    title = " ".join(event.text_in(language).title.split())
    subject = gettext_for(language, _SUBJECTS[kind]) % {"title": title}
    context = {
        **_context(event, language),
        "subject": subject,
        "lang": language,
        "preferences_url": _LINK_TOKEN if links is not None else None,
    }
    environment = _environment(language)
    text = environment.get_template(f"{kind.value}.txt").render(context)
    body = environment.get_template(f"{kind.value}.html").render(context)

    template = EmailMessage(policy=SMTP)
    template["From"] = Address(display_name=sender.name, addr_spec=sender.address)
    template["Subject"] = subject
    template["Date"] = format_datetime(datetime.now(UTC).replace(microsecond=0))
    template["MIME-Version"] = "1.0"
    template["X-TACSO-Event-Id"] = str(event.event_id)
    template["X-TACSO-Revision"] = str(event.revision)
    template["X-TACSO-Kind"] = kind.value
    if correlation_id is not None:
        # Through accept(): a forged id (line breaks, say) never reaches a header.
        template[correlation.HEADER] = correlation.accept(correlation_id)
    calendar = (
        build_calendar(event, domain, sender=sender, language=language).decode("utf-8")
        if kind is MessageKind.INVITATION
        else None
    )
    parts = _Parts(template, text, body, calendar)
    prepared = functools.partial(
        PreparedMessage,
        kind=kind,
        subject=subject,
        sender=sender,
        event_id=str(event.event_id),
        revision=int(event.revision),
        domain=domain,
        links=links,
    )
    flat = _assemble(template, text, body, cte="8bit", calendar=calendar).as_bytes(policy=SMTP)
    allowance = _LINK_ALLOWANCE if links is not None else 0
    if max(len(line) for line in flat.split(b"\r\n")) > _MAX_LINE - allowance:
        # A pathological line (a huge URL, say) cannot go as 8bit; let the email package pick
        # quoted-printable or base64 and pay for a full flatten per recipient instead.
        return prepared(slow=parts)
    pieces = _TOKENS.split(flat)
    slots = [_SLOTS.get(token, 2) for token in pieces[1::2]]
    return prepared(segments=pieces[0::2], slots=slots)


#: Subjects by kind (translated: the msgids are extracted from here).
_SUBJECTS = {
    MessageKind.INVITATION: N_("Invitation: %(title)s"),
    MessageKind.PRESS_NOTICE: N_("Press notice: %(title)s"),
}


@functools.lru_cache(maxsize=len(LOCALES))
def _environment(language: str) -> jinja2.Environment:
    """The Jinja2 environment for the message templates in ``language``, made on first use."""
    environment = jinja2.Environment(
        extensions=["jinja2.ext.i18n"],
        loader=jinja2.PackageLoader("tacso_notify", "templates"),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html",), default_for_string=False, default=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["venue_line"] = _venue_line
    environment.install_gettext_translations(  # type: ignore[attr-defined]
        translations(language), newstyle=True
    )
    return environment


def _assemble(
    headers: EmailMessage, text: str, body: str, *, cte: str | None, calendar: str | None
) -> EmailMessage:
    """The MIME message: ``headers``, then text and HTML as alternatives, then the .ics if any."""
    message = EmailMessage(policy=SMTP)
    for name, value in headers.items():
        message[name] = value
    message.set_content(text, cte=cte)
    message.add_alternative(body, subtype="html", cte=cte)
    if calendar is not None:
        message.make_mixed()
        message.add_attachment(
            calendar, subtype="calendar", filename="invite.ics", params={"method": "REQUEST"}
        )
    for part in message.walk():
        # set_content marks every part it makes; MIME-Version belongs on the message only.
        if part is not message:
            del part["MIME-Version"]
    return message


def _context(event: EventPublished, language: str) -> dict[str, Any]:
    """The template variables for ``event`` in ``language``: labels, local time, paragraphs."""
    country = COUNTRIES[event.country]
    venue = event.venue
    text = event.text_in(language)

    def label(vocabulary: dict[str, str], slug: str) -> str:
        return gettext_for(language, vocabulary[slug]) if slug in vocabulary else slug

    return {
        "greeting_name": _TEXT_TOKEN,
        "greeting_name_html": _HTML_TOKEN,
        "title": " ".join(text.title.split()),
        "original_language": (
            None if text.language == language else language_name(text.language, language)
        ),
        "type_label": label(EVENT_TYPES, event.type),
        "topics": [label(TOPICS, slug) for slug in event.topics or ()],
        "when": format_when(
            _aware(event.starts_at), _aware(event.ends_at), country.timezone, language
        ),
        "country": country_name(event.country, language),
        "venue": venue,
        "online_url": event.online_url,
        "capacity": event.capacity,
        "organiser_name": event.organiser_name,
        "organiser_email": event.organiser_email,
        "url": event.url,
        "description": _paragraphs(text.description),
    }


def _paragraphs(description: str | None) -> list[list[str]]:
    """Description as paragraphs of lines, each line wrapped to 76 columns (lines end up short)."""
    if not description:
        return []
    paragraphs = re.split(r"\n\s*\n", description.replace("\r\n", "\n").replace("\r", "\n").strip())
    return [
        [
            textwrap.fill(line, 76, break_long_words=False, break_on_hyphens=False)
            for line in paragraph.split("\n")
        ]
        for paragraph in paragraphs
    ]


def _location(event: EventPublished) -> str:
    """``name, address, city`` of the venue, else the online link, else empty."""
    venue = event.venue
    if venue:
        return _venue_line(venue)
    return str(event.online_url or "")


def _venue_line(venue: Venue) -> str:
    """``name, address, city``, leaving out what is missing."""
    return ", ".join(part for part in (venue.name, venue.address, venue.city) if part)


def _aware(moment: datetime) -> datetime:
    """``moment``, which must carry its offset (the contract loads only aware times)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: event times must carry an offset")
    return moment


def _clean(text: str) -> str:
    """``text`` without control characters and line breaks, which must not reach headers."""
    if text.isprintable():
        return text.strip()
    return " ".join(_CONTROL.sub(" ", text).split())


def _address_header(name: str, email: str) -> bytes:
    """``name <email>`` for a To header: quoted if ASCII, RFC 2047 encoded words otherwise.

    ``email`` is an SMTP mailbox (IDNA domain); a UTF-8 local part goes into the header as
    UTF-8 (RFC 6532), which only a server offering SMTPUTF8 is sent.
    """
    if _MAILBOX.fullmatch(email) is None:
        raise UnsendableAddress(f"cannot address {email!r}")
    if name.isascii() and len(name) <= _ASCII_NAME_UNFOLDED:
        if not name:
            return email.encode("utf-8")
        if email.isascii():
            return formataddr((name, email)).encode("ascii")
        # formataddr quotes the name as needed; the UTF-8 mailbox then goes in as it is.
        display = formataddr((name, "mailbox@invalid"))
        return (display[: display.rindex("<")] + f"<{email}>").encode("utf-8")
    data = name.encode("utf-8")
    words = []
    start = 0
    while start < len(data):
        cut = min(start + _ENCODED_WORD_BYTES, len(data))
        # Never split inside a UTF-8 sequence: each encoded word must decode on its own.
        while cut < len(data) and data[cut] & 0xC0 == 0x80:
            cut -= 1
        words.append(b"=?utf-8?b?" + binascii.b2a_base64(data[start:cut], newline=False) + b"?=")
        start = cut
    return b"\r\n ".join(words) + b" <" + email.encode("utf-8") + b">"


def _ascii_header_value(value: str) -> bytes:
    """A header value that is an identifier: must be printable ASCII."""
    if not value.isascii() or not value.isprintable():
        raise ValueError(f"identifier {value!r} is not printable ASCII")
    return value.encode("ascii")
