"""The shared language machinery: which language a page speaks, and catalogs read in memory."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from tacso_shared.i18n import Catalog, negotiate

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("chosen", "header", "expected"),
    [
        ("bs", "tr-TR,tr;q=0.9", "bs"),
        (None, "tr-TR,tr;q=0.9,en;q=0.5", "tr"),
        (None, "sr-Latn-RS,sr;q=0.8", "sr-Latn"),
        (None, "mk", "mk"),
        (None, "de-DE,de;q=0.9", "en"),
        ("xx", None, "en"),
        (None, "", "en"),
        (None, "sq;q=0.2,hr;q=0.7", "hr"),
    ],
)
def test_the_link_chooses_else_the_browser(
    chosen: str | None, header: str | None, expected: str
) -> None:
    assert negotiate(chosen, header) == expected


def test_a_catalog_translates_pages_and_falls_back_to_english(tmp_path: Path) -> None:
    folder = tmp_path / "bs" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "messages.po").write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgid "Seats left"\nmsgstr "Preostala mjesta"\n',
        encoding="utf-8",
    )
    catalog = Catalog(tmp_path)
    loader = jinja2.DictLoader({"p.html": "<p>{{ _('Seats left') }}: {{ who }}</p>"})
    page = catalog.environment(loader, "bs").get_template("p.html").render(who="<b>")
    assert page == "<p>Preostala mjesta: &lt;b&gt;</p>"
    assert catalog.gettext("tr", "Seats left") == "Seats left"
    assert catalog.environment(loader, "bs") is catalog.environment(loader, "bs")
