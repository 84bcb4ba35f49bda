"""Public pages of the personal links in every mail: preferences and one-click unsubscribe.

``GET /preferences/<token>`` shows what the organisation receives and takes the form back by
``POST``; ``POST /unsubscribe/<token>`` with ``List-Unsubscribe=One-Click`` (RFC 8058) opts out of
everything at once, without cookies or JavaScript; ``GET /unsubscribe/<token>`` only asks for
confirmation (a GET never changes anything). The token is a :class:`tacso_shared.links.LinkSigner`
token (purpose ``unsubscribe`` or ``preferences``) that notify puts in each recipient's mail.
Pages are in the link's language, else the browser's (``Accept-Language``), with a switcher.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jinja2
from flask import Blueprint, Response, current_app, request, url_for

from tacso_registry import changes, preferences
from tacso_registry.bootstrap import Registry
from tacso_registry.i18n import CATALOG
from tacso_registry.models import Organisation, audit_log
from tacso_shared import audit
from tacso_shared.audit import Actor
from tacso_shared.auth import public
from tacso_shared.db import transaction
from tacso_shared.i18n import LOCALES, N_, language_name, negotiate
from tacso_shared.links import BadLink, ExpiredLink, LinkSigner, LinkToken
from tacso_shared.ratelimit import PUBLIC, rate_limited
from tacso_shared.vocabulary import TOPICS

#: What the pages accept: the link in a mail's header and footer.
UNSUBSCRIBE = "unsubscribe"
PREFERENCES = "preferences"
PURPOSES = (UNSUBSCRIBE, PREFERENCES)
#: How long a link in a mail stays good: a year (an old mail must still let one unsubscribe).
LINK_LIFETIME = timedelta(days=365)
#: The body of a one-click unsubscription (RFC 8058, section 3.1).
ONE_CLICK = "One-Click"
#: Pages load nothing but themselves and post only to themselves.
PAGE_CSP = (
    "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "img-src 'self'"
)

KIND_LABELS = {
    "invitation": N_("Invitations to events"),
    "press_notice": N_("Press notices"),
    "reminder": N_("Reminders"),
    "update": N_("Changes to events"),
}

pages = Blueprint("preference_pages", __name__)


def make_link_token(
    organisation_id: str,
    language: str | None,
    purpose: str = UNSUBSCRIBE,
    now: datetime | None = None,
) -> LinkToken:
    """The token of a personal preferences/unsubscribe link (valid :data:`LINK_LIFETIME`)."""
    return LinkToken(
        purpose=purpose,
        organisation_id=organisation_id,
        expires_at=(now or datetime.now(UTC)) + LINK_LIFETIME,
        language=language,
    )


def _registry() -> Registry:
    registry: Registry = current_app.extensions["tacso_registry"]
    return registry


def _language(token: LinkToken | None = None) -> str:
    chosen = request.args.get("lang") or (token.language if token else None)
    return negotiate(chosen, request.headers.get("Accept-Language"))


def _page(template: str, status: int, language: str, **context: Any) -> Response:
    environment = CATALOG.environment(jinja2.PackageLoader("tacso_registry", "templates"), language)
    switcher = [
        {"code": code, "name": language_name(code, code), "current": code == language}
        for code in LOCALES
    ]
    body = environment.get_template(f"preferences/{template}").render(
        languages=switcher, path=request.path, **context
    )
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Language"] = language
    return response


def _problem(status: int, language: str, title: str, explanation: str) -> Response:
    return _page("problem.html", status, language, title=title, explanation=explanation)


def _load(raw: str) -> tuple[LinkToken | None, Response | None]:
    """The token of the link, or the friendly page that says why it cannot be used."""
    signer = LinkSigner(_registry().settings.common.link_signing_keys)
    try:
        return signer.load(raw, PURPOSES), None
    except ExpiredLink as exc:
        language = _language(exc.token)
        return None, _problem(
            410,
            language,
            CATALOG.gettext(language, N_("This link has expired")),
            CATALOG.gettext(
                language, N_("Please use the link in the most recent email you received from us.")
            ),
        )
    except BadLink:
        language = _language()
        return None, _problem(
            400,
            language,
            CATALOG.gettext(language, N_("This link is not valid")),
            CATALOG.gettext(
                language,
                N_(
                    "The link may have been cut or changed. Please open it again from the email, "
                    "or copy the whole address."
                ),
            ),
        )


def _gone(language: str) -> Response:
    return _problem(
        410,
        language,
        CATALOG.gettext(language, N_("This link is no longer valid")),
        CATALOG.gettext(language, N_("This organisation is no longer in our registry.")),
    )


def _actor(token: LinkToken) -> Actor:
    # Whoever holds the organisation's personal link acts for it.
    return Actor(None, request.remote_addr, request.headers.get("X-Correlation-ID") or None)


def _change(
    token: LinkToken, action: str, change: Any
) -> tuple[Organisation | None, preferences.Preferences | None]:
    """Apply ``change(prefs) -> prefs`` to the organisation of ``token``; its new preferences."""
    with transaction(_registry().sessions) as session:
        org = session.get(Organisation, token.organisation_id)
        if org is None or org.erased_at is not None:
            return None, None
        before = preferences.preferences_of(session, org)
        wanted = change(before)
        if changes.set_preferences(session, org, wanted, request.headers.get("X-Correlation-ID")):
            audit.record(
                session,
                audit_log,
                _actor(token),
                action,
                "organisation",
                org.id,
                before={"all": before.all, "kinds": before.kinds},
                after={"all": wanted.all, "kinds": wanted.kinds},
            )
        return org, preferences.preferences_of(session, org)


@pages.get("/unsubscribe/<token>")
@rate_limited(PUBLIC)
@public
def confirm_unsubscribe(token: str) -> Response:
    """Ask whether to unsubscribe (a GET changes nothing; mail scanners open links)."""
    link, problem = _load(token)
    if problem is not None:
        return problem
    assert link is not None
    language = _language(link)
    with _registry().sessions() as session:
        org = session.get(Organisation, link.organisation_id)
        if org is None or org.erased_at is not None:
            return _gone(language)
        name = org.name
    return _page("unsubscribe.html", 200, language, name=name, token=token)


@pages.post("/unsubscribe/<token>")
@rate_limited(PUBLIC)
@public
def unsubscribe(token: str) -> Response:
    """RFC 8058 one-click unsubscription: out of everything at once, a short page back."""
    link, problem = _load(token)
    if problem is not None:
        return problem
    assert link is not None
    language = _language(link)
    if request.form.get("List-Unsubscribe") != ONE_CLICK:
        return _problem(
            400,
            language,
            CATALOG.gettext(language, N_("Nothing was changed")),
            CATALOG.gettext(language, N_("Please use the button on the unsubscribe page.")),
        )
    org, _ = _change(link, "organisation.unsubscribe", preferences.opted_out_of_everything)
    if org is None:
        return _gone(language)
    return _page("unsubscribed.html", 200, language, name=org.name, token=token)


@pages.get("/preferences/<token>")
@rate_limited(PUBLIC)
@public
def show_preferences(token: str) -> Response:
    """The organisation's mailing preferences, as a form."""
    link, problem = _load(token)
    if problem is not None:
        return problem
    assert link is not None
    language = _language(link)
    with _registry().sessions() as session:
        org = session.get(Organisation, link.organisation_id)
        if org is None or org.erased_at is not None:
            return _gone(language)
        current = preferences.preferences_of(session, org)
        name = org.name
    return _preferences_page(language, name, token, current, saved=False)


