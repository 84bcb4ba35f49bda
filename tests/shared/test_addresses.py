"""The ASCII form of an address: its own for an ASCII one, IDNA for a Unicode domain."""

from __future__ import annotations

import pytest

from tacso_shared.addresses import ascii_form, parse_email_address


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("info@vesta.ba", "info@vesta.ba"),
        ("Info.Desk@Example.ORG", "Info.Desk@example.org"),
        ("info@žene.example.ba", "info@xn--ene-b3a.example.ba"),
        ("žena@example.ba", None),
        ("not an address", None),
    ],
)
def test_ascii_form(stored: str, expected: str | None) -> None:
    assert ascii_form(stored) == expected


@pytest.mark.parametrize("given", ["info@vesta.ba", "a.b+c@Example.ORG", "x@žene.example.ba"])
def test_the_short_path_agrees_with_the_validator(given: str) -> None:
    accepted = parse_email_address(given)
    assert ascii_form(accepted.normalised) == accepted.ascii
