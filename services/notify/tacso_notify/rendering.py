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
from zoneinfo import ZoneInfo

import icalendar
import jinja2
from babel import Locale
from babel.dates import format_date, format_time, get_timezone_name, match_skeleton

from tacso_notify.addressing import SmtpAddress, UnsendableAddress, smtp_address
from tacso_notify.domain import PUBLICATION_KINDS, MessageKind, Recipient, Sender
from tacso_notify.i18n import (
    DEFAULT_LANGUAGE,
    LOCALES,
    N_,
    country_name,
    format_when,
    gettext_for,
    language_name,
    language_of,
    locale_of,
    translations,
)
from tacso_notify.unsubscribe import UnsubscribeLinks
from tacso_shared import correlation
from tacso_shared.calendar import ical_uid
from tacso_shared.contracts import (
    EventCancelled,
    EventPublished,
    EventUpdated,
    RegistrationChanged,
    ReminderDue,
    Venue,
)
from tacso_shared.links import LinkSigner, LinkToken
from tacso_shared.vocabulary import COUNTRIES, EVENT_TYPES, TOPICS

__all__ = [
    "PreparedMessage",
    "RsvpLinks",
    "build_calendar",
    "describe_changes",
    "ical_uid",
    "prepare_message",
    "prepare_notice",
    "prepare_registration_message",
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
# The same for the recipient's personal link token and the .ics ATTENDEE line (its own line).
_LINK_TOKEN = f"TACSO{secrets.token_hex(12)}LINKTOKEN"
_ATTENDEE_TOKEN = f"TACSO{secrets.token_hex(12)}ATTENDEE"
# The recipient's preferences link (text and HTML alike: a signed token needs no escaping).
_PREF_TOKEN = f"TACSO{secrets.token_hex(12)}PREFLINK"
#: Placeholder -> slot number (which per-recipient value replaces it).
_SLOT_OF = {
    token.encode("ascii"): slot
    for slot, token in enumerate(
        (_TEXT_TOKEN, _HTML_TOKEN, _LINK_TOKEN, _ATTENDEE_TOKEN, _PREF_TOKEN)
    )
}
# The longest a personal URL may add to a line over its placeholder (base URL + token).
_LINK_ALLOWANCE = 400
_TOKENS = re.compile(b"(" + b"|".join(_SLOT_OF) + b")")
#: iCalendar lines are folded at 75 octets (RFC 5545, 3.1).
_ICS_LINE = 75


@dataclass(frozen=True)
class RsvpLinks:
    """Makes each recipient's personal RSVP link: ``<PUBLIC_BASE_URL>/rsvp/<signed token>``."""

    signer: LinkSigner
    base_url: str

    def token(
        self, organisation_id: str, event_id: str, expires_at: datetime, language: str
    ) -> str:
        """The signed token of one organisation's link to one event (valid until it ends)."""
        return self.signer.sign(
            LinkToken(
                purpose="rsvp",
                organisation_id=organisation_id,
                event_id=event_id,
                expires_at=expires_at,
                language=language,
            )
        )

    def page(self, token: str) -> str:
        """The URL of the RSVP page of ``token``."""
        return f"{self.base_url.rstrip('/')}/rsvp/{token}"


@dataclass(frozen=True)
class _Personal:
    """What a message carries per recipient besides the name: their link and .ics attendee."""

    event_id: str
    expires_at: datetime
    language: str
    links: RsvpLinks | None = None
    #: The recipient's ATTENDEE line in the .ics: its PARTSTAT and RSVP (None: no such line).
    partstat: str | None = None
    rsvp: bool = False


class PreparedMessage:
    """A message rendered once per (event, kind); personalised cheaply per recipient."""

    __slots__ = (
        "_id_suffix",
        "_personal",
        "_segments",
        "_slots",
        "_slow",
        "_unsubscribe",
        "_unsubscribe_expires",
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
        personal: _Personal | None = None,
        unsubscribe: UnsubscribeLinks | None = None,
    ) -> None:
        """Hold the flattened message split at the greeting placeholders (see ``prepare_message``).

        ``slots[i]`` says which value goes between ``segments[i]`` and ``segments[i + 1]``: 0 the
        plain name (text part), 1 the HTML-escaped one, 2 the personal link's token, 3 the .ics
        ATTENDEE line (made from ``personal``), 4 the preferences link. With ``slow`` the message
        is instead assembled per recipient from those parts. With ``unsubscribe`` every copy
        carries its recipient's ``List-Unsubscribe`` headers (RFC 8058) and preferences link.
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
        self._personal = personal
        self._unsubscribe = unsubscribe
        self._unsubscribe_expires = unsubscribe.expiry() if unsubscribe is not None else None

    def for_recipient(self, recipient: Recipient, address: SmtpAddress | None = None) -> bytes:
        """The full RFC 5322 message for ``recipient``, CRLF line endings, ready for SMTP.

        ``address`` is the recipient's SMTP form (computed from ``recipient.email`` if not
        given). Raises (``UnsendableAddress``, ``ValueError``, ``UnicodeError``) when this
        recipient's copy cannot be made; the fan-out fails that delivery alone.
        """
        if address is None:
            address = smtp_address(recipient.email)
        name = _clean(recipient.name)
        token, attendee = self._personal_values(recipient, name, address.mailbox)
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
        if self._unsubscribe is not None and self._unsubscribe_expires is not None:
            links = self._unsubscribe
            signed = links.token(
                recipient.organisation_id, recipient.language, self._unsubscribe_expires
            )
            preferences = links.preferences_url(signed)
            head += (
                b"List-Unsubscribe: <"
                + links.unsubscribe_url(signed).encode("ascii")
                + b">\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            )
        name = name or recipient.email
        if len(name) > _GREETING_WRAP:
            name = textwrap.fill(name, 76, break_long_words=True)
        escaped = html.escape(name)
        if self._slow is not None:
            parts = self._slow
            text = (
                parts.text.replace(_TEXT_TOKEN, name)
                .replace(_LINK_TOKEN, token)
                .replace(_PREF_TOKEN, preferences)
            )
            body = (
                parts.html.replace(_HTML_TOKEN, escaped)
                .replace(_LINK_TOKEN, token)
                .replace(_PREF_TOKEN, preferences)
            )
            calendar = parts.calendar
            if calendar is not None:
                calendar = calendar.replace(_ATTENDEE_TOKEN, attendee)
            message = _assemble(
                parts.headers, text, body, cte=None, calendar=calendar, method=parts.method
            )
            return head + message.as_bytes(policy=SMTP)
        # The spliced name lands in a CRLF message: its own line breaks must be CRLF too.
        values = (
            name.replace("\n", "\r\n").encode("utf-8"),
            escaped.replace("\n", "\r\n").encode("utf-8"),
            token.encode("ascii"),
            attendee.encode("utf-8"),
            preferences.encode("ascii"),
        )
        segments = self._segments
        out = [head, segments[0]]
        for index, slot in enumerate(self._slots, start=1):
            out.append(values[slot])
            out.append(segments[index])
        return b"".join(out)

    def _personal_values(self, recipient: Recipient, name: str, mailbox: str) -> tuple[str, str]:
        """The recipient's link token and .ics ATTENDEE line (empty when the message has none)."""
        personal = self._personal
        if personal is None:
            return "", ""
        token = ""
        if personal.links is not None:
            token = personal.links.token(
                recipient.organisation_id,
                personal.event_id,
                personal.expires_at,
                personal.language,
            )
        attendee = ""
        if personal.partstat is not None:
            attendee = _attendee_line(name, mailbox, personal.partstat, personal.rsvp)
        return token, attendee


