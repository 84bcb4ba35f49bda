"""Tests of the docker compose stack (the real docker-compose.yml, real images, real containers).

They need a Docker engine and the images: ``make test-compose`` prepares both
(``tests/compose/prepare.sh``) and sets ``TACSO_COMPOSE_TESTS=1``. Without that variable (plain
``make test``) nothing in this directory is collected.
"""

from __future__ import annotations

import os

collect_ignore_glob: list[str] = (
    [] if os.environ.get("TACSO_COMPOSE_TESTS") == "1" else ["test_*.py", "standins/*"]
)
