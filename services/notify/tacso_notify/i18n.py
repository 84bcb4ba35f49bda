"""Each recipient's language: gettext catalogs for the words, Babel (CLDR) for dates and names.

The catalogs live beside the templates (``translations/<locale>/LC_MESSAGES/messages.po``); a
translator edits the ``.po`` file and nothing else (see ``docs/translations.md``). They are read
and compiled in memory on first use, so there is no build step and no compiled file to forget.
Dates, times, time-zone names and country names come from Babel's CLDR data, never from
hand-made lists.
"""

from __future__ import annotations

import functools
import gettext
import io
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time, get_timezone_name
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

TRANSLATIONS = Path(__file__).parent / "translations"
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


#: Labels of the controlled vocabulary, marked so that extraction puts them in the catalogs
#: (shared/tacso_shared/vocabulary.py holds the same English labels).
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


@functools.lru_cache(maxsize=len(CATALOGS))
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalog of ``language`` (English needs none: its words are the msgids)."""
    language = language_of(language)
    path = TRANSLATIONS / CATALOGS[language] / "LC_MESSAGES" / f"{DOMAIN}.po"
    if language == DEFAULT_LANGUAGE or not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as po:
        catalog = read_po(po, locale=LOCALES[language], domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(fp=compiled, domain=DOMAIN)


def gettext_for(language: str, message: str) -> str:
    """``message`` in ``language``."""
    return translations(language).gettext(message)


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
