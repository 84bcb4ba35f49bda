"""Running a service's processes: gunicorn for the API, signals for workers and relays."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from tacso_shared import metrics
from tacso_shared.config import CommonSettings
from tacso_shared.logs import route_to_root, setup_logging

__all__ = ["gunicorn_options", "run_until_signalled", "serve", "setup_logging"]

#: gunicorn's own limits on the request line and on one header line, set above werkzeug's so
#: that an oversized request reaches the app and is answered in the APIs' JSON error shape
#: (see :mod:`tacso_shared.web`), not as gunicorn's HTML page. 0 would mean unlimited.
GUNICORN_LIMIT_REQUEST_LINE = 8190
GUNICORN_LIMIT_REQUEST_FIELD_SIZE = 16380


class _GunicornLogger(Logger):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's logger, writing through the process's handler (JSON or text) like all else."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        route_to_root(self.error_log, self.access_log)


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
        "logger_class": _GunicornLogger,
        "child_exit": lambda _server, worker: metrics.mark_worker_dead(worker.pid),
    }


def serve(factory: Callable[[], Flask], settings: CommonSettings) -> None:
    """Serve the app from ``factory`` with gunicorn (each worker builds its own app).

    The workers share one fresh Prometheus multiprocess directory, removed when gunicorn exits.
    """
    metrics.remove_at_exit(metrics.prepare_multiprocess(settings.service))
    _Gunicorn(factory, gunicorn_options(settings)).run()


def run_until_signalled(run: Callable[[], None], stop: Callable[[], None]) -> None:
    """Run a blocking loop; SIGTERM and SIGINT call ``stop`` so it can finish cleanly."""

    def _handler(signum: int, _frame: Any) -> None:
        logging.getLogger(__name__).info("signal %d: stopping", signum)
        stop()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    run()
