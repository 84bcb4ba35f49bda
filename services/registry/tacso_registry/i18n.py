"""Registry's words in each reader's language: its catalog, on the shared i18n machinery.

The catalogs live beside the templates (``translations/<locale>/LC_MESSAGES/messages.po``); see
:mod:`tacso_shared.i18n` for how they are read and ``docs/translations.md`` for translators.
"""

from __future__ import annotations

from pathlib import Path

from tacso_shared.i18n import Catalog

TRANSLATIONS = Path(__file__).parent / "translations"
CATALOG = Catalog(TRANSLATIONS)
