"""The public HTML pages: an event's page and the RSVP page a personal link opens.

Server-rendered, no JavaScript, in the reader's language: ``?lang=`` (the language switcher),
else the personal link's language, else the browser's ``Accept-Language``. Styles are inline
under a per-response CSP nonce; nothing is loaded from elsewhere.

The RSVP page (``/rsvp/<token>``): the signed token (made by notify, purpose ``rsvp``) is the
capability: whoever holds the link may answer for the organisation it was made for, until the
event starts. A GET only shows (``?answer=`` preselects); a POST answers, idempotently, and
redirects back (303). Cross-site POSTs are refused: a browser says where a form was sent from
(``Sec-Fetch-Site``, ``Origin``), and a POST whose headers name another site gets a 403 page;
requests without those headers (old browsers, curl) are accepted, since the token alone is what
authorises them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlsplit
from zoneinfo import ZoneInfo

import jinja2
from babel.dates import format_date, format_time, get_timezone_name
from flask import Blueprint, Response, current_app, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from tacso_events import registrations as regs
from tacso_events.bootstrap import Events
from tacso_events.models import (
    CANCELLED,
    CONFIRMED,
    DECLINED,
    EXPIRED,
    OFFERED,
    PUBLISHED,
    WAITLISTED,
    Event,
)
from tacso_shared.i18n import (
    LOCALES,
    N_,
    Catalog,
    format_when,
    language_name,
    locale_of,
    negotiate,
)
from tacso_shared.links import BadLink, ExpiredLink, LinkSigner, LinkToken
from tacso_shared.vocabulary import COUNTRIES, EVENT_TYPES, TOPICS

TRANSLATIONS = Path(__file__).parent / "translations"
CATALOG = Catalog(TRANSLATIONS)
_LOADER = jinja2.PackageLoader("tacso_events", "templates")
RSVP = "rsvp"

pages = Blueprint("pages", __name__)


def _events() -> Events:
    events: Events = current_app.extensions["tacso_events"]
    return events


def _html_lang(language: str) -> str:
    return {"cnr": "cnr", "sr-Latn": "sr-Latn"}.get(language, language)


@dataclass(frozen=True)
class EventView:
    """An event as a reader of one language sees it."""

    title: str
    type: str
    when: str
    venue: str | None
    map_url: str | None
    online_url: str | None
    organiser: str
    topics: str
    description: str | None
    #: The language the description is shown in, named in the reader's, if not theirs.
    written_in: str | None
    original_lang: str
    seats_left: int | None


def event_view(event: Event, language: str, seats_left: int | None) -> EventView:
    """What the page shows of ``event`` to a reader of ``language``."""
    translations = CATALOG.translations(language)
    text = (event.translations or {}).get(language)
    if language == event.language or text is None:
        title, description = event.title, event.description
        written_in = (
            language_name(event.language, language)
            if description and language != event.language
            else None
        )
    else:
        title = text["title"]
        description = text.get("description") or event.description
        written_in = (
            language_name(event.language, language)
            if description and not text.get("description")
            else None
        )
    venue = None
    map_url = None
    if event.venue_name and event.venue_city:
        parts = [event.venue_name, event.venue_address, event.venue_city]
        venue = ", ".join(p for p in parts if p)
        query = ", ".join(p for p in (event.venue_address or event.venue_name, event.venue_city))
        map_url = f"https://www.openstreetmap.org/search?query={quote_plus(query)}"
    return EventView(
        title=title,
        type=translations.gettext(EVENT_TYPES.get(event.type, event.type)),
        when=format_when(
            event.starts_at, event.ends_at, COUNTRIES[event.country].timezone, language
        ),
        venue=venue,
        map_url=map_url,
        online_url=event.online_url,
        organiser=event.organiser_name,
        topics=", ".join(translations.gettext(TOPICS.get(t, t)) for t in event.topics),
        description=description,
        written_in=written_in,
        original_lang=_html_lang(event.language),
        seats_left=seats_left,
    )


def _moment(when: datetime, timezone: str, language: str) -> str:
    """A moment as ``language`` writes it, in the event's time zone, the zone named for people."""
    locale = locale_of(language)
    local = when.astimezone(ZoneInfo(timezone))
    day = format_date(local, "full", locale=locale)
    time = format_time(local, "short", locale=locale)
    return f"{day}, {time} ({get_timezone_name(local, 'long', locale=locale)})"


