"""Registry's pages for people: sign-up, its confirmation, and setting an invited password.

Server-rendered (Jinja2, the reader's language: ``?lang=``, else the link's, else
``Accept-Language``), no JavaScript, a strict Content-Security-Policy. A GET never changes
anything: the confirmation link shows a page whose button POSTs. These are pages, not API
operations, so they are not in the OpenAPI document; each one's access rule is declared like an
operation's (``public``, rate limits).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request
from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError

from tacso_registry import accounts, signups
from tacso_registry.bootstrap import Registry
from tacso_registry.i18n import CATALOG, page_environment
from tacso_registry.models import audit_log
from tacso_registry.schemas import SignupCreateSchema
from tacso_shared import audit, correlation
from tacso_shared.audit_api import request_actor
from tacso_shared.auth import public
from tacso_shared.db import transaction
from tacso_shared.i18n import N_, negotiate
from tacso_shared.links import BadLink, ExpiredLink
from tacso_shared.ratelimit import CREDENTIALS, SIGNUP, rate_limited
from tacso_shared.vocabulary import COUNTRIES, TOPICS

#: Pages load nothing but themselves, post only to themselves, and are never framed.
PAGE_CSP = (
    "default-src 'none'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)

pages = Blueprint("pages", __name__)


def _registry() -> Registry:
    registry: Registry = current_app.extensions["tacso_registry"]
    return registry


def _language(chosen: str | None = None) -> str:
    return negotiate(request.args.get("lang") or chosen, request.headers.get("Accept-Language"))


def _page(template: str, language: str, status: int = 200, **context: Any) -> Response:
    html = page_environment(language).get_template(f"signup/{template}").render(**context)
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Language"] = language
    response.vary.add("Accept-Language")
    return response


def _problem(language: str, status: int, heading: str, message: str, again: bool) -> Response:
    gettext = CATALOG.translations(language).gettext
    return _page(
        "problem.html",
        language,
        status,
        heading=gettext(heading),
        message=gettext(message),
        again=again,
    )


def _form(language: str, values: dict[str, Any], errors: dict[str, str], status: int) -> Response:
    return _page(
        "form.html",
        language,
        status,
        values={
            "name": "",
            "email": "",
            "kind": "",
            "country": "",
            "language": "",
            "topics": [],
            **values,
        },
        errors=errors,
        countries=sorted(COUNTRIES),
        topics=list(TOPICS.items()),
        consent_text_version=signups.CONSENT_TEXT_VERSION,
    )


CHECK_FIELD = N_("Please check this field.")
#: What a reader is told about each field the form refused (in their language).
FIELD_PROBLEMS = {
    "name": N_("Please give the name of your organisation."),
    "email": N_("Please give a valid email address."),
    "kind": N_("Please choose whether you are a civil society organisation or a media outlet."),
    "country": N_("Please choose your country."),
    "language": N_("Please choose a language from the list."),
    "topics": N_("Please choose topics from the list."),
    "consent": N_("Please tick the box to agree to receive our emails."),
    "consent_text_version": N_("Please reload the page and try again."),
}


@pages.get("/signup")
@public
def signup_form() -> Response:
    """The sign-up form."""
    return _form(_language(), {}, {}, 200)


@pages.post("/signup")
@rate_limited(SIGNUP)
@public
def signup_submit() -> Response:
    """Take the form: same answer for a known address (a different mail goes to it)."""
    language = _language()
    form = request.form
    raw = {
        "name": form.get("name", ""),
        "email": form.get("email", ""),
        "kind": form.get("kind", ""),
        "country": form.get("country", ""),
        "language": form.get("language", ""),
        "topics": form.getlist("topics"),
        "consent_text_version": form.get("consent_text_version", ""),
        "consent": form.get("consent") == "yes",
    }
    try:
        data = SignupCreateSchema().load(raw)
    except ValidationError as exc:
        gettext = CATALOG.translations(language).gettext
        fields = exc.messages if isinstance(exc.messages, dict) else {}
        errors = {name: gettext(FIELD_PROBLEMS.get(name, CHECK_FIELD)) for name in fields}
        values = {k: v for k, v in raw.items() if k not in ("consent",)}
        return _form(language, values, errors, 422)
    registry = _registry()
    with transaction(registry.sessions) as session:
        signups.sign_up(
            session, data, registry.link_signer(), registry.public_url, correlation.current()
        )
    return _page("sent.html", language, 202)


def _load_token(raw: str) -> Any:
    return _registry().link_signer().load(raw, [signups.PURPOSE])


def _link_problem(exc: Exception, language: str) -> Response:
    if isinstance(exc, ExpiredLink):
        return _problem(
            language,
            410,
            N_("This link has expired"),
            N_("Sign-up links are valid for 7 days. Please sign up again."),
            again=True,
        )
    return _problem(
        language,
        400,
        N_("This link is not valid"),
        N_("The link may have been cut or changed. Please open it exactly as it is in the email."),
        again=True,
    )


_USED = (
    N_("This link was used already"),
    N_(
        "The sign-up was confirmed already, or it expired. If you are not registered yet, "
        "please sign up again."
    ),
)


@pages.get("/signup/confirm/<token>")
@public
def confirm_page(token: str) -> Response:
    """The confirmation page: a button that confirms (a GET changes nothing)."""
    try:
        link = _load_token(token)
    except (BadLink, ExpiredLink) as exc:
        return _link_problem(exc, _language())
    language = _language(link.language)
    with _registry().sessions() as session:
        try:
            signup = signups.pending_signup(session, link)
        except signups.SignupGone:
            return _problem(language, 410, *_USED, again=True)
        return _page("confirm.html", language, name=signup.name, email=signup.email)


@pages.post("/signup/confirm/<token>")
@rate_limited(SIGNUP)
@public
def confirm_submit(token: str) -> Response:
    """Confirm the sign-up: the organisation is created and announced like any other."""
    try:
        link = _load_token(token)
    except (BadLink, ExpiredLink) as exc:
        return _link_problem(exc, _language())
    language = _language(link.language)
    try:
        with transaction(_registry().sessions) as session:
            confirmation = signups.confirm(session, link, correlation.current())
            audit.record(
                session,
                audit_log,
                request_actor(),
                "signup.confirm",
                "signup",
                link.organisation_id,
                after={
                    "organisation_id": confirmation.organisation_id,
                    "created": confirmation.created,
                },
            )
    except (signups.SignupGone, IntegrityError):
        # IntegrityError: a second click racing the first met the unique address of the first.
        return _problem(language, 410, *_USED, again=True)
    return _page("confirmed.html", language)


def _invitation_problem(language: str) -> Response:
    return _problem(
        language,
        400,
        N_("This invitation is not valid"),
        N_(
            "It may have expired (invitations are valid for 7 days) or been used already. "
            "Please ask whoever invited you for a new one."
        ),
        again=False,
    )


@pages.get("/users/set-password/<token>")
@public
def set_password_page(token: str) -> Response:
    """The page an invitation links to: a form that sets the password."""
    language = _language()
    with _registry().sessions() as session:
        try:
            account = accounts.check_invitation(session, token)
        except accounts.BadCredentials:
            return _invitation_problem(language)
        return _page(
            "set_password.html", language, name=account.name, email=account.email, error=None
        )


@pages.post("/users/set-password/<token>")
@rate_limited(CREDENTIALS)
@public
def set_password_submit(token: str) -> Response:
    """Set the password of the invited account (once)."""
    language = _language()
    gettext = CATALOG.translations(language).gettext
    password = request.form.get("password", "")
    registry = _registry()
    with registry.sessions() as session:
        try:
            account = accounts.check_invitation(session, token)
        except accounts.BadCredentials:
            return _invitation_problem(language)
        name, email = account.name, account.email
    error = None
    if password != request.form.get("repeat", ""):
        error = gettext("The two passwords are not the same.")
    elif not accounts.MIN_PASSWORD_LENGTH <= len(password) <= accounts.MAX_PASSWORD_LENGTH:
        error = gettext("The password must be 12 to 1024 characters long.")
    if error:
        return _page("set_password.html", language, 422, name=name, email=email, error=error)
    try:
        with transaction(registry.sessions) as session:
            account = accounts.accept_invitation(session, token, password)
            audit.record(
                session,
                audit_log,
                request_actor(),
                "account.set_password",
                "account",
                account.id,
                after={"password_set_at": account.password_set_at},
            )
    except (accounts.BadCredentials, accounts.AccountRefused):
        return _invitation_problem(language)
    return _page("password_set.html", language)
