"""Seeding N CSOs straight into registry's database (registering 50,000 over HTTP is too slow)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from bench.common import COUNTRY, LANGUAGE, TOPIC, cso_email, cso_name
from tacso_registry.models import Organisation, OrganisationTopic
from tacso_shared.db import make_engine

BATCH = 5000


def seed_csos(database_url: str, n: int, run: str, country: str = COUNTRY) -> dict[str, Any]:
    """Insert ``n`` CSOs of ``country`` working on :data:`TOPIC`; ANALYZE; explain a page."""
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    t0 = time.monotonic()
    with engine.begin() as conn:
        for start in range(0, n, BATCH):
            rows = []
            links = []
            for i in range(start, min(n, start + BATCH)):
                org_id = str(uuid.uuid4())
                rows.append(
                    {
                        "id": org_id,
                        "name": cso_name(i),
                        "kind": "cso",
                        "country": country,
                        "email": cso_email(run, i),
                        "language": LANGUAGE,
                        "mailing_consent": True,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                links.append({"organisation_id": org_id, "topic": TOPIC})
            conn.execute(sa.insert(Organisation), rows)
            conn.execute(sa.insert(OrganisationTopic), links)
    seconds = time.monotonic() - t0
    plans: dict[str, str] = {}
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            # Fresh statistics, so the planner sees 50,000 rows and walks the keyset index.
            conn.execute(sa.text("ANALYZE organisations"))
            conn.execute(sa.text("ANALYZE organisation_topics"))
            plans = _plans(conn)
    engine.dispose()
    return {"n": n, "seconds": round(seconds, 2), "plans": plans}


def _plans(conn: sa.Connection) -> dict[str, str]:
    """EXPLAIN ANALYZE of the two queries registry runs per audience page (written out by hand)."""
    flt = (
        "o.country = :c AND o.kind = 'cso' AND o.mailing_consent = true AND EXISTS ("
        "SELECT 1 FROM organisation_topics t WHERE t.organisation_id = o.id AND t.topic IN (:t))"
    )
    middle = conn.execute(
        sa.text(
            f"SELECT o.id FROM organisations o WHERE {flt} ORDER BY o.id OFFSET "  # noqa: S608
            "(SELECT count(*) / 2 FROM organisations) LIMIT 1"
        ),
        {"c": COUNTRY, "t": TOPIC},
    ).scalar()
    queries = {
        "page_after": f"SELECT o.* FROM organisations o WHERE {flt} AND o.id > :after "  # noqa: S608
        "ORDER BY o.id LIMIT 500",
        "count_per_page": f"SELECT count(*) FROM organisations o WHERE {flt}",  # noqa: S608
    }
    out = {}
    for name, query in queries.items():
        rows = conn.execute(
            sa.text(f"EXPLAIN (ANALYZE, COSTS OFF) {query}"),
            {"c": COUNTRY, "t": TOPIC, "after": middle or ""},
        )
        out[name] = "\n".join(r[0] for r in rows)
    return out