def _render(template: str, language: str, status: int = 200, **context: Any) -> Response:
    nonce = secrets.token_urlsafe(16)
    environment = CATALOG.environment(_LOADER, language)
    languages = [
        {
            "code": code,
            "name": language_name(code, code),
            "html_lang": _html_lang(code),
            "current": code == language,
        }
        for code in LOCALES
    ]
    body = environment.get_template(f"pages/{template}").render(
        nonce=nonce, html_lang=_html_lang(language), languages=languages, **context
    )
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["Content-Language"] = _html_lang(language)
    response.headers["Cache-Control"] = "no-store" if template == "rsvp.html" else "no-cache"
    response.vary.add("Accept-Language")
    return response


def _problem(language: str, status: int, title: str, text: str) -> Response:
    gettext = CATALOG.translations(language).gettext
    return _render(
        "problem.html", language, status, page_title=gettext(title), problem=gettext(text)
    )


def _not_found(language: str) -> Response:
    return _problem(
        language,
        404,
        N_("Event not found"),
        N_("We cannot find this event. It may have been removed, or the address is incomplete."),
    )


def _chosen_language() -> str | None:
    chosen = request.args.get("lang")
    return chosen if chosen in LOCALES else None


@pages.get("/events/<string:event_id>")
def event_page(event_id: str) -> Response:
    """An event's public page."""
    language = negotiate(_chosen_language(), request.headers.get("Accept-Language"))
    with _events().sessions() as session:
        event = session.get(Event, event_id)
        if event is None or event.status not in (PUBLISHED, CANCELLED):
            return _not_found(language)
        seats_left = regs.occupancy(session, event).seats_left
    view = event_view(event, language, seats_left)
    return _render(
        "event.html",
        language,
        page_title=view.title,
        view=view,
        cancelled=event.status == CANCELLED,
    )


def _token(raw: str) -> LinkToken:
    return LinkSigner(_events().settings.common.link_signing_keys).load(raw, (RSVP,))


def _state(language: str, status: str | None, seats: int, position: int | None, offer: str) -> str:
    gettext = CATALOG.translations(language).gettext
    if status == CONFIRMED:
        return gettext("Your registration is confirmed. Seats: %(seats)s.") % {"seats": seats}
    if status == WAITLISTED:
        return gettext("You are on the waitlist, in place %(position)s.") % {"position": position}
    if status == OFFERED:
        return gettext("A seat has been freed for you. Claim it by %(when)s.") % {"when": offer}
    if status == DECLINED:
        return gettext("You have said you cannot attend.")
    if status == CANCELLED:
        return gettext("Your registration was cancelled.")
    if status == EXPIRED:
        return gettext("The seat offer you had has expired.")
    return gettext("You have not answered yet.")


