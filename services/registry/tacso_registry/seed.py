"""The network's own organisations: a TACSO office per country and the six Resource Centres."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tacso_registry.models import Organisation
from tacso_registry.operations import organisation_id_for, register_organisation

# Addresses are placeholders under example.org; operators replace them with the real ones.
SEED_ORGANISATIONS: list[dict[str, Any]] = [
    {"name": "TACSO Albania office", "kind": "tacso_office", "country": "AL", "language": "sq"},
    {
        "name": "TACSO Bosnia and Herzegovina office",
        "kind": "tacso_office",
        "country": "BA",
        "language": "bs",
    },
    {"name": "TACSO Kosovo office", "kind": "tacso_office", "country": "XK", "language": "sq"},
    {"name": "TACSO Montenegro office", "kind": "tacso_office", "country": "ME", "language": "cnr"},
    {
        "name": "TACSO North Macedonia office",
        "kind": "tacso_office",
        "country": "MK",
        "language": "mk",
    },
    {"name": "TACSO Serbia office", "kind": "tacso_office", "country": "RS", "language": "sr"},
    {"name": "TACSO Turkey office", "kind": "tacso_office", "country": "TR", "language": "tr"},
    {
        "name": "VESTA with the Trainers' Network",
        "kind": "resource_centre",
        "country": "BA",
        "language": "bs",
    },
    {
        "name": "Kosovar Civil Society Foundation (KCSF)",
        "kind": "resource_centre",
        "country": "XK",
        "language": "sq",
    },
    {
        "name": "Macedonian Center for International Cooperation (MCIC)",
        "kind": "resource_centre",
        "country": "MK",
        "language": "mk",
    },
    {
        "name": "Centre for Development of NGOs (CRNVO)",
        "kind": "resource_centre",
        "country": "ME",
        "language": "cnr",
    },
    {"name": "Civic Initiatives", "kind": "resource_centre", "country": "RS", "language": "sr"},
    {
        "name": "Civil Society Development Centre (STGM)",
        "kind": "resource_centre",
        "country": "TR",
        "language": "tr",
    },
]


def seed_email(entry: dict[str, Any]) -> str:
    """The placeholder address of a seeded organisation."""
    slug = entry["kind"].replace("_", "-")
    return f"{slug}.{entry['country'].lower()}@seed.tacso.example.org"


def seed_organisations(session: Session) -> int:
    """Register each seed organisation that is not there yet; return how many were added."""
    added = 0
    for entry in SEED_ORGANISATIONS:
        email = seed_email(entry)
        if session.scalar(sa.select(Organisation.id).where(Organisation.email == email)):
            continue
        register_organisation(
            session,
            {**entry, "email": email, "topics": [], "id": organisation_id_for(email)},
        )
        added += 1
    return added
