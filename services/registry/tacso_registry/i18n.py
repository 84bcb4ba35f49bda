"""Registry's words in each reader's language: its catalog and page templates.

The catalogs live beside the templates (``translations/<locale>/LC_MESSAGES/messages.po``); see
:mod:`tacso_shared.i18n` for how they are read and ``docs/translations.md`` for translators.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from tacso_shared.i18n import LOCALES, Catalog, country_name, language_name

TRANSLATIONS = Path(__file__).parent / "translations"
CATALOG = Catalog(TRANSLATIONS)
TEMPLATES = jinja2.FileSystemLoader(str(Path(__file__).parent / "templates"))

__all__ = ["CATALOG", "TEMPLATES", "TRANSLATIONS", "page_environment"]


def _configure(environment: jinja2.Environment) -> None:
    environment.globals["switcher"] = [(code, language_name(code, code)) for code in LOCALES]
    environment.globals["country_name"] = country_name
    environment.globals["language_name"] = language_name


def page_environment(language: str) -> jinja2.Environment:
    """The Jinja2 environment of registry's pages in ``language`` (autoescaped HTML)."""
    return CATALOG.environment(TEMPLATES, language, _configure)
