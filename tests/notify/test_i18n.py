"""Each recipient reads their mail in their language: complete catalogs, CLDR dates and names."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.pofile import read_po

import tacso_shared.i18n
from support.messages import event_published
from tacso_notify.domain import MessageKind, Recipient, Sender
from tacso_notify.i18n import CATALOGS, LOCALES, TRANSLATIONS, format_when
from tacso_notify.rendering import prepare_message
from tacso_shared.contracts import EventPublished, EventText
from tacso_shared.vocabulary import LANGUAGES

NOTIFY = Path(TRANSLATIONS).parent
PLACEHOLDER = re.compile(r"%\(\w+\)s")
CYRILLIC = re.compile(r"[\u0400-\u04ff]")


def extracted_messages() -> set[str]:
    """Every message the templates and the code mark for translation, as pybabel extracts it."""
    method_map = [("**/templates/**", "jinja2"), ("**.py", "python")]
    options = {"**/templates/**": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true"}}
    found = extract_from_dir(
        str(NOTIFY), method_map, options, keywords={"_": None, "N_": None, "gettext": None}
    )
    shared = extract_from_file("python", tacso_shared.i18n.__file__, keywords={"N_": None})
    messages = [message for _, _, message, _, _ in found] + [m for _, m, _, _ in shared]
    return {message for message in messages if isinstance(message, str)}


def event(**changes: Any) -> EventPublished:
    fields: dict[str, Any] = {
        "event_id": "ev-i18n",
        "revision": 1,
        "title": "Human rights in practice",
        "type": "workshop",
        "country": "BA",
        "topics": ["human-rights", "youth"],
        "starts_at": datetime(2026, 12, 15, 9, 0, tzinfo=UTC),
        "ends_at": datetime(2026, 12, 15, 15, 0, tzinfo=UTC),
        "venue": {"name": "Hotel Europe", "address": None, "city": "Sarajevo"},
        "organiser_id": "org-vesta",
        "organiser_name": "VESTA",
        "url": "https://events.tacso.example/events/ev-i18n",
        **changes,
    }
    return event_published(**fields)


def render(reader: str, kind: MessageKind = MessageKind.INVITATION, **changes: Any) -> EmailMessage:
    """What an organisation whose language is ``reader`` receives."""
    raw = prepare_message(
        event(**changes), kind, Sender("events@tacso.example"), "tacso.example", reader
    ).for_recipient(Recipient("org-1", "Udruženje Zdravo", "info@zdravo.example", reader))
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


class TestCatalogs:
    def test_every_language_of_the_registry_has_a_locale(self) -> None:
        assert set(LANGUAGES) == set(LOCALES)

    @pytest.mark.parametrize("language", sorted(set(LOCALES) - {"en"}))
    def test_the_catalog_translates_every_message(self, language: str) -> None:
        path = TRANSLATIONS / CATALOGS[language] / "LC_MESSAGES" / "messages.po"
        with path.open("rb") as po:
            catalog = read_po(po)
        wanted = extracted_messages()
        assert len(wanted) > 30, "extraction found the templates' messages"
        missing = sorted(
            m for m in wanted if m not in catalog or not catalog[m].string or catalog[m].fuzzy
        )
        assert not missing, f"{path} misses {missing} (run make i18n-update and translate)"
        for message in wanted:
            translated = str(catalog[message].string)
            assert sorted(PLACEHOLDER.findall(translated)) == sorted(
                PLACEHOLDER.findall(message)
            ), f"{language}: placeholders of {message!r} changed in {translated!r}"


#: (language, subject prefix, a phrase of the body, the date as Babel writes it there)
EXPECTED = [
    ("en", "Invitation: ", "invites your organisation", "Tuesday, December 15, 2026"),
    ("sq", "Ftesë: ", "fton organizatën tuaj", "e martë, 15 dhjetor 2026"),
    ("bs", "Pozivnica: ", "poziva vašu organizaciju", "utorak, 15. decembar 2026."),
    ("hr", "Poziv: ", "poziva vašu organizaciju", "utorak, 15. prosinca 2026."),
    ("sr", "Позив: ", "позива вашу организацију", "уторак, 15. децембар 2026."),
    ("sr-Latn", "Poziv: ", "poziva vašu organizaciju", "utorak, 15. decembar 2026."),
    ("mk", "Покана: ", "ја поканува вашата организација", "вторник, 15 декември 2026\u202fг."),
    ("tr", "Davet: ", "kuruluşunuzu aşağıdaki etkinliğe davet ediyor", "15 Aralık 2026 Salı"),
    ("cnr", "Poziv: ", "poziva vašu organizaciju", "utorak, 15. decembar 2026."),
]


class TestMailInEveryLanguage:
    @pytest.mark.parametrize(("language", "subject", "phrase", "date"), EXPECTED)
    def test_subject_body_and_date_are_in_the_recipients_language(
        self, language: str, subject: str, phrase: str, date: str
    ) -> None:
        message = render(language)
        assert str(message["Subject"]) == f"{subject}Human rights in practice"
        text = text_of(message)
        assert phrase in text
        assert date in text
        assert "10:00" in text, "local time in Sarajevo"
        html = message.get_body(preferencelist=("html",))
        assert html is not None and f'<html lang="{language}">' in str(html.get_content())

    @pytest.mark.parametrize("language", ["sr", "mk"])
    def test_serbian_and_macedonian_are_written_in_cyrillic(self, language: str) -> None:
        greeting = text_of(render(language)).splitlines()[0]
        assert CYRILLIC.search(greeting), greeting

    @pytest.mark.parametrize("language", ["sr-Latn", "cnr", "bs", "hr"])
    def test_latin_script_languages_stay_latin(self, language: str) -> None:
        text = text_of(render(language))
        assert not CYRILLIC.search(text), text[:200]

    def test_labels_are_translated(self) -> None:
        text = text_of(render("bs", type="training", topics=["gender-equality"]))
        assert "Obuka: Human rights in practice" in text
        assert "Ravnopravnost spolova" in text

    def test_press_notices_are_translated_too(self) -> None:
        text = text_of(render("tr", MessageKind.PRESS_NOTICE))
        assert "HEMEN YAYIMLANMAK ÜZERE" in text
        assert "aşağıdaki etkinliği duyurur" in text

    def test_an_unknown_language_reads_english(self) -> None:
        assert str(render("xx")["Subject"]).startswith("Invitation: ")


class TestTimeZonesAreNamedForPeople:
    def test_a_kosovo_event_never_reads_europe_belgrade(self) -> None:
        for language in LOCALES:
            text = text_of(render(language, country="XK"))
            assert "Europe/" not in text
            assert "Belgrade" not in text and "Beograd" not in text

    def test_the_time_zone_is_named_in_the_recipients_language(self) -> None:
        start = datetime(2026, 12, 15, 9, tzinfo=UTC)
        end = datetime(2026, 12, 15, 15, tzinfo=UTC)
        assert format_when(start, end, "Europe/Sarajevo", "bs") == (
            "utorak, 15. decembar 2026., 10:00\u201316:00 (Centralnoevropsko standardno vrijeme)"
        )
        assert "Orta Avrupa" in format_when(start, end, "Europe/Sarajevo", "tr")


class TestEventTranslations:
    def translated(self) -> dict[str, Any]:
        return {
            "language": "en",
            "description": "A workshop for civil society organisations.",
            "translations": (
                EventText("bs", "Ljudska prava u praksi", "Radionica za organizacije."),
                EventText("mk", "Човекови права во пракса", None),
            ),
        }

    def test_a_recipient_reads_the_translation_in_their_language(self) -> None:
        message = render("bs", **self.translated())
        assert str(message["Subject"]) == "Pozivnica: Ljudska prava u praksi"
        text = text_of(message)
        assert "Radionica za organizacije." in text
        assert "A workshop for" not in text
        assert "Originalni jezik" not in text

    def test_without_a_translation_the_original_comes_with_its_language_named(self) -> None:
        text = text_of(render("hr", **self.translated()))
        assert "Human rights in practice" in text
        assert "Izvorni jezik: engleski" in text

    def test_a_translated_title_without_description_shows_no_foreign_description(self) -> None:
        text = text_of(render("mk", **self.translated()))
        assert "Човекови права во пракса" in text
        assert "A workshop for" not in text

    def test_the_calendar_entry_is_translated_too(self) -> None:
        message = render("bs", **self.translated())
        ics = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
        assert "SUMMARY:Ljudska prava u praksi" in str(ics.get_content())
