"""Notify's words in each recipient's language: its catalog, on the shared i18n machinery.

The catalogs live beside the templates (``translations/<locale>/LC_MESSAGES/messages.po``); see
:mod:`tacso_shared.i18n` for how they are read and ``docs/translations.md`` for translators.
"""

from __future__ import annotations

import gettext
from pathlib import Path

from tacso_shared.i18n import (
    CATALOGS,
    DEFAULT_LANGUAGE,
    DOMAIN,
    LABELS,
    LOCALES,
    N_,
    Catalog,
    country_name,
    format_when,
    language_name,
    language_of,
    locale_of,
)

TRANSLATIONS = Path(__file__).parent / "translations"
CATALOG = Catalog(TRANSLATIONS)

__all__ = [
    "CATALOG",
    "CATALOGS",
    "DEFAULT_LANGUAGE",
    "DOMAIN",
    "LABELS",
    "LOCALES",
    "N_",
    "TRANSLATIONS",
    "country_name",
    "format_when",
    "gettext_for",
    "language_name",
    "language_of",
    "locale_of",
    "translations",
]


def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalog of ``language``."""
    return CATALOG.translations(language)


def gettext_for(language: str, message: str) -> str:
    """``message`` in ``language``."""
    return CATALOG.gettext(language, message)
