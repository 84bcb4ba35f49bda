"""The import row of ``make bench``: a 10,000-row Windows-1250 CSV through ``import_organisations``.

Measured in process, on the benchmark's database (PostgreSQL by default, ``BENCH_DATABASE=sqlite``
for a file): from the bytes of the file to the committed transaction (organisations, topics,
consent records and the outbox rows), as ``tacso-registry import`` does without its progress bar.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from support.infra import postgres_databases
from tacso_registry import importing
from tacso_registry.bootstrap import apply_migrations, bootstrap, load_settings
from tacso_shared.db import transaction

#: Rows of the measured file (``BENCH_IMPORT_N``).
DEFAULT_ROWS = 10_000
#: The target the issue sets for 10,000 rows on this machine.
TARGET_SECONDS = 10.0


def import_csv(rows: int) -> bytes:
    """A list as RCs keep them: Windows-1250, semicolons, Latin names with diacritics."""
    lines = ["Naziv;E-mail;Vrsta;Država;Teme;Jezik"]
    for i in range(rows):
        lines.append(
            f"Udruženje građana Čačak-Šabac-Žabljak {i};org{i}@lista.example.org;cso;"
            f"{('BA', 'RS', 'ME', 'MK', 'AL', 'XK', 'TR')[i % 7]};human-rights|youth;bs"
        )
    return ("\r\n".join(lines) + "\r\n").encode("cp1250")


def run_import(workdir: Path, rows: int) -> dict[str, Any]:
    """Import ``rows`` rows into a fresh registry database; seconds and rows per second."""
    data = import_csv(rows)
    with ExitStack() as resources:
        if os.environ.get("BENCH_DATABASE", "postgres") == "sqlite":
            url = f"sqlite:///{workdir / 'registry-import.sqlite3'}"
        else:
            url = resources.enter_context(postgres_databases("registry"))["registry"]
        settings = load_settings({"VAR_DIR": str(workdir), "REGISTRY_DATABASE_URL": url})
        apply_migrations(settings.common)
        registry = bootstrap(settings)
        try:
            started, cpu_started = time.perf_counter(), time.process_time()
            with transaction(registry.sessions) as session:
                report = importing.import_organisations(session, data)
            seconds = time.perf_counter() - started
            # This process's CPU alone: on a shared machine the wall time includes waiting.
            cpu = time.process_time() - cpu_started
        finally:
            registry.engine.dispose()
    return {
        "rows": rows,
        "bytes": len(data),
        "created": report.created,
        "encoding": report.encoding,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "load_average": round(os.getloadavg()[0], 1),
        "rows_per_s": round(rows / seconds),
        "target_seconds": TARGET_SECONDS,
    }
