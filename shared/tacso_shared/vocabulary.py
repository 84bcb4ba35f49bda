"""The controlled vocabularies every service and message contract agrees on.

Slugs are stable: they travel in messages and URLs. Labels are for people.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Country:
    """A country of the TACSO network, with the IANA time zone its events are shown in."""

    code: str
    name: str
    timezone: str


COUNTRIES: dict[str, Country] = {
    c.code: c
    for c in (
        Country("AL", "Albania", "Europe/Tirane"),
        Country("BA", "Bosnia and Herzegovina", "Europe/Sarajevo"),
        Country("XK", "Kosovo", "Europe/Belgrade"),
        Country("ME", "Montenegro", "Europe/Podgorica"),
        Country("MK", "North Macedonia", "Europe/Skopje"),
        Country("RS", "Serbia", "Europe/Belgrade"),
        Country("TR", "Turkey", "Europe/Istanbul"),
    )
}

ORGANISATION_KINDS = ("cso", "resource_centre", "tacso_office", "media")
ORGANISER_KINDS = ("resource_centre", "tacso_office")

LANGUAGES: dict[str, str] = {
    "en": "English",
    "sq": "Albanian",
    "bs": "Bosnian",
    "hr": "Croatian",
    "sr": "Serbian (Cyrillic)",
    "sr-Latn": "Serbian (Latin)",
    "mk": "Macedonian",
    "tr": "Turkish",
    "cnr": "Montenegrin",
}

TOPICS: dict[str, str] = {
    "social-entrepreneurship": "Social entrepreneurship",
    "communication-visibility": "Communication and visibility",
    "human-rights": "Human rights",
    "quality-assurance": "Quality assurance",
    "migration": "Migration and refugee response",
    "capacity-building": "Capacity building",
    "advocacy": "Advocacy",
    "gender-equality": "Gender equality",
    "environment": "Environment",
    "youth": "Youth",
}

EVENT_TYPES: dict[str, str] = {
    "conference": "Conference",
    "workshop": "Workshop",
    "training": "Training",
    "information_event": "Information event",
    "expo": "Expo",
    "field_session": "Field session",
    "other": "Other",
}
