"""Running a service's processes: logging, gunicorn for the API, signals for workers and relays."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from tacso_shared.config import CommonSettings

#: gunicorn's own limits on the request line and on one header line, set above werkzeug's so
#: that an oversized request reaches the app and is answered in the APIs' JSON error shape
#: (see :mod:`tacso_shared.web`), not as gunicorn's HTML page. 0 would mean unlimited.
GUNICORN_LIMIT_REQUEST_LINE = 8190
GUNICORN_LIMIT_REQUEST_FIELD_SIZE = 16380


def setup_logging(service: str, level: str = "INFO") -> None:
    """One line per record, with the service name, at ``level`` (the ``LOG_LEVEL`` setting)."""
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s {service} %(process)d %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("amqp").setLevel(logging.WARNING)


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, factory: Callable[[], Flask], options: dict[str, Any]) -> None:
        self._factory = factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self._factory()


def gunicorn_options(settings: CommonSettings) -> dict[str, Any]:
    """gunicorn's settings for the API of ``settings``' service."""
    return {
        "bind": f"{settings.bind_host}:{settings.port}",
        "workers": settings.web_concurrency,
        "worker_class": "gthread",
        "threads": settings.web_threads,
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": settings.access_log,
        "preload_app": False,
        "limit_request_line": GUNICORN_LIMIT_REQUEST_LINE,
        "limit_request_field_size": GUNICORN_LIMIT_REQUEST_FIELD_SIZE,
    }


def serve(factory: Callable[[], Flask], settings: CommonSettings) -> None:
    """Serve the app from ``factory`` with gunicorn (each worker builds its own app)."""
    _Gunicorn(factory, gunicorn_options(settings)).run()


def run_until_signalled(run: Callable[[], None], stop: Callable[[], None]) -> None:
    """Run a blocking loop; SIGTERM and SIGINT call ``stop`` so it can finish cleanly."""

    def _handler(signum: int, _frame: Any) -> None:
        logging.getLogger(__name__).info("signal %d: stopping", signum)
        stop()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    run()
