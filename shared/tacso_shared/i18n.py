"""Each reader's language: gettext catalogs for the words, Babel (CLDR) for dates and names.

Every service that shows words to people keeps its catalogs beside its templates
(``<package>/translations/<locale>/LC_MESSAGES/messages.po``) and reads them through a
:class:`Catalog`; a translator edits the ``.po`` files and nothing else (``docs/translations.md``).
Catalogs are compiled in memory on first use: no build step, no compiled file to forget. Dates,
times, time-zone names and country names come from Babel's CLDR data, never from hand-made lists.
"""

from __future__ import annotations

import gettext
import io
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale
from babel.dates import format_date, format_time, get_timezone_name
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

DOMAIN = "messages"
DEFAULT_LANGUAGE = "en"

#: The registry's language codes and the CLDR locale each is written in. Serbian is Cyrillic
#: (``sr``) or Latin (``sr-Latn``); Montenegrin (``cnr``) is Latin, which CLDR keeps as
#: ``sr_Latn_ME``; Macedonian is Cyrillic.
LOCALES: dict[str, str] = {
    "en": "en",
    "sq": "sq",
    "bs": "bs",
    "hr": "hr",
    "sr": "sr",
    "sr-Latn": "sr_Latn",
    "mk": "mk",
    "tr": "tr",
    "cnr": "sr_Latn_ME",
}
#: Where each language's catalog lives (``cnr`` has its own words, not Serbian's).
CATALOGS: dict[str, str] = {**LOCALES, "cnr": "cnr"}


def N_(message: str) -> str:
    """Mark ``message`` for extraction; it is translated where it is shown."""
    return message


#: Labels of the controlled vocabulary, marked so that extraction puts them in every catalog
#: that extracts this file too (shared/tacso_shared/vocabulary.py holds the same English labels).
LABELS = (
    N_("Conference"),
    N_("Workshop"),
    N_("Training"),
    N_("Information event"),
    N_("Expo"),
    N_("Field session"),
    N_("Other"),
    N_("Social entrepreneurship"),
    N_("Communication and visibility"),
    N_("Human rights"),
    N_("Quality assurance"),
    N_("Migration and refugee response"),
    N_("Capacity building"),
    N_("Advocacy"),
    N_("Gender equality"),
    N_("Environment"),
    N_("Youth"),
)


def language_of(language: str | None) -> str:
    """A language we have, for a code as registry stores it (unknown codes read English)."""
    return language if language in LOCALES else DEFAULT_LANGUAGE


def locale_of(language: str) -> Locale:
    """The CLDR locale ``language`` is written in."""
    return Locale.parse(LOCALES[language_of(language)])


def negotiate(chosen: str | None, accept_language: str | None) -> str:
    """The language of a page: the one the link or switcher chose, else the browser's best.

    ``chosen`` wins when it is one of ours; otherwise the ``Accept-Language`` header is matched
    against our languages (``sr-Latn-RS`` finds ``sr-Latn``, ``de`` finds nothing: English).
    """
    if chosen in LOCALES:
        return str(chosen)
    if not accept_language:
        return DEFAULT_LANGUAGE
    ours = {code.lower(): code for code in LOCALES}
    # RFC 4647 lookup: the best-rated tag first, each cut down a subtag at a time
    # (sr-Latn-RS, sr-Latn, sr); Montenegro's browsers may say sr-ME, which finds Serbian.
    for tag, quality in parse_accept_header(accept_language, LanguageAccept):
        if quality <= 0:
            continue
        parts = tag.lower().replace("_", "-").split("-")
        while parts:
            found = ours.get("-".join(parts))
            if found is not None:
                return found
            parts.pop()
    return DEFAULT_LANGUAGE


class Catalog:
    """One service's translations: a ``.po`` file per language under ``directory``."""

    def __init__(self, directory: Path, domain: str = DOMAIN) -> None:
        self.directory = directory
        self.domain = domain
        self._compiled: dict[str, gettext.NullTranslations] = {}
        self._environments: dict[tuple[int, str], jinja2.Environment] = {}
        self._lock = threading.Lock()

    def path(self, language: str) -> Path:
        """The ``.po`` file of ``language``."""
        return (
            self.directory / CATALOGS[language_of(language)] / "LC_MESSAGES" / f"{self.domain}.po"
        )

    def translations(self, language: str) -> gettext.NullTranslations:
        """The compiled catalog of ``language`` (English needs none: its words are the msgids)."""
        language = language_of(language)
        found = self._compiled.get(language)
        if found is not None:
            return found
        path = self.path(language)
        if language == DEFAULT_LANGUAGE or not path.exists():
            compiled: gettext.NullTranslations = gettext.NullTranslations()
        else:
            with path.open("rb") as po:
                catalog = read_po(po, locale=LOCALES[language], domain=self.domain)
            buffer = io.BytesIO()
            write_mo(buffer, catalog, use_fuzzy=False)
            buffer.seek(0)
            compiled = Translations(fp=buffer, domain=self.domain)
        with self._lock:
            return self._compiled.setdefault(language, compiled)

    def gettext(self, language: str, message: str) -> str:
        """``message`` in ``language``."""
        return self.translations(language).gettext(message)

    def environment(
        self,
        loader: jinja2.BaseLoader,
        language: str,
        configure: Callable[[jinja2.Environment], None] | None = None,
        *,
        html: bool = True,
    ) -> jinja2.Environment:
        """A Jinja2 environment whose ``{% trans %}``/``_()`` speak ``language`` (made once).

        ``html`` autoescapes ``.html`` templates (pages); ``configure`` adds filters and globals.
        """
        key = (id(loader), language_of(language))
        found = self._environments.get(key)
        if found is not None:
            return found
        environment = jinja2.Environment(
            extensions=["jinja2.ext.i18n"],
            loader=loader,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html",) if html else (),
                default_for_string=False,
                default=False,
            ),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        environment.install_gettext_translations(  # type: ignore[attr-defined]
            self.translations(language), newstyle=True
        )
        environment.globals["language"] = language_of(language)
        if configure is not None:
            configure(environment)
        with self._lock:
            return self._environments.setdefault(key, environment)


def country_name(code: str, language: str) -> str:
    """The country's name as CLDR writes it in ``language`` (``XK`` is Kosovo in every one)."""
    return str(locale_of(language).territories.get(code, code))


def language_name(language: str, in_language: str) -> str:
    """The name of ``language`` as written in ``in_language`` (``engleski`` for en in bs)."""
    name = locale_of(language).get_display_name(locale_of(in_language))
    return str(name or language)


def format_when(start: datetime, end: datetime, timezone: str, language: str) -> str:
    """When an event is, in its country's time zone, as ``language`` writes dates and times.

    ``utorak, 15. decembar 2026., 10:00–16:00 (Centralnoevropsko standardno vrijeme)`` for
    ``bs``: the time zone is named as people say it, never as an IANA id. An event over several
    days shows both dates.
    """
    locale = locale_of(language)
    zone = ZoneInfo(timezone)
    first, last = start.astimezone(zone), end.astimezone(zone)
    day = format_date(first, "full", locale=locale)
    begins = format_time(first, "short", locale=locale)
    ends = format_time(last, "short", locale=locale)
    if first.date() == last.date():
        span = f"{day}, {begins}\u2013{ends}"
    else:
        span = f"{day}, {begins} \u2013 {format_date(last, 'full', locale=locale)}, {ends}"
    return f"{span} ({get_timezone_name(first, 'long', locale=locale)})"
