"""What every part of the benchmark shares: paths, the event, the audience, tools on PATH."""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
DOCS_DIR = ROOT / "docs"

# tests/support/stack.py and infra.py start the stack and make vhosts/databases exactly as the
# end-to-end tests do; the benchmark reuses them rather than keeping a copy.
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

#: The country and topic of the benchmark's audience. Montenegro has a seeded Resource Centre
#: (the organiser) and no seeded media, so the press-notices worker sends nothing and every
#: message the SMTP sink counts is an invitation.
COUNTRY = "ME"
TOPIC = "human-rights"
LANGUAGE = "cnr"
ORGANISER_NAME = "Centre for Development of NGOs (CRNVO)"
MAIL_FROM = "events@tacso.local"

DESCRIPTION = (
    "A two-day workshop for civil society organisations on monitoring and reporting human "
    "rights violations, documenting cases for the ombudsperson and the courts, and working "
    "with the media.\n\nParticipants get a toolkit and a certificate. Lunch and coffee are "
    "provided; travel costs of up to two people per organisation are reimbursed."
)


def event_body(organiser_id: str) -> dict[str, Any]:
    """The body of ``POST /api/v1/events`` every run publishes."""
    return {
        "title": f"Human rights monitoring workshop {uuid.uuid4().hex[:6]}",
        "description": DESCRIPTION,
        "type": "workshop",
        "country": COUNTRY,
        "topics": [TOPIC],
        "starts_at": "2026-12-15T09:00:00+01:00",
        "ends_at": "2026-12-16T16:00:00+01:00",
        "venue": {
            "name": "Hotel Podgorica",
            "address": "Bulevar Svetog Petra 1",
            "city": "Podgorica",
        },
        "capacity": 60,
        "organiser_id": organiser_id,
    }


def event_data(organiser_id: str = "bench-organiser") -> dict[str, Any]:
    """The same event as the ``event.published.v1`` data the notify worker receives."""
    event_id = str(uuid.uuid4())
    return {
        **event_body(organiser_id),
        "event_id": event_id,
        "revision": 1,
        "online_url": None,
        "organiser_name": ORGANISER_NAME,
        "organiser_email": None,
        "url": f"http://127.0.0.1:5002/events/{event_id}",
    }


def cso_name(i: int) -> str:
    """Names of the seeded CSOs: every fourth one is not ASCII, as in the real registry."""
    if i % 4 == 0:
        return f"Udruženje građana Žene za prava {i}"
    return f"Civic Association for Human Rights {i}"


def cso_email(run: str, i: int) -> str:
    return f"cso-{i:06d}.{run}@bench.example.org"


def require_tool(name: str) -> str:
    """The path of a tool: on PATH, in /usr/sbin (smtp-sink) or beside this Python (py-spy)."""
    for candidate in (Path(sys.executable).parent / name, Path("/usr/sbin") / name):
        if candidate.exists():
            return str(candidate)
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: `make bench` installs it (bench/ensure_tools.sh)")
    return path


def env_list(name: str, default: str) -> list[int]:
    raw = os.environ.get(name) or default
    return [int(x.replace("_", "")) for x in raw.replace(" ", "").split(",") if x]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


@contextmanager
def fresh(workdir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A run's own directory, RabbitMQ virtual host and three databases (PostgreSQL, or SQLite
    files with ``BENCH_DATABASE=sqlite``), removed after; yields the AMQP URL and database URLs."""
    from support.infra import postgres_databases, rabbitmq_vhost  # on sys.path above

    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as resources:
        amqp_url = resources.enter_context(rabbitmq_vhost("tacso-bench"))
        if os.environ.get("BENCH_DATABASE", "postgres") == "sqlite":
            names = ("registry", "events", "notify")
            urls = {n: f"sqlite:///{workdir / f'{n}.sqlite3'}" for n in names}
        else:
            urls = resources.enter_context(postgres_databases("registry", "events", "notify"))
        yield amqp_url, urls
