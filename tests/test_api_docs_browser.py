"""``/docs`` of each service, opened in a real headless browser with the network cut off.

Each API is served in-process (werkzeug, 127.0.0.1); Debian's Chromium, driven by Playwright,
opens its ``/docs`` while every request to another origin is refused, and must list every
operation of the service's OpenAPI document: the page works offline (no CDN) and under its
Content-Security-Policy (a violation would leave the page blank and is reported by the browser).
Chromium comes from ``tests/ensure_tools.sh`` (``make install``); no browser is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from support.browser import CHROMIUM, chromium_context

SERVICES = ("registry", "events", "notify")

pytestmark = [
    # Not a unit test: it drives a real Chromium process (make unit stays quick).
    pytest.mark.integration,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (tests/ensure_tools.sh installs it)"
    ),
]


def service_app(service: str, env: dict[str, str]) -> Flask:
    """The service's real app on its own (empty, unmigrated) SQLite database."""
    if service == "registry":
        from tacso_registry.app import create_app as registry_app
        from tacso_registry.bootstrap import bootstrap as registry_bootstrap
        from tacso_registry.bootstrap import load_settings as registry_settings

        return registry_app(registry_bootstrap(registry_settings(env)))
    if service == "events":
        from tacso_events.app import create_app as events_app
        from tacso_events.bootstrap import bootstrap as events_bootstrap
        from tacso_events.bootstrap import load_settings as events_settings

        return events_app(events_bootstrap(events_settings(env)))
    from tacso_notify.app import create_app as notify_app
    from tacso_notify.bootstrap import bootstrap as notify_bootstrap
    from tacso_notify.bootstrap import load_settings as notify_settings

    return notify_app(notify_bootstrap(notify_settings(env)))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium_context(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.mark.parametrize("service", SERVICES)
def test_docs_list_every_operation_offline_under_the_csp(
    service: str,
    browser: Any,
    serve_wsgi: Callable[[Any], str],
    tmp_path: Path,
) -> None:
    env = {"ADMIN_API_KEY": "k", "VAR_DIR": str(tmp_path)}
    app = service_app(service, env)
    base = serve_wsgi(app)
    spec = app.test_client().get("/openapi.json").get_json()
    expected = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    refused: list[str] = []
    problems: list[str] = []
    page = browser.new_page()

    def only_this_api(route: Any) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_api)
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        page.goto(f"{base}/docs", wait_until="load")
        page.wait_for_selector(".opblock", timeout=20_000)
        page.screenshot(path=str(tmp_path / f"{service}-docs.png"), full_page=True)
        listed = {
            (
                block.query_selector(".opblock-summary-method").inner_text().strip(),
                block.query_selector(".opblock-summary-path").get_attribute("data-path"),
            )
            for block in page.query_selector_all(".opblock")
        }
    finally:
        page.close()

    assert expected, "the service documents some operations"
    assert listed == expected
    assert refused == [], "the page asked for something outside this API"
    assert problems == [], "the browser reported errors (a CSP violation, a failed script)"