@pages.post("/preferences/<token>")
@rate_limited(PUBLIC)
@public
def save_preferences(token: str) -> Response:
    """Store the preferences form: a box left unticked is an opt-out."""
    link, problem = _load(token)
    if problem is not None:
        return problem
    assert link is not None
    language = _language(link)
    form = request.form
    if form.get("form") != "preferences":
        return _problem(
            400,
            language,
            CATALOG.gettext(language, N_("Nothing was changed")),
            CATALOG.gettext(language, N_("Please use the form on the preferences page.")),
        )
    wanted = preferences.Preferences(
        all=form.get("all") == "yes",
        kinds={kind: form.get(f"kind-{kind}") == "yes" for kind in preferences.MAIL_KINDS},
        topics_opted_out=sorted(t for t in TOPICS if form.get(f"topic-{t}") != "yes"),
    )
    org, current = _change(link, "organisation.preferences", lambda _: wanted)
    if org is None or current is None:
        return _gone(language)
    return _preferences_page(language, org.name, token, current, saved=True)


def _preferences_page(
    language: str, name: str, token: str, current: preferences.Preferences, saved: bool
) -> Response:
    kinds = [
        {
            "value": kind,
            "label": CATALOG.gettext(language, KIND_LABELS[kind]),
            "wanted": current.kinds[kind],
        }
        for kind in preferences.MAIL_KINDS
    ]
    topics = [
        {
            "value": slug,
            "label": CATALOG.gettext(language, label),
            "wanted": slug not in current.topics_opted_out,
        }
        for slug, label in TOPICS.items()
    ]
    return _page(
        "preferences.html",
        200,
        language,
        name=name,
        token=token,
        all=current.all,
        kinds=kinds,
        topics=topics,
        saved=saved,
        unsubscribe_url=url_for("preference_pages.confirm_unsubscribe", token=token),
    )