def _cross_site() -> bool:
    """True when the browser says the form was sent from another site.

    ``Sec-Fetch-Site`` decides where the browser sends it (every current one does). Without it,
    the ``Origin`` must be ours; ``null`` passes, because a page served with
    ``Referrer-Policy: no-referrer`` (ours) makes a browser send ``Origin: null`` for its own
    form (the link's token is the capability in any case).
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return False
    ours = {
        f"{request.scheme}://{request.host}",
        "{0.scheme}://{0.netloc}".format(urlsplit(_events().settings.common.public_base_url)),
    }
    return origin not in ours


@pages.route("/rsvp/<string:token>", methods=["GET", "POST"])
def rsvp_page(token: str) -> BaseResponse:
    """The RSVP page of a personal link: the event, the answer so far, and the forms."""
    accept = request.headers.get("Accept-Language")
    try:
        link = _token(token)
    except ExpiredLink as exc:
        language = negotiate(_chosen_language() or exc.token.language, accept)
        return _problem(
            language,
            410,
            N_("This link has expired"),
            N_("The event is over, so this link no longer works."),
        )
    except BadLink:
        language = negotiate(_chosen_language(), accept)
        return _problem(
            language,
            400,
            N_("This link is not valid"),
            N_(
                "The link may have been cut or changed. Please open it again from the email, "
                "or copy the whole address into your browser."
            ),
        )
    language = negotiate(_chosen_language() or link.language, accept)
    if link.event_id is None:
        return _not_found(language)
    problem = None
    if request.method == "POST":
        problem, status = _answer(link, language)
        if problem is None:
            return redirect(f"{request.path}?lang={language}&saved=1", code=303)
    else:
        status = 200
    return _show(link, language, status, problem, saved=request.args.get("saved") == "1")


def _answer(link: LinkToken, language: str) -> tuple[str | None, int]:
    """Record the form's answer; a problem to show (and its status), or ``None``."""
    gettext = CATALOG.translations(language).gettext
    if _cross_site():
        return (
            gettext(
                "The form was sent from another site and has been refused. "
                "Please use the form on this page."
            ),
            403,
        )
    events = _events()
    policy = events.policy
    answer = request.form.get("answer", "")
    assert link.event_id is not None
    try:
        with events.sessions() as session, session.begin():
            if answer == "decline":
                regs.decline(session, link.event_id, link.organisation_id, policy)
            elif answer == "claim":
                found = regs.find_registration(session, link.event_id, link.organisation_id)
                if found is None:
                    raise regs.NoOpenOffer("no registration")
                regs.claim(session, link.event_id, found.id, policy)
            elif answer == "attend":
                raw = request.form.get("seats", "1").strip()
                seats = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 4 else 0
                if not 1 <= seats <= policy.max_seats:
                    most = policy.max_seats
                    return gettext("Choose between 1 and %(most)s seats.") % {"most": most}, 400
                regs.attend(session, link.event_id, link.organisation_id, seats, policy)
            else:
                return gettext("Please choose an answer."), 400
    except regs.EventNotFound:
        return gettext("We cannot find this event. It may have been removed."), 404
    except regs.EventClosed:
        return gettext("Answers are closed for this event."), 409
    except regs.NoOpenOffer:
        return gettext("There is no open seat offer to claim."), 409
    except regs.NotEnoughSeats:
        return gettext(
            "There are not enough free seats for this change. Your registration is unchanged."
        ), 409
    events.listing_cache.clear()
    return None, 200


def _show(
    link: LinkToken, language: str, status: int, problem: str | None, saved: bool
) -> Response:
    assert link.event_id is not None
    policy = _events().policy
    with _events().sessions() as session:
        event = session.get(Event, link.event_id)
        if event is None or event.status not in (PUBLISHED, CANCELLED):
            return _not_found(language)
        seats_left = regs.occupancy(session, event).seats_left
        registration = regs.find_registration(session, event.id, link.organisation_id)
        position = regs.position_of(session, registration) if registration else None
    now = datetime.now(UTC)
    offer = ""
    offer_open = False
    if (
        registration is not None
        and registration.status == OFFERED
        and registration.offer_expires_at
    ):
        offer_open = registration.offer_expires_at > now
        offer = _moment(registration.offer_expires_at, COUNTRIES[event.country].timezone, language)
    view = event_view(event, language, seats_left)
    answer = request.args.get("answer")
    current = registration.status if registration else None
    if current == OFFERED and not offer_open:
        current = EXPIRED  # the window is over; the scheduler records it in a moment
    preselect = answer if answer in ("attend", "decline") else None
    if preselect is None and current in (CONFIRMED, WAITLISTED, OFFERED):
        preselect = "attend"
    elif preselect is None and current == DECLINED:
        preselect = "decline"
    seats = registration.seats if registration and registration.seats else 1
    return _render(
        "rsvp.html",
        language,
        status,
        page_title=view.title,
        view=view,
        cancelled=event.status == CANCELLED,
        open=regs.closed_reason(event, now) is None,
        offer_open=offer_open,
        state=_state(language, current, registration.seats if registration else 0, position, offer),
        problem=problem,
        saved=saved and problem is None,
        preselect=preselect,
        seats=min(seats, policy.max_seats),
        seat_choices=range(1, policy.max_seats + 1),
    )
