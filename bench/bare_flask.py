"""The ceiling of the HTTP benchmark: a bare Flask JSON endpoint under the services' own gunicorn
configuration (``tacso_shared.runtime.serve``: gthread, WEB_CONCURRENCY workers x WEB_THREADS)."""

from __future__ import annotations

import os

from flask import Flask

from tacso_shared.config import CommonSettings
from tacso_shared.runtime import serve


def create_app() -> Flask:
    app = Flask("bare")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/events")
    def events() -> dict[str, object]:
        return {"items": [], "page": 1, "page_size": 20, "total": 0}

    return app


if __name__ == "__main__":
    # The same settings as the services (BARE_PORT, WEB_CONCURRENCY, WEB_THREADS); no key is used.
    settings = CommonSettings.load("bare", 0, {**os.environ, "ADMIN_API_KEY": "unused"})
    serve(create_app, settings)