@dataclass(frozen=True)
class _Parts:
    """A rendered message before MIME assembly: its common headers and its body parts."""

    headers: EmailMessage
    text: str
    html: str
    calendar: str | None
    #: The iTIP method of the calendar part (REQUEST, CANCEL).
    method: str = "REQUEST"


def build_calendar(
    event: EventPublished,
    domain: str = "tacso.local",
    *,
    sender: Sender | None = None,
    language: str = DEFAULT_LANGUAGE,
    attendee: bool = False,
    method: str = "REQUEST",
) -> bytes:
    """The iCalendar object for an event: ``METHOD:REQUEST`` as attached to invitations,
    confirmations and update notices, or ``METHOD:CANCEL`` (``STATUS:CANCELLED``) for a
    cancellation.

    UID is the event's whatever its revision, SEQUENCE its revision - 1: a calendar that got the
    invitation moves (or removes) that entry instead of adding another. The organiser is the
    event's organiser; without an organiser email it is ``sender`` (or ``events@<domain>``),
    because iTIP messages must name an organiser. With ``attendee`` the
    event has a placeholder line that :class:`PreparedMessage` replaces with the recipient's
    ``ATTENDEE`` (RFC 5546 requires one in a REQUEST).
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
    vevent.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")

    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    calendar.add_component(vevent)
    result: bytes = calendar.to_ical()
    if attendee:
        end_event = b"END:VEVENT\r\n"
        result = result.replace(end_event, _ATTENDEE_TOKEN.encode("ascii") + b"\r\n" + end_event)
    return result


def prepare_message(
    event: EventPublished,
    kind: MessageKind,
    sender: Sender,
    domain: str = "tacso.local",
    language: str = DEFAULT_LANGUAGE,
    correlation_id: str | None = None,
    links: RsvpLinks | None = None,
    unsubscribe: UnsubscribeLinks | None = None,
) -> PreparedMessage:
    """Render ``kind`` for ``event`` in ``language`` once; ``for_recipient`` personalises it.

    ``correlation_id``: the id of the request that published the event, set as
    ``X-Correlation-ID`` on every copy so a mail can be traced back through the logs.
    ``links``: an invitation then carries each recipient's two RSVP links. ``unsubscribe``: each
    copy gets its recipient's unsubscribe headers and preferences link.
    """
    kind = MessageKind(kind)
    if kind not in PUBLICATION_KINDS:
        raise ValueError(f"{kind.value} is rendered from its own message: use prepare_notice")
    language = language_of(language)
    title = " ".join(event.text_in(language).title.split())
    subject = gettext_for(language, _SUBJECTS[kind]) % {"title": title}
    context = _context(event, language)
    invitation = kind is MessageKind.INVITATION
    if invitation and links is not None:
        context["rsvp_url"] = links.page(_LINK_TOKEN)
    calendar = (
        build_calendar(event, domain, sender=sender, language=language, attendee=True)
        if invitation
        else None
    )
    personal = _Personal(
        event_id=str(event.event_id),
        expires_at=_aware(event.ends_at),
        language=language,
        links=links if invitation else None,
        partstat="NEEDS-ACTION" if invitation else None,
        rsvp=True,
    )
    return _prepare(
        event,
        kind,
        kind.value,
        subject,
        context,
        sender,
        domain,
        correlation_id,
        calendar,
        personal,
        unsubscribe=unsubscribe,
    )


def prepare_registration_message(
    change: RegistrationChanged,
    kind: MessageKind,
    sender: Sender,
    domain: str = "tacso.local",
    language: str = DEFAULT_LANGUAGE,
    correlation_id: str | None = None,
    links: RsvpLinks | None = None,
    timezone: str | None = None,
) -> PreparedMessage:
    """Render the mail about a registration's status change (``kind``) in ``language``.

    A confirmation carries the event's ``.ics`` (the invitation's UID and SEQUENCE, the
    registrant as an ATTENDEE who accepted); an offer its claim deadline in ``timezone`` (the
    reader's; default the event country's). Every one carries the registrant's personal link.
    """
    kind = MessageKind(kind)
    language = language_of(language)
    event = change.event
    title = " ".join(event.text_in(language).title.split())
    subject = gettext_for(language, _SUBJECTS[kind]) % {"title": title}
    zone = timezone or COUNTRIES[event.country].timezone
    context = {
        **_context(event, language),
        "status": change.status,
        "seats": change.seats,
        "position": change.position,
        "deadline": (
            None
            if change.offer_expires_at is None
            else _format_moment(_aware(change.offer_expires_at), zone, language)
        ),
        "rsvp_url": links.page(_LINK_TOKEN) if links is not None else None,
    }
    confirmed = kind is MessageKind.REGISTRATION_CONFIRMED
    calendar = (
        build_calendar(event, domain, sender=sender, language=language, attendee=True)
        if confirmed
        else None
    )
    personal = _Personal(
        event_id=str(event.event_id),
        expires_at=_aware(event.ends_at),
        language=language,
        links=links,
        partstat="ACCEPTED" if confirmed else None,
    )
    return _prepare(
        event,
        kind,
        "registration",
        subject,
        context,
        sender,
        domain,
        correlation_id,
        calendar,
        personal,
    )


def prepare_notice(
    notice: EventUpdated | EventCancelled | ReminderDue,
    sender: Sender,
    domain: str = "tacso.local",
    language: str = DEFAULT_LANGUAGE,
    correlation_id: str | None = None,
    *,
    press: bool = False,
    unsubscribe: UnsubscribeLinks | None = None,
) -> PreparedMessage:
    """An update notice, cancellation notice or reminder in ``language``, rendered once.

    ``press``: the media's wording (an update or cancellation as a press notice). Update and
    cancellation notices carry the event's ``.ics`` (same UID as the invitation, SEQUENCE =
    revision - 1): ``METHOD:REQUEST`` for an update, ``METHOD:CANCEL`` for a cancellation.
    """
    language = language_of(language)
    event = notice.event
    extra: dict[str, Any] = {}
    calendar: bytes | None = None
    method = "REQUEST"
    if isinstance(notice, EventUpdated):
        kind = MessageKind.UPDATE
        extra["changes"] = describe_changes(notice, language)
    elif isinstance(notice, EventCancelled):
        kind = MessageKind.CANCELLATION
        extra["reason"] = _paragraphs(notice.reason)
        method = "CANCEL"
    else:
        kind = MessageKind.REMINDER
        extra["seats"] = notice.seats
        press = False
    if kind is not MessageKind.REMINDER and not press:
        calendar = build_calendar(
            event, domain, sender=sender, language=language, method=method, attendee=True
        )
    template = f"{kind.value}_press" if press else kind.value
    title = " ".join(event.text_in(language).title.split())
    subject = gettext_for(language, (_PRESS_SUBJECTS if press else _SUBJECTS)[kind]) % {
        "title": title
    }
    personal = _Personal(
        event_id=str(event.event_id),
        expires_at=_aware(event.ends_at),
        language=language,
        # The .ics of an update or cancellation names the recipient as iTIP asks.
        partstat="NEEDS-ACTION" if calendar is not None else None,
    )
    return _prepare(
        event,
        kind,
        template,
        subject,
        {**_context(event, language), **extra},
        sender,
        domain,
        correlation_id,
        calendar,
        personal,
        method=method,
        unsubscribe=unsubscribe,
    )


def describe_changes(update: EventUpdated, language: str) -> list[str]:
    """What changed, in plain sentences in ``language``, dates in the event's time zone.

    "The event moves from Tuesday, 15 December to Wednesday, 16 December, same time." when only
    the day moved; the whole old and new time otherwise; then the venue and the online link.
    """
    language = language_of(language)
    event = update.event
    zone = ZoneInfo(COUNTRIES[event.country].timezone)
    locale = locale_of(language)
    lines: list[str] = []

    def say(message: str, **values: str) -> None:
        lines.append(gettext_for(language, message) % values)

    if "starts_at" in update.changed or "ends_at" in update.changed:
        old_start = _aware(update.previous_starts_at).astimezone(zone)
        old_end = _aware(update.previous_ends_at).astimezone(zone)
        new_start = _aware(event.starts_at).astimezone(zone)
        new_end = _aware(event.ends_at).astimezone(zone)
        same_time = (
            old_start.date() != new_start.date()
            and old_start.time() == new_start.time()
            and old_end.time() == new_end.time()
            and old_end.date() - old_start.date() == new_end.date() - new_start.date()
        )
        if same_time:
            say(
                N_("The event moves from %(old)s to %(new)s, same time."),
                old=_day(old_start, locale),
                new=_day(new_start, locale),
            )
        else:
            tz = COUNTRIES[event.country].timezone
            say(
                N_("The event moves from %(old)s to %(new)s."),
                old=format_when(old_start, old_end, tz, language),
                new=format_when(new_start, new_end, tz, language),
            )
    if "venue" in update.changed:
        old_venue, new_venue = update.previous_venue, event.venue
        if old_venue and new_venue:
            say(
                N_("The venue changes from %(old)s to %(new)s."),
                old=_venue_line(old_venue),
                new=_venue_line(new_venue),
            )
        elif new_venue:
            say(N_("The event now takes place at %(new)s."), new=_venue_line(new_venue))
        elif old_venue:
            say(N_("The event no longer takes place at %(old)s."), old=_venue_line(old_venue))
    if "online_url" in update.changed:
        if update.previous_online_url and event.online_url:
            say(N_("The online link changes to %(new)s."), new=str(event.online_url))
        elif event.online_url:
            say(N_("The event can now be followed online: %(new)s"), new=str(event.online_url))
        elif update.previous_online_url:
            say(N_("The event no longer has an online link."))
    return lines


def _day(moment: datetime, locale: Locale) -> str:
    """Weekday, day and month as ``locale`` writes them ("Tuesday, December 15", "utorak, 15.
    decembar"): the locale's pattern for that skeleton, with the weekday spelled out in full."""
    skeletons = locale.datetime_skeletons
    key = match_skeleton("MMMMEd", skeletons) or "MMMMEd"
    pattern = getattr(skeletons.get(key), "pattern", "EEEE, d MMMM")
    pattern = re.sub(r"E+", "EEEE", re.sub(r"c+", "cccc", pattern))
    return format_date(moment, pattern, locale=locale)


def _prepare(
    event: EventPublished,
    kind: MessageKind,
    template_name: str,
    subject: str,
    context: dict[str, Any],
    sender: Sender,
    domain: str,
    correlation_id: str | None,
    calendar_bytes: bytes | None,
    personal: _Personal,
    method: str = "REQUEST",
    unsubscribe: UnsubscribeLinks | None = None,
) -> PreparedMessage:
    """Render the templates, set the common headers and split the message at its placeholders."""
    language = personal.language
    context = {
        "rsvp_url": None,
        **context,
        "subject": subject,
        "lang": language,
        "preferences_url": _PREF_TOKEN if unsubscribe is not None else None,
    }
    environment = _environment(language)
    text = environment.get_template(f"{template_name}.txt").render(context)
    body = environment.get_template(f"{template_name}.html").render(context)

    template = EmailMessage(policy=SMTP)
    template["From"] = Address(display_name=sender.name, addr_spec=sender.address)
    reply_to = _reply_to(event)
    if reply_to is not None:
        template["Reply-To"] = reply_to
    template["Subject"] = subject
    template["Date"] = format_datetime(datetime.now(UTC).replace(microsecond=0))
    template["MIME-Version"] = "1.0"
    template["X-TACSO-Event-Id"] = str(event.event_id)
    template["X-TACSO-Revision"] = str(event.revision)
    template["X-TACSO-Kind"] = kind.value
    if correlation_id is not None:
        # Through accept(): a forged id (line breaks, say) never reaches a header.
        template[correlation.HEADER] = correlation.accept(correlation_id)
    calendar = None if calendar_bytes is None else calendar_bytes.decode("utf-8")
    parts = _Parts(template, text, body, calendar, method)
    prepared = functools.partial(
        PreparedMessage,
        kind=kind,
        subject=subject,
        sender=sender,
        event_id=str(event.event_id),
        revision=int(event.revision),
        domain=domain,
        personal=personal,
        unsubscribe=unsubscribe,
    )
    flat = _assemble(template, text, body, cte="8bit", calendar=calendar, method=method).as_bytes(
        policy=SMTP
    )
    allowance = _LINK_ALLOWANCE if unsubscribe is not None or personal.links is not None else 0
    if max(len(line) for line in flat.split(b"\r\n")) > _MAX_LINE - allowance:
        # A pathological line (a huge URL, say) cannot go as 8bit; let the email package pick
        # quoted-printable or base64 and pay for a full flatten per recipient instead.
        return prepared(slow=parts)
    pieces = _TOKENS.split(flat)
    slots = [_SLOT_OF[token] for token in pieces[1::2]]
    return prepared(segments=pieces[0::2], slots=slots)


def _reply_to(event: EventPublished) -> Address | None:
    """The organising RC's address for replies, when known and expressible in a header."""
    if not event.organiser_email:
        return None
    try:
        address = smtp_address(event.organiser_email)
    except UnsendableAddress:
        return None
    if address.smtputf8:  # a UTF-8 local part cannot go in a plain header
        return None
    return Address(display_name=_clean(event.organiser_name), addr_spec=address.mailbox)


def _format_moment(moment: datetime, timezone: str, language: str) -> str:
    """One moment in ``timezone`` as ``language`` writes it, the zone named for people."""
    locale = locale_of(language)
    local = moment.astimezone(ZoneInfo(timezone))
    day = format_date(local, "full", locale=locale)
    time = format_time(local, "short", locale=locale)
    return f"{day}, {time} ({get_timezone_name(local, 'long', locale=locale)})"


def _attendee_line(name: str, mailbox: str, partstat: str, rsvp: bool) -> str:
    """The recipient's iCalendar ``ATTENDEE`` content line, folded (CRLF + space) at 75 octets."""
    params = f";CUTYPE=GROUP;ROLE=REQ-PARTICIPANT;PARTSTAT={partstat}"
    if rsvp:
        params += ";RSVP=TRUE"
    if name:
        # A parameter value is quoted; a DQUOTE cannot appear in it (RFC 5545, 3.1).
        params = f';CN="{name.replace(chr(34), chr(39))}"' + params
    line = f"ATTENDEE{params}:mailto:{mailbox}".encode()
    if len(line) <= _ICS_LINE:
        return line.decode("utf-8")
    pieces = []
    start, limit = 0, _ICS_LINE
    while start < len(line):
        cut = min(start + limit, len(line))
        # Never split inside a UTF-8 sequence.
        while cut < len(line) and line[cut] & 0xC0 == 0x80:
            cut -= 1
        pieces.append(line[start:cut])
        start, limit = cut, _ICS_LINE - 1  # continuation lines start with a space
    return b"\r\n ".join(pieces).decode("utf-8")


#: Subjects by kind (translated: the msgids are extracted from here).
_SUBJECTS = {
    MessageKind.INVITATION: N_("Invitation: %(title)s"),
    MessageKind.PRESS_NOTICE: N_("Press notice: %(title)s"),
    MessageKind.UPDATE: N_("Changed: %(title)s"),
    MessageKind.CANCELLATION: N_("Cancelled: %(title)s"),
    MessageKind.REMINDER: N_("Reminder: %(title)s"),
    MessageKind.REGISTRATION_CONFIRMED: N_("Registration confirmed: %(title)s"),
    MessageKind.REGISTRATION_WAITLISTED: N_("On the waiting list: %(title)s"),
    MessageKind.REGISTRATION_OFFERED: N_("A seat is free for you: %(title)s"),
    MessageKind.REGISTRATION_EXPIRED: N_("Your seat offer has expired: %(title)s"),
    MessageKind.REGISTRATION_CANCELLED: N_("Registration cancelled: %(title)s"),
    MessageKind.REGISTRATION_DECLINED: N_("Your answer is noted: %(title)s"),
}
#: Subjects of the media's wording of updates and cancellations.
_PRESS_SUBJECTS = {
    MessageKind.UPDATE: N_("Press notice, change: %(title)s"),
    MessageKind.CANCELLATION: N_("Press notice, cancellation: %(title)s"),
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
    headers: EmailMessage,
    text: str,
    body: str,
    *,
    cte: str | None,
    calendar: str | None,
    method: str = "REQUEST",
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
            calendar,
            subtype="calendar",
            filename="invite.ics",
            params={"method": method},
            cte=cte,
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
