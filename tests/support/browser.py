"""Debian's Chromium driven by Playwright, as the browser tests use it (no browser download)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Debian's Chromium (``tests/ensure_tools.sh`` installs it); None where it is missing.
CHROMIUM = shutil.which("chromium")

#: The flags ../shared/guide/machine.md found to work here: headless, no sandbox, no GPU, and
#: nothing that reaches out to the network by itself.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextmanager
def chromium_context(profile: Path) -> Iterator[Any]:
    """A Playwright browser context of Chromium on an (empty) profile directory of ours."""
    import pytest

    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        # A persistent context is how Playwright takes a profile directory of ours.
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield context
        finally:
            context.close()
