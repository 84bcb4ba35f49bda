"""Registry's pages speak every language of the network: complete catalogs, the right script."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.pofile import read_po
from flask.testing import FlaskClient

import tacso_shared.i18n
from tacso_registry.i18n import TRANSLATIONS
from tacso_shared.i18n import CATALOGS, LOCALES

REGISTRY = Path(TRANSLATIONS).parent
PLACEHOLDER = re.compile(r"%\(\w+\)s")
CYRILLIC = re.compile(r"[\u0400-\u04ff]")


def extracted_messages() -> set[str]:
    """Every message registry's templates and code mark for translation, as pybabel finds it."""
    method_map = [("**/templates/**", "jinja2"), ("**.py", "python")]
    options = {"**/templates/**": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true"}}
    found = extract_from_dir(
        str(REGISTRY), method_map, options, keywords={"_": None, "N_": None, "gettext": None}
    )
    shared = extract_from_file("python", tacso_shared.i18n.__file__, keywords={"N_": None})
    messages = [message for _, _, message, _, _ in found] + [m for _, m, _, _ in shared]
    return {message for message in messages if isinstance(message, str)}


@pytest.mark.parametrize("language", sorted(set(LOCALES) - {"en"}))
def test_the_catalog_translates_every_message(language: str) -> None:
    path = TRANSLATIONS / CATALOGS[language] / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as po:
        catalog = read_po(po)
    wanted = extracted_messages()
    assert len(wanted) > 40
    missing = sorted(
        m for m in wanted if m not in catalog or not catalog[m].string or catalog[m].fuzzy
    )
    assert not missing, f"{path} misses {missing} (run make i18n-update and translate)"
    for message in wanted:
        translated = str(catalog[message].string)
        assert sorted(PLACEHOLDER.findall(translated)) == sorted(PLACEHOLDER.findall(message))


@pytest.mark.parametrize(
    ("language", "heading", "cyrillic"),
    [
        ("en", "Join the TACSO network", False),
        ("sq", "Bashkohuni me rrjetin TACSO", False),
        ("bs", "Pridružite se mreži TACSO", False),
        ("hr", "Pridružite se mreži TACSO", False),
        ("sr", "Придружите се мрежи TACSO", True),
        ("sr-Latn", "Pridružite se mreži TACSO", False),
        ("mk", "Приклучете се кон мрежата TACSO", True),
        ("tr", "TACSO ağına katılın", False),
        ("cnr", "Pridružite se mreži TACSO", False),
    ],
)
def test_the_signup_page_is_in_each_language_and_script(
    client: FlaskClient, language: str, heading: str, cyrillic: bool
) -> None:
    html = client.get(f"/signup?lang={language}").get_data(as_text=True)

    assert f"<h1>{heading}</h1>" in html
    main = html.split("<main>", 1)[1]
    words = re.sub(r"<[^>]+>|TACSO", " ", main.split("<select", 1)[0])
    assert bool(CYRILLIC.search(words)) is cyrillic
